#!/usr/bin/env bash
# tests/cli/test_vstore.sh: `hearth vstore` as a user runs it — collections, JSONL add, get,
# query, text and hybrid search, remove; bad input (each a clear message, a non-zero exit and
# nothing written); durability under kill -9 (a writer killed at random points 20 times, then
# every acknowledged record must be present and found by a query for its own vector); a damaged
# index reported and rebuilt; and the chromadb npm client against `hearth serve --vstore-dir`.
# Usage: test_vstore.sh PATH/TO/hearth
set -u
H=${1:?usage: test_vstore.sh path/to/hearth}
H=$(cd "$(dirname "$H")" && pwd)/$(basename "$H")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null && wait "$SERVER_PID" 2> /dev/null
  mountpoint -q "$T/full" 2> /dev/null && umount "$T/full"
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
V() { "$H" vstore --dir "$T/db" "$@"; }

# gen FILE PREFIX N DIM SEED: N records, vectors from awk's generator, documents and metadata
gen() {
  awk -v p="$2" -v n="$3" -v d="$4" -v s="$5" 'BEGIN {
    srand(s); split("lantern harbour storm bread keeper", w, " ");
    for (i = 0; i < n; i++) {
      v = ""; for (j = 0; j < d; j++) v = v (j ? "," : "") sprintf("%.5f", rand() * 2 - 1);
      printf "{\"id\":\"%s%d\",\"embedding\":[%s],\"document\":\"record %d about the %s\",", p, i, v, i, w[i % 5 + 1];
      printf "\"metadata\":{\"i\":%d,\"kind\":\"%s\",\"even\":%s}}\n", i, w[i % 5 + 1], (i % 2 ? "false" : "true");
    }
  }' > "$1"
}
vec_of() { sed -n "s/.*\"id\":\"$2\",\"embedding\":\(\[[^]]*\]\).*/\1/p" "$1"; }

# expect_fail NAME PATTERN ARGS...: non-zero exit, stderr matches PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  if V "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" || { bad "$name: stderr lacks /$pat/: $(cat "$T/err")"; return; }
  ok
}
expect_out() { # NAME PATTERN ARGS...: exit 0, stdout matches PATTERN
  local name=$1 pat=$2; shift 2
  if ! V "$@" > "$T/out" 2> "$T/err"; then bad "$name: failed: $(cat "$T/err")"; return; fi
  [ -z "$pat" ] || grep -qE -- "$pat" "$T/out" || { bad "$name: stdout lacks /$pat/: $(head -c 400 "$T/out")"; return; }
  ok
}

# ---- the happy path
gen "$T/a.jsonl" r 500 16 1
expect_out "create" "^docs" create docs --metric cosine --ef-search 40
expect_out "add" "" add docs --file "$T/a.jsonl"
expect_out "count" "^500$" count docs
expect_out "list" "^docs	cosine	dim=16	records=500" list
expect_out "info" "^ef_search 40" info docs
v7=$(vec_of "$T/a.jsonl" r7)
expect_out "query finds itself" '^\{"id":"r7","distance":' query docs --vector "$v7" -k 3
expect_out "filtered query" '"kind":"storm"' query docs --vector "$v7" -k 3 --where '{"kind":"storm"}'
V query docs --vector "$v7" -k 50 --where '{"$and":[{"i":{"$gte":100}},{"even":true}]}' > "$T/out"
[ "$(wc -l < "$T/out")" = 50 ] && ! grep -qE '"i":([0-9]|[0-9][0-9])[,}]|"even":false' "$T/out" \
  && ok || bad "where with \$and/\$gte/bool: $(head -3 "$T/out")"
expect_out "get by ids" '^\{"id":"r3".*"metadata":\{"even":false,"i":3' get docs --ids r3,r4
expect_out "get where_document" '"document":"record 2 about the storm"' get docs --where-document '{"$contains":"storm"}' --limit 1
expect_out "text (BM25)" '^\{"id":"r[0-9]+","score":[0-9.]+,"document":"record [0-9]+ about the lantern"' text docs "lantern" -k 2
expect_out "hybrid" '^\{"id":"r7","score"' hybrid docs --vector "$v7" --text "keeper storm" -k 3
expect_out "remove by filter" "^100$" remove docs --where '{"kind":"bread"}'
expect_out "count after remove" "^400$" count docs
expect_out "upsert" "" upsert docs --file "$T/a.jsonl" --batch 64
expect_out "count after upsert" "^500$" count docs
expect_out "modify" "" modify docs --name docs2 --metadata '{"owner":"me"}'
expect_out "renamed" "^docs2" list
# 500 queries x 500 results is above the rows of one answer (100,000): the CLI sends chunks
V query docs2 --file "$T/a.jsonl" -k 500 > "$T/out" 2> "$T/err"
[ "$(wc -l < "$T/out")" = 500 ] && tail -1 "$T/out" | grep -q '^{"query":"r499","ids":\["r499"' \
  && ok || bad "query --file in chunks: $(wc -l < "$T/out") lines $(head -c 300 "$T/err")"

# ---- bad input: a clear error, nothing written
V create small --dim 4 > /dev/null
expect_fail "unknown collection" "collection 'nope' does not exist" count nope
expect_fail "unknown metric" "--metric 'manhattan'" create m1 --metric manhattan
expect_fail "bad name" "collection name 'x'" create x
expect_fail "exists" "already exists" create small
expect_fail "unknown verb" "unknown verb 'frob'" frob small
expect_fail "no file" "--file F.jsonl is required" add small
printf '{"id":"a","embedding":[1,2,3,4]}\n{"id":"b","embedding":[1,2,3,4]\n' > "$T/bad.jsonl"
expect_fail "malformed line" "bad.jsonl:2: not JSON" add small --file "$T/bad.jsonl"
printf '{"id":"a","embedding":[1,2,3,4]}\n{"id":"b","embedding":[1,2,3]}\n' > "$T/bad.jsonl"
expect_fail "ragged dims" "bad.jsonl:2: \"embedding\" has 3 values" add small --file "$T/bad.jsonl"
printf '{"id":"a","embedding":[1,2,3]}\n' > "$T/bad.jsonl"
expect_fail "wrong dim" "dimension 3 does not match collection 'small' \(dimension 4\)" add small --file "$T/bad.jsonl"
printf '{"id":"a","embedding":[1,2,3,NaN]}\n' > "$T/bad.jsonl"
expect_fail "NaN" "bad.jsonl:1: not JSON" add small --file "$T/bad.jsonl"
printf '{"id":"a","embedding":[1,2,3,1e39]}\n' > "$T/bad.jsonl"
expect_fail "inf" "embedding\[3\] is infinite" add small --file "$T/bad.jsonl"
printf '{"id":"a","embedding":[1,2,3,4]}\n{"id":"a","embedding":[1,2,3,5]}\n' > "$T/bad.jsonl"
expect_fail "duplicate ids" "id 'a' appears more than once" add small --file "$T/bad.jsonl" --batch 1
printf '{"id":"a","embedding":[1,2,3,4],"metadata":{"k":[1]}}\n' > "$T/bad.jsonl"
expect_fail "bad metadata" "metadata 'k' must be a string, number, bool or null" add small --file "$T/bad.jsonl"
expect_out "nothing written" "^0$" count small
expect_fail "bad where" "unknown operator '\\\$like'" get docs2 --where '{"kind":{"$like":"x"}}'
expect_fail "where not JSON" "where is not JSON" get docs2 --where '{kind'
expect_fail "bad vector" "--vector must be a JSON array" query docs2 --vector 'oops'
expect_fail "query dim" "query dimension 2 does not match" query docs2 --vector '[1,2]'
expect_fail "remove needs a filter" "needs ids or a where" remove docs2

# ---- a damaged index is reported and rebuilt, answers stay right
idx=$(ls "$T"/db/index/*.hnsw | head -1)
[ -n "$idx" ] && printf 'garbage' | dd of="$idx" bs=1 seek=100 conv=notrunc 2> /dev/null
V query docs2 --vector "$v7" -k 1 > "$T/out" 2> "$T/err"
grep -q '"id":"r7"' "$T/out" && grep -q "damaged.*rebuilt" "$T/err" && ok \
  || bad "damaged index: $(cat "$T/err") $(cat "$T/out")"
# a damaged database is refused
cp -r "$T/db" "$T/db2"
dd if=/dev/urandom of="$T/db2/vstore.db" bs=4096 seek=1 count=2 conv=notrunc 2> /dev/null
if "$H" vstore --dir "$T/db2" count docs2 > /dev/null 2> "$T/err"; then bad "damaged db served"
else grep -qi "vstore.db.*damaged\|malformed\|not a database" "$T/err" && ok || bad "damaged db: $(cat "$T/err")"; fi

# ---- kill -9: every acknowledged record survives and is found by its own vector
V create crash > /dev/null
ROUNDS=20 PER=2000
: > "$T/acked"
midway=0
for r in $(seq $ROUNDS); do
  gen "$T/w$r.jsonl" "k${r}_" $PER 16 $((100 + r))
  # "$H" itself in the background (not through V, a function): $! must be hearth's pid
  "$H" vstore --dir "$T/db" add crash --file "$T/w$r.jsonl" --batch 4 --print-ids \
    > "$T/ack$r" 2> "$T/werr$r" &
  wp=$!
  # the kill lands 50-490 ms after the first acknowledgement, not after the start: a slow
  # start (the sanitizer build takes longer than that to open the store) must not turn every
  # round into a kill before the first commit
  for _ in $(seq 300); do
    [ -s "$T/ack$r" ] || ! kill -0 $wp 2> /dev/null && break
    sleep 0.02
  done
  sleep "0.$(printf '%02d' $((RANDOM % 45 + 5)))"
  kill -9 $wp 2> /dev/null
  wait $wp 2> /dev/null
  # only whole lines: a line cut by the kill was not acknowledged
  sed -n '/^k[0-9]*_[0-9]*$/p' "$T/ack$r" | { [ -n "$(tail -c1 "$T/ack$r")" ] && sed '$d' || cat; } > "$T/acked$r"
  cat "$T/acked$r" >> "$T/acked"
  [ "$(wc -l < "$T/acked$r")" -lt $PER ] && midway=$((midway + 1))
done
nacked=$(wc -l < "$T/acked")
[ "$nacked" -gt 0 ] || bad "kill -9: no write was acknowledged in $ROUNDS rounds"
[ "$midway" -ge $((ROUNDS / 2)) ] && ok || bad "kill -9: only $midway of $ROUNDS kills landed mid-write"
# present: one get per round for its acknowledged ids
present=0
for r in $(seq $ROUNDS); do
  [ -s "$T/acked$r" ] || continue
  n=$(V get crash --ids "$(paste -sd, "$T/acked$r")" --include metadatas 2>> "$T/gerr" | grep -c '"id"')
  present=$((present + n))
done
[ "$present" = "$nacked" ] && ok || bad "kill -9: $nacked acknowledged, $present present ($(cat "$T/gerr"))"
# nothing phantom: at most one committed-but-unprinted batch (4 records) per kill
total=$(V count crash 2> /dev/null)
[ "$total" -ge "$nacked" ] && [ "$total" -le $((nacked + 4 * ROUNDS)) ] && ok \
  || bad "kill -9: $total records stored, $nacked acknowledged"
# found by a query for its own vector: all of them, one query process per round
missing=0
for r in $(seq $ROUNDS); do
  [ -s "$T/acked$r" ] || continue
  awk -F'"' 'NR == FNR { want[$0] = 1; next } ($4 in want)' "$T/acked$r" "$T/w$r.jsonl" > "$T/q$r.jsonl"
  V query crash --file "$T/q$r.jsonl" -k 1 > "$T/q" 2>> "$T/qerr"
  n=$(awk -F'"' '$4 == $8' "$T/q" | wc -l)
  missing=$((missing + $(wc -l < "$T/acked$r") - n))
done
[ "$missing" = 0 ] && ok || bad "kill -9: $missing acknowledged records not found by their own vector ($(head -3 "$T/qerr"))"
echo "  kill -9: $ROUNDS kills ($midway mid-write), $nacked acknowledged records, each present and the top hit for its own vector"

# serve DIR: starts hearth serve --vstore-dir DIR on a free port ($port, $SERVER_PID); up=1 once
# it accepts connections
serve() {
  up=0
  for _attempt in 1 2 3; do # a random port may be taken: try another
    port=$((20000 + RANDOM % 20000))
    "$H" serve --vstore-dir "$1" --port $port > "$T/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
      kill -0 "$SERVER_PID" 2> /dev/null || break
      (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && { up=1; break; }
      sleep 0.1
    done
    [ $up = 1 ] && break
    kill "$SERVER_PID" 2> /dev/null; wait "$SERVER_PID" 2> /dev/null; SERVER_PID=
  done
}

# ---- a full disk (an 8 MiB tmpfs): writes are refused (the CLI: exit 1 and "disk is full";
# HTTP: 507 in Chroma's error shape), deletes still commit (the store's 4 MiB reserve), and an
# index the disk has no room for is reported. Mounting needs root in a namespace that allows it.
mkdir -p "$T/full"
if mount -t tmpfs -o size=8m tmpfs "$T/full" 2> /dev/null; then
  F() { "$H" vstore --dir "$T/full/db" "$@"; }
  awk 'BEGIN { d = "w"; while (length(d) < 10000) d = d d;
    for (i = 0; i < 2000; i++)
      printf "{\"id\":\"f%d\",\"embedding\":[%d,1],\"document\":\"%s %d\",\"metadata\":{\"i\":%d}}\n", i, i, d, i, i }' > "$T/fill.jsonl"
  F create fill > /dev/null
  if F add fill --file "$T/fill.jsonl" --batch 50 > /dev/null 2> "$T/err"; then bad "full disk: add exited 0"
  else grep -q "disk is full" "$T/err" && ok || bad "full disk: add: $(cat "$T/err")"; fi
  grep -q "warning: .*\.hnsw.*No space left" "$T/err" && ok || bad "full disk: the failed index save is not reported: $(cat "$T/err")"
  n=$(F count fill 2> /dev/null)
  [ "${n:-0}" -ge 100 ] || bad "full disk: only ${n:-0} records stored before it filled"
  # the disk is full to the last block: a delete must still commit
  dd if=/dev/zero of="$T/full/filler" bs=4k 2> /dev/null
  F remove fill --where '{"i":{"$lt":50}}' > "$T/out" 2> "$T/err" && [ "$(cat "$T/out")" = 50 ] \
    && [ "$(F count fill 2> /dev/null)" = $((n - 50)) ] && ok \
    || bad "full disk: remove: $(cat "$T/out") $(cat "$T/err")"
  if F add fill --file "$T/fill.jsonl" --batch 50 > /dev/null 2> "$T/err"; then bad "full disk: a second add exited 0"
  else grep -q "disk is full" "$T/err" && ok || bad "full disk: second add: $(cat "$T/err")"; fi
  # through HTTP: 507 with {"error", "message"} for a write; a delete is 200
  serve "$T/full/db"
  if [ $up = 1 ]; then
    A="http://127.0.0.1:$port/api/v2/tenants/default_tenant/databases/default_database/collections"
    cid=$(curl -s "$A/fill" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    awk 'BEGIN { d = "w"; while (length(d) < 10000) d = d d; n = 40
      printf "{\"ids\":["; for (i = 0; i < n; i++) printf "%s\"h%d\"", i ? "," : "", i
      printf "],\"embeddings\":["; for (i = 0; i < n; i++) printf "%s[%d,2]", i ? "," : "", i
      printf "],\"documents\":["; for (i = 0; i < n; i++) printf "%s\"%s %d\"", i ? "," : "", d, i
      printf "]}" }' > "$T/body.json"
    code=$(curl -s -o "$T/c" -w '%{http_code}' -X POST --data-binary @"$T/body.json" "$A/$cid/add")
    [ "$code" = 507 ] && grep -q '"error":"InsufficientStorageError","message":".*disk is full' "$T/c" && ok \
      || bad "full disk: HTTP add: $code $(head -c 300 "$T/c")"
    code=$(curl -s -o "$T/c" -w '%{http_code}' -X POST -d '{"where":{"i":{"$lt":80}}}' "$A/$cid/delete")
    [ "$code" = 200 ] && grep -q '"deleted":30' "$T/c" && ok || bad "full disk: HTTP delete: $code $(cat "$T/c")"
  else
    bad "hearth serve on the full disk did not come up: $(cat "$T/serve.log")"
  fi
  kill "$SERVER_PID" 2> /dev/null; wait "$SERVER_PID" 2> /dev/null; SERVER_PID=
  umount "$T/full"
else
  echo "note: the full-disk checks are skipped (no permission to mount a small tmpfs)"
fi

# ---- the chromadb npm client against hearth serve --vstore-dir
if [ -d "$ROOT/node_modules/chromadb" ] && command -v node > /dev/null; then
  serve "$T/chroma"
  if [ $up = 1 ]; then
    if (cd "$ROOT" && node tests/vstore/chroma_client.mjs "http://127.0.0.1:$port") > "$T/node.log" 2>&1; then ok
    else bad "chromadb client: $(tail -20 "$T/node.log")"; fi
    # the path is percent-decoded once (by libmicrohttpd), not twice: x%2541 is tenant "x%41"
    A="http://127.0.0.1:$port/api/v2"
    curl -s -o /dev/null -X POST -d '{"name":"xA"}' "$A/tenants"
    code=$(curl -s -o "$T/c" -w '%{http_code}' "$A/tenants/x%2541")
    [ "$code" = 404 ] && ok || bad "x%2541 decoded twice: $code $(cat "$T/c")"
    curl -s -o /dev/null -X POST -d '{"name":"x%41"}' "$A/tenants"
    code=$(curl -s -o "$T/c" -w '%{http_code}' "$A/tenants/x%2541")
    [ "$code" = 200 ] && grep -q '"name":"x%41"' "$T/c" && ok || bad "tenant x%41: $code $(cat "$T/c")"
  else
    bad "hearth serve --vstore-dir did not come up: $(cat "$T/serve.log")"
  fi
  kill "$SERVER_PID" 2> /dev/null; wait "$SERVER_PID" 2> /dev/null; SERVER_PID=
else
  echo "  (chromadb client test skipped: no node or node_modules/chromadb)"
fi

echo "test_vstore.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
