#!/usr/bin/env bash
# tests/server/test_embed.sh: `hearth embed` (JSONL in and out, a malformed line reported with
# its number) and `hearth serve --embed-model` with the openai and chromadb clients
# (tests/server/embed_clients.mjs), on the committed random BERT (tests/fixtures/embed).
# Usage: tests/server/test_embed.sh [build/hearth]
set -u
H=${1:-./build/hearth}
M=tests/fixtures/embed/bert_tiny.gguf
T=$(mktemp -d)
fails=0
ok() { :; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2> /dev/null; wait 2> /dev/null; rm -rf "$T"; }
trap cleanup EXIT

# ---- hearth embed
printf '%s\n' '"hello world, this is a test."' '' '{"text": "a", "id": 7}' > "$T/in.jsonl"
"$H" embed --model $M --input "$T/in.jsonl" > "$T/out.jsonl" 2> "$T/err" || bad "embed: exit $?: $(cat "$T/err")"
[ "$(wc -l < "$T/out.jsonl")" = 2 ] || bad "embed: $(wc -l < "$T/out.jsonl") lines, want 2 (blank skipped)"
grep -q '^{"index":1,"id":7,"tokens":3,"embedding":\[' "$T/out.jsonl" || bad "embed: second line: $(sed -n 2p "$T/out.jsonl" | cut -c1-80)"
# the same vectors from stdin, one text a batch
# (within 1e-5: the F32 products' sgemm blocks by the batch's rows)
"$H" embed -m $M -b 1 < "$T/in.jsonl" > "$T/out2.jsonl" 2> "$T/err" || bad "embed: stdin: $(cat "$T/err")"
paste -d'\n' "$T/out.jsonl" "$T/out2.jsonl" | sed 's/.*"embedding":\[//; s/\]}$//' | tr ',' ' ' |
  awk 'NR % 2 { split($0, a, " "); next } { for (i = 1; i <= NF; i++) { d = $i - a[i]; if (d < 0) d = -d; if (d > 1e-5) bad = 1 } }
       END { exit bad }' || bad "embed: stdin with --batch 1 differs from the file in one batch"
n=$(head -1 "$T/out.jsonl" | grep -o ',' | wc -l)
[ "$n" -ge 64 ] || bad "embed: the vector has $n commas, want 64 values"
printf '%s\n' '"fine"' '{"txt": "no"}' > "$T/bad.jsonl"
"$H" embed -m $M -i "$T/bad.jsonl" > /dev/null 2> "$T/err" && bad "embed: a line without text accepted"
grep -q 'line 2: expected a JSON string or an object with a string "text"' "$T/err" || bad "embed: message: $(cat "$T/err")"
printf '%s\n' '"fine"' '"fine"' '{"text": "unterminated' > "$T/bad.jsonl"
"$H" embed -m $M -i "$T/bad.jsonl" > /dev/null 2> "$T/err" && bad "embed: malformed JSON accepted"
grep -q 'line 3, column' "$T/err" || bad "embed: malformed JSON message: $(cat "$T/err")"
printf '"%s"\n' "$(printf 'word %.0s' $(seq 100))" > "$T/long.jsonl"
"$H" embed -m $M -i "$T/long.jsonl" --no-truncate > /dev/null 2> "$T/err" && bad "embed: --no-truncate accepted a 102-token text"
grep -q 'line 1: input 0 has 102 tokens; the model takes at most 64' "$T/err" || bad "embed: too long message: $(cat "$T/err")"
"$H" embed -m $M -i "$T/long.jsonl" | grep -q '"tokens":64,' || bad "embed: not truncated to 64 tokens"
"$H" embed -m $M --tokenize <<< '"Hello, World!"' | grep -q '"ids":\[101,7592,1010,2088,999,102\]' || bad "embed --tokenize"
"$H" embed -m README.md < /dev/null 2> "$T/err" && bad "embed: README.md taken for a model"
grep -q 'not an embedding model' "$T/err" || bad "embed: wrong model message: $(cat "$T/err")"
"$H" embed -m $M --info | grep -q '"dim":64,"max_tokens":64,"pooling":"mean"' || bad "embed --info"

# ---- hearth serve --embed-model: the clients
up=0
for _attempt in 1 2 3; do
  port=$((20000 + RANDOM % 20000))
  "$H" serve --embed-model $M --vstore-dir "$T/vs" --port $port > "$T/serve.log" 2>&1 &
  SERVER_PID=$!
  for _i in $(seq 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && { up=1; break; }
    kill -0 $SERVER_PID 2> /dev/null || break
    sleep 0.1
  done
  [ $up = 1 ] && break
  kill $SERVER_PID 2> /dev/null; wait $SERVER_PID 2> /dev/null
done
if [ $up = 1 ]; then
  node tests/server/embed_clients.mjs "http://127.0.0.1:$port" random-bert-tiny > "$T/node.log" 2>&1 ||
    bad "embed clients: $(tail -20 "$T/node.log")"
  kill -INT $SERVER_PID; wait $SERVER_PID || bad "serve: exit status $? on SIGINT"
  SERVER_PID=
else
  bad "serve --embed-model did not start: $(cat "$T/serve.log")"
fi
# a bad embedding model: the server does not start, and says why
"$H" serve --embed-model README.md --port 0 > /dev/null 2> "$T/err" && bad "serve: README.md taken as an embedding model"
grep -q 'not an embedding model' "$T/err" || bad "serve: message: $(cat "$T/err")"
if grep -q "runtime error\|AddressSanitizer\|LeakSanitizer" "$T/serve.log" 2> /dev/null; then bad "sanitizer report: $(cat "$T/serve.log")"; fi
[ $fails = 0 ] && echo "test_embed.sh: all passed" || { echo "test_embed.sh: $fails failed"; exit 1; }
