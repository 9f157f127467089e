#!/usr/bin/env bash
# bench/rag_bench.sh: the figures of docs/BENCHMARKS.md, "Retrieval and RAG".
#  1. BM25 quality on BEIR-format test collections (nDCG@10, MAP@100, recall@100): hearth's
#     FTS5 unicode61 + bm25() (collections made before analyzers), the english analyzer with
#     Lucene's BM25, english with stop words kept, and the independent reference
#     (tools/bm25_ref.py: its own tokenizer, NLTK's Porter stemmer, Lucene's BM25).
#  2. Ingestion MB/s of a mixed folder: postgresql-doc-15's HTML manual plus generated Markdown,
#     text, JSONL, PDF (groff + ps2pdf) and DOCX files; BM25 only, and with an embedding model
#     (EMBED_MODEL, default src/embed's tiny random-weight fixture) on the generated files.
#  3. A RAG request's latency, split: embed the question, retrieve, first token (hearth ask
#     --json's timings; median of 5), with MODEL (a hearth model; default: a tiny one trained
#     here) and EMBED_MODEL.
# Usage: bench/rag_bench.sh [IR_DIR]   (IR_DIR holds cranfield/ and cisi/ in BEIR layout)
set -euo pipefail
cd "$(dirname "$0")/.."
H=${HEARTH:-./build/hearth}
PY=/usr/bin/python3
IR=${1:-../shared/data/ir}
PG=/usr/share/doc/postgresql-doc-15/html
EMBED_MODEL=${EMBED_MODEL:-tests/fixtures/embed/bert_tiny.gguf}
export OMP_NUM_THREADS=2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "machine: $(nproc) cores; load: $(uptime | sed 's/.*load average: //')"

echo "== 1. BM25 quality (nDCG@10 / MAP@100 / recall@100)"
for c in cranfield cisi; do
  [ -f "$IR/$c/corpus.jsonl" ] || { echo "$c: not found under $IR"; continue; }
  args=(--corpus "$IR/$c/corpus.jsonl" --queries "$IR/$c/queries.jsonl" --qrels "$IR/$c/qrels/test.tsv")
  for a in unicode61 english english_all; do
    printf '%-10s hearth %-12s ' "$c" "$a"
    "$H" eval-retrieval "${args[@]}" -a "$a" --json | $PY -c 'import json,sys; m=json.load(sys.stdin); print("%.4f / %.4f / %.4f  (%d queries, %.2f ms/query)" % (m["ndcg@10"], m["map@100"], m["recall@100"], m["queries"], m["query_ms"]))'
  done
  printf '%-10s reference english     ' "$c"
  $PY tools/bm25_ref.py "${args[@]}" | $PY -c 'import json,sys; m=json.load(sys.stdin); print("%.4f / %.4f / %.4f" % (m["ndcg@10"], m["map@100"], m["recall@100"]))'
done

echo "== 2. ingestion"
F="$T/mixed"
mkdir -p "$F/gen"
[ -d "$PG" ] && cp -r "$PG" "$F/pg-html" || echo "(postgresql-doc-15 not installed: generated files only)"
$PY - "$F/gen" << 'EOF'
import json, random, sys, zipfile
random.seed(1)
words = open("/usr/share/dict/words").read().split() if False else \
    "the of and to in is for on that with as by at from this be are it an or which".split() + \
    [f"term{i}" for i in range(3000)]
def para(n): return " ".join(random.choice(words) for _ in range(n)).capitalize() + "."
d = sys.argv[1]
for i in range(40):
    with open(f"{d}/doc{i}.md", "w") as f:
        for s in range(8):
            f.write(f"# Part {s}\n\n" + "\n\n".join(para(random.randint(40, 120)) for _ in range(6)) + "\n\n")
    with open(f"{d}/notes{i}.txt", "w") as f:
        f.write("\n\n".join(para(random.randint(40, 120)) for _ in range(40)))
with open(f"{d}/faq.jsonl", "w") as f:
    for i in range(2000):
        f.write(json.dumps({"title": f"Question {i}", "text": para(60)}) + "\n")
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
for i in range(20):
    body = "".join(f'<w:p><w:r><w:t>{para(80)}</w:t></w:r></w:p>' for _ in range(60))
    with zipfile.ZipFile(f"{d}/report{i}.docx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>')
with open(f"{d}/../book.tr", "w") as f:
    for p in range(60):
        f.write("\n".join(para(50) for _ in range(6)) + "\n.bp\n")
EOF
groff -Tps "$F/book.tr" > "$T/book.ps" 2> /dev/null && ps2pdf "$T/book.ps" "$F/gen/book.pdf"
rm -f "$F/book.tr"
MB=$(du -sb "$F" | cut -f1)
echo "folder: $(find "$F" -type f | wc -l) files, $(awk -v b="$MB" 'BEGIN{printf "%.1f", b/1e6}') MB"
# wall time on a loaded machine says little: the CPU seconds (user + sys) are printed too
for run in 1 2 3; do
  rm -rf "$T/st"
  printf 'BM25 only, run %d: ' "$run"
  /usr/bin/time -f "cpu %U s user + %S s sys" -o "$T/cpu" "$H" ingest --store "$T/st" \
    --collection bench "$F" 2> /dev/null
  awk -v b="$MB" '{printf "  %s (%.2f MB per CPU second)\n", $0, b / 1e6 / ($2 + $6)}' "$T/cpu"
done
if [ -f "$EMBED_MODEL" ]; then # embedding costs far more: the generated files only
  rm -rf "$T/se"
  printf 'with %s, generated files only (%s MB): ' "$(basename "$EMBED_MODEL")" \
    "$(du -sb "$F/gen" | awk '{printf "%.1f", $1/1e6}')"
  "$H" ingest --store "$T/se" --collection bench -e "$EMBED_MODEL" -t 2 "$F/gen" 2> /dev/null
fi
printf 'rerun, nothing changed: '
"$H" ingest --store "$T/st" --collection bench "$F" 2> /dev/null

echo "== 3. a RAG request (median of 5): embed / retrieve / first token"
MODEL=${MODEL:-}
if [ -z "$MODEL" ]; then
  for i in $(seq 200); do printf 'User: hello %d\nAssistant: hi [1]\n' $((i % 5)); done > "$T/c.txt"
  "$H" train --data "$T/c.txt" --out "$T/run" --steps 2 --batch 2 --seq 32 --max-seq 1024 \
    --ckpt-every 2 --sample 0 > /dev/null 2>&1
  MODEL="$T/run"
fi
for mode in bm25 hybrid; do
  store="$T/st" emb=()
  if [ "$mode" = hybrid ]; then
    [ -f "$EMBED_MODEL" ] || continue
    store="$T/se" emb=(-e "$EMBED_MODEL")
  fi
  for i in 1 2 3 4 5; do
    "$H" ask --store "$store" --collection bench --model "$MODEL" "${emb[@]}" -n 4 -t 2 --json \
      "How do I create an index concurrently on a large table?"
  done | $PY -c '
import json, statistics, sys
t = [json.loads(l)["timings"] for l in sys.stdin if l.strip()]
med = lambda k: statistics.median(x[k] for x in t)
print("%s: embed %.1f ms, retrieve %.1f ms, first token %.1f ms, total %.1f ms" % (sys.argv[1],
      med("embed_ms"), med("retrieve_ms"), med("first_token_ms"), med("total_ms")))' "$mode"
done
