#!/usr/bin/env bash
# tests/cli/test_rag.sh: `hearth ingest` and `hearth ask` end to end. A folder with a Markdown
# file, an HTML page, a two-page PDF (groff + ps2pdf, made here), a DOCX (a zip of XML written
# here), a JSONL file, a binary file and a damaged PDF: the five documents are ingested, the two
# bad files reported and skipped. A question whose answer is on the PDF's second page is
# answered with that page first among the sources (a tiny model trained here: the mapping of
# sources is asserted, not the model's prose). A question matching nothing says so. Re-ingesting
# after editing one file and deleting another changes only those two.
# Usage: test_rag.sh PATH/TO/hearth
set -u
H=${1:?usage: test_rag.sh path/to/hearth}
T=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2> /dev/null && wait "$PID" 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=2
PY=/usr/bin/python3
D="$T/docs"
mkdir -p "$D/sub"

cat > "$D/guide.md" << 'EOF'
# Operations guide

## Startup

Open the main valve slowly. Check the pressure gauge before starting the pump.

## Shutdown

Close the main valve. Record the running hours in the log book.
EOF
cat > "$D/sub/page.html" << 'EOF'
<!doctype html><html><head><title>Safety page</title><style>p{color:red}</style>
<script>var leaked = "scriptword";</script></head><body>
<nav>Home | navigationword</nav><header>headerword</header>
<h1>Safety rules</h1><p>Always wear a helmet in the boiler hall.</p>
<h2>Fire</h2><p>The fire exits are on the east side of the building.</p>
<footer>footerword</footer></body></html>
EOF
# the PDF: page 1 about inspections, page 2 holds the answer
cat > "$T/report.tr" << 'EOF'
Quarterly maintenance report for the northern facility.
The inspection covered pumps, valves and the cooling loop.
.bp
The turbine warranty expires in March 2031 according to the vendor contract.
Replacement parts must be ordered through the procurement office.
EOF
groff -Tps "$T/report.tr" > "$T/report.ps" && ps2pdf "$T/report.ps" "$D/report.pdf" ||
  { echo "setup failed: groff/ps2pdf (tools/install-deps.sh installs them)"; exit 1; }
# the DOCX: word/document.xml with a Heading1 paragraph and a body paragraph in two runs
$PY - "$D/handbook.docx" << 'EOF' || { echo "setup failed: docx"; exit 1; }
import sys, zipfile
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
       f'<w:document {W}><w:body>'
       '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Staff handbook</w:t></w:r></w:p>'
       '<w:p><w:r><w:t xml:space="preserve">Holidays are requested </w:t></w:r>'
       '<w:r><w:t>two weeks in advance.</w:t></w:r></w:p></w:body></w:document>')
ct = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
      'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("[Content_Types].xml", ct)
    z.writestr("word/document.xml", doc)
EOF
printf '{"title": "Badge", "text": "Visitors collect a badge at reception."}\n' > "$D/faq.jsonl"
printf 'bin\000\001\002' > "$D/blob.bin"
printf '%%PDF-1.4 not really' > "$D/broken.pdf"

# a tiny byte-level model with room for the sources (its answers are not asserted)
for i in $(seq 100); do printf 'User: hello %d\nAssistant: hi [1]\n' $((i % 5)); done > "$T/c.txt"
"$H" train --data "$T/c.txt" --out "$T/run" --steps 2 --batch 2 --seq 32 --max-seq 1024 \
  --ckpt-every 2 --sample 0 > "$T/train.log" 2>&1 || { echo "setup failed: $(tail -3 "$T/train.log")"; exit 1; }

S="$T/store"
ING=(ingest --store "$S" --collection docs --json)
# ingest: 7 files, 5 documents added, the 2 bad ones reported on stderr and skipped
"$H" "${ING[@]}" "$D" > "$T/i1" 2> "$T/e1" && ok || bad "ingest exit $?: $(cat "$T/e1")"
$PY - "$T/i1" << 'EOF' && ok || bad "first ingest: $(cat "$T/i1")"
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(not (s["files"] == 7 and s["added"] == 5 and s["failed"] == 2 and s["updated"] == 0 and s["chunks"] >= 6))
EOF
grep -q "blob.bin: not a supported document" "$T/e1" && grep -q "broken.pdf: not a readable PDF" "$T/e1" &&
  ok || bad "skipped files not reported: $(cat "$T/e1")"

# what the store holds: PDF pages, heading paths, HTML without script/nav/header/footer
"$H" vstore --dir "$S" get docs > "$T/all" 2>&1 || bad "vstore get: $(cat "$T/all")"
$PY - "$T/all" "$D" << 'EOF' && ok || bad "chunks: $(cat "$T/all")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in recs:
    by.setdefault(r["metadata"]["source"].rsplit("/", 1)[1], []).append(r)
errs = []
pdf = by.get("report.pdf", [])
pages = {r["metadata"].get("page") for r in pdf}
if pages != {1, 2}: errs.append(f"pdf pages {pages}")
for r in pdf:
    if ("warranty" in r["document"]) != (r["metadata"].get("page") == 2): errs.append("pdf text on the wrong page")
html = " ".join(r["document"] for r in by.get("page.html", []))
for w in ("scriptword", "navigationword", "headerword", "footerword", "color:red"):
    if w in html: errs.append(f"html kept {w}")
if "helmet" not in html: errs.append("html body lost")
heads = {r["metadata"].get("heading") for r in by.get("guide.md", [])}
if "Operations guide > Shutdown" not in heads: errs.append(f"md headings {heads}")
docx = by.get("handbook.docx", [])
if not docx or "two weeks in advance" not in docx[0]["document"] or docx[0]["metadata"].get("title") != "Staff handbook":
    errs.append("docx")
if "badge at reception" not in " ".join(r["document"] for r in by.get("faq.jsonl", [])): errs.append("jsonl")
for r in recs:
    m = r["metadata"]
    for k in ("source", "doc_id", "file_hash", "start", "end", "chunk", "chunks"):
        if k not in m: errs.append(f"{r['id']} lacks {k}")
    if r["id"] != f'{m["doc_id"]}:{m["chunk"]}': errs.append(f"id {r['id']}")
print("\n".join(errs))
sys.exit(bool(errs))
EOF

# ask: the PDF's page 2 is the first source
ASK=(ask --store "$S" --collection docs --model "$T/run" --temperature 0 -n 8 -t 2)
"$H" "${ASK[@]}" --json "When does the turbine warranty expire?" > "$T/a1" 2> "$T/ae" ||
  bad "ask exit $?: $(cat "$T/ae")"
$PY - "$T/a1" << 'EOF' && ok || bad "ask sources: $(cat "$T/a1")"
import json, sys
a = json.load(open(sys.argv[1]))
s = a["sources"][0]
sys.exit(not (s["source"].endswith("/report.pdf") and s["page"] == 2 and s["n"] == 1))
EOF
# the streamed form lists the sources after the answer
"$H" "${ASK[@]}" "When does the turbine warranty expire?" > "$T/a2" 2> "$T/ae" &&
  grep -q '^\[1\] .*/report.pdf, page 2' "$T/a2" && grep -q '^Sources:' "$T/a2" && ok ||
  bad "streamed ask: $(cat "$T/a2" "$T/ae")"
# a --where filter keeps other documents out
"$H" "${ASK[@]}" --json -w '{"format": "md"}' "turbine warranty valve" > "$T/a3" 2> "$T/ae" &&
  $PY -c 'import json,sys; a=json.load(open(sys.argv[1])); sys.exit(not a["sources"] or any(not s["source"].endswith("guide.md") for s in a["sources"]))' "$T/a3" &&
  ok || bad "where: $(cat "$T/a3" "$T/ae")"
# nothing relevant: said so, no source
"$H" "${ASK[@]}" --json "xylophone quasar zeppelin" > "$T/a4" 2> "$T/ae" &&
  $PY -c 'import json,sys; a=json.load(open(sys.argv[1])); sys.exit(not (a["sources"] == [] and "could not find" in a["answer"]))' "$T/a4" &&
  ok || bad "nothing found: $(cat "$T/a4" "$T/ae")"

# re-ingest unchanged: nothing written
"$H" "${ING[@]}" "$D" > "$T/i2" 2> /dev/null
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not (s["unchanged"] == 5 and s["added"] == 0 and s["updated"] == 0 and s["removed"] == 0))' "$T/i2" &&
  ok || bad "unchanged rerun: $(cat "$T/i2")"
# edit one file, delete another: only those change; the others keep their records
"$H" vstore --dir "$S" get docs --where '{"format": "pdf"}' > "$T/pdf_before" 2>&1
printf '# Operations guide\n\n## Startup\n\nThe compressor must idle for ten minutes first.\n' > "$D/guide.md"
rm "$D/sub/page.html"
"$H" "${ING[@]}" "$D" > "$T/i3" 2> /dev/null
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not (s["updated"] == 1 and s["removed"] == 1 and s["unchanged"] == 3 and s["added"] == 0))' "$T/i3" &&
  ok || bad "edit + delete: $(cat "$T/i3")"
"$H" vstore --dir "$S" get docs --where '{"format": "pdf"}' > "$T/pdf_after" 2>&1
cmp -s "$T/pdf_before" "$T/pdf_after" && ok || bad "the unchanged PDF's records changed"
"$H" vstore --dir "$S" get docs > "$T/all2" 2>&1
! grep -q 'page.html' "$T/all2" && grep -q 'compressor must idle' "$T/all2" && ! grep -q 'pressure gauge' "$T/all2" &&
  ok || bad "after edit + delete: $(cat "$T/all2")"
# ingesting another folder into the same collection removes nothing of the first
mkdir -p "$T/other" && echo "Parking is behind the warehouse." > "$T/other/parking.txt"
"$H" "${ING[@]}" "$T/other" > "$T/i4" 2> /dev/null
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not (s["added"] == 1 and s["removed"] == 0))' "$T/i4" &&
  ok || bad "second folder: $(cat "$T/i4")"

# with an embedding model (src/embed's random-weight fixture): the chunks get vectors (cosine,
# the model's dimension), ask is hybrid (BM25 + dense, fused): the one chunk both rankings hold
# comes first; without the model, a note and BM25; text-only chunks into it are refused
EMB="${HEARTH_TESTS:-$(dirname "$0")/..}/fixtures/embed/bert_tiny.gguf"
"$H" ingest --store "$T/hs" --collection hybrid -e "$EMB" --json "$D" > "$T/h1" 2> "$T/he" &&
  "$H" vstore --dir "$T/hs" info hybrid > "$T/hinfo" 2>&1 &&
  grep -q "^metric cosine" "$T/hinfo" && grep -q "^dim 64" "$T/hinfo" && ok ||
  bad "ingest with an embedding model: $(cat "$T/h1" "$T/he" "$T/hinfo")"
"$H" "${ASK[@]}" --store "$T/hs" --collection hybrid -e "$EMB" --json "When does the turbine warranty expire?" > "$T/h2" 2> "$T/he" &&
  $PY -c 'import json,sys; a=json.load(open(sys.argv[1])); s=a["sources"][0]; sys.exit(not (s["source"].endswith("/report.pdf") and s["page"] == 2 and len(a["sources"]) == 4))' "$T/h2" &&
  ok || bad "hybrid ask: $(cat "$T/h2" "$T/he")"
"$H" "${ASK[@]}" --store "$T/hs" --collection hybrid --json "turbine warranty" > /dev/null 2> "$T/he" &&
  grep -q "embed-model PATH makes the retrieval hybrid" "$T/he" && ok || bad "no model note: $(cat "$T/he")"
echo "Text only." > "$T/other/extra.txt"
"$H" ingest --store "$T/hs" --collection hybrid "$T/other" > /dev/null 2> "$T/he"; [ $? -eq 1 ] &&
  grep -q "holds embeddings" "$T/he" && ok || bad "text-only into a vector collection: $(cat "$T/he")"

# bad input: usage errors exit 2 with the option named; a missing path exits 1 naming it
"$H" ingest --collection docs "$D" > /dev/null 2> "$T/err"; [ $? -eq 2 ] && grep -q -- "--store" "$T/err" && ok || bad "no --store: $(cat "$T/err")"
"$H" ingest --store "$S" --collection docs "$T/nope" > /dev/null 2> "$T/err"; [ $? -eq 1 ] && grep -q "nope" "$T/err" && ok || bad "missing path: $(cat "$T/err")"
"$H" ask --store "$S" --collection nosuch --model "$T/run" "q" > /dev/null 2> "$T/err"; [ $? -eq 1 ] && grep -q "nosuch" "$T/err" && ok || bad "unknown collection: $(cat "$T/err")"

# ---- over HTTP, PrivateGPT's API: upload, text, list, chunks, use_context with sources (also
# streamed), nothing found, bad input, delete
"$H" serve --port 0 --model "$T/run" --vstore-dir "$T/sv" -t 2 > "$T/serve.log" 2>&1 &
PID=$!
PORT=
for _ in $(seq 200); do
  PORT=$(grep -o 'listening on http://[^ ]*' "$T/serve.log" 2> /dev/null | sed 's/.*://')
  [ -n "$PORT" ] && break
  sleep 0.05
done
[ -n "$PORT" ] || { bad "serve did not start: $(cat "$T/serve.log")"; PORT=1; }
$PY - "http://127.0.0.1:$PORT" "$D/report.pdf" << 'EOF' && ok || bad "HTTP API (server log: $(tail -3 "$T/serve.log"))"
import json, sys, time, urllib.request, urllib.error
U, pdf = sys.argv[1], sys.argv[2]
def call(method, path, body=None, ctype="application/json", raw=False):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(U + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            t = r.read().decode()
            return r.status, (t if raw else json.loads(t))
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())
for _ in range(200):  # the model loads in the background
    try:
        urllib.request.urlopen(U + "/health", timeout=5).read()
        break
    except urllib.error.HTTPError:
        time.sleep(0.05)
errs = []
def check(cond, what):
    if not cond: errs.append(what)
# upload the PDF as multipart/form-data
b = "hearthboundary"
body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\n"
        "Content-Type: application/pdf\r\n\r\n").encode() + open(pdf, "rb").read() + f"\r\n--{b}--\r\n".encode()
st, r = call("POST", "/v1/ingest/file", body, f"multipart/form-data; boundary={b}")
check(st == 200 and r["data"][0]["doc_metadata"]["file_name"] == "report.pdf", f"upload {st} {r}")
pdf_id = r["data"][0]["doc_id"] if st == 200 else ""
st, r = call("POST", "/v1/ingest/text", {"file_name": "canteen.txt", "text": "The canteen opens at noon."})
check(st == 200, f"ingest text {st} {r}")
txt_id = r["data"][0]["doc_id"] if st == 200 else ""
st, r = call("GET", "/v1/ingest/list")
check(st == 200 and {d["doc_id"] for d in r["data"]} == {pdf_id, txt_id}, f"list {r}")
st, r = call("POST", "/v1/chunks", {"text": "turbine warranty", "limit": 2, "prev_next_chunks": 1})
c = r["data"][0] if st == 200 and r["data"] else {}
check(c.get("document", {}).get("doc_metadata", {}).get("page_label") == "2" and "warranty" in c.get("text", "")
      and "Quarterly" in (c.get("previous_texts") or [""])[0], f"chunks {r}")
st, r = call("POST", "/v1/chunks", {"text": "turbine warranty", "context_filter": {"docs_ids": [txt_id]}})
check(st == 200 and r["data"] == [], f"chunks filtered {r}")
q = {"messages": [{"role": "user", "content": "When does the turbine warranty expire?"}],
     "use_context": True, "include_sources": True, "max_tokens": 4, "temperature": 0}
st, r = call("POST", "/v1/chat/completions", q)
src = r["choices"][0].get("sources", []) if st == 200 else []
check(src and src[0]["document"]["doc_metadata"]["file_name"] == "report.pdf"
      and src[0]["document"]["doc_metadata"]["page_label"] == "2", f"chat sources {st} {r}")
st, t = call("POST", "/v1/chat/completions", dict(q, stream=True), raw=True)
events = [json.loads(l[6:]) for l in t.split("\n") if l.startswith("data: {")]
fin = [e for e in events if e["choices"] and e["choices"][0].get("finish_reason")]
check(st == 200 and t.rstrip().endswith("data: [DONE]") and fin
      and fin[0]["choices"][0]["sources"][0]["document"]["doc_id"] == pdf_id, f"streamed sources {t[-400:]}")
st, r = call("POST", "/v1/completions", {"prompt": "turbine warranty?", "use_context": True,
                                         "include_sources": True, "max_tokens": 2})
check(st == 200 and r["choices"][0]["sources"][0]["document"]["doc_id"] == pdf_id, f"completions {r}")
st, r = call("POST", "/v1/chat/completions", dict(q, messages=[{"role": "user", "content": "xylophone zeppelin"}]))
check(st == 200 and "could not find" in r["choices"][0]["message"]["content"]
      and r["choices"][0]["sources"] == [], f"nothing {r}")
st, r = call("POST", "/v1/chat/completions", dict(q, use_context="yes"))
check(st == 400 and r["error"]["param"] == "use_context", f"bad use_context {r}")
st, r = call("POST", "/v1/ingest/file", b"x", "text/plain")
check(st == 400, f"bad upload {st}")
st, r = call("DELETE", f"/v1/ingest/{txt_id}")
check(st == 200, f"delete {st}")
st, r = call("DELETE", f"/v1/ingest/{txt_id}")
check(st == 404, f"delete twice {st}")
st, r = call("GET", "/v1/ingest/list")
check([d["doc_id"] for d in r["data"]] == [pdf_id], f"list after delete {r}")
print("\n".join(errs))
sys.exit(bool(errs))
EOF

echo "test_rag.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
