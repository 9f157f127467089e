#!/usr/bin/env bash
# tests/server/test_serve.sh: the real `hearth serve` on a tiny model trained here in a second,
# driven by the official openai npm client and raw HTTP (tests/server/serve.mjs); then the
# model-loading state (503 with Retry-After while the tokenizer file blocks, a clean exit with
# the reason when the load fails), the HTTP layer against hostile clients (tests/server/limits.mjs,
# on a vector-store-only server), GGUF models of the Qwen2 and Llama 3 families chatting as
# llama.cpp does (tests/server/families.mjs), argument errors, and a clean SIGTERM shutdown.
# Usage: test_serve.sh PATH/TO/hearth
set -u
H=$(realpath "${1:?usage: test_serve.sh path/to/hearth}")
DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=serve_lib.sh
. "$DIR/serve_lib.sh"

# http_status URL: the status code of a GET (node: no curl dependency)
http_status() {
  node -e "require('http').get(process.argv[1], r => { console.log(r.statusCode, r.headers['retry-after'] || '-'); r.resume(); }).on('error', e => console.log('ERR'))" "$1"
}

for i in $(seq 300); do echo "to be or not to be, that is the question $((i % 7))"; done > "$T/corpus.txt"
if ! "$H" train --data "$T/corpus.txt" --out "$T/tiny" --steps 60 --seq 32 --batch 4 --sample 0 --ckpt-every 60 > "$T/train.log" 2>&1; then
  echo "FAIL: training the tiny model: $(tail -3 "$T/train.log")"; exit 1
fi

# the API, end to end
if start_server "$T/serve.log" --model "$T/tiny" --model-name tiny --slots 2 --queue 2 --threads 1 --timeout 2 --max-body 65536 --api-key sekret --max-conns-per-ip 0; then
  wait_ready "$T/serve.log"
  if node "$DIR/serve.mjs" "http://127.0.0.1:$PORT" sekret tiny 2 65536; then ok; else bad "serve.mjs (server log: $(tail -5 "$T/serve.log"))"; fi
  kill -TERM "$PID"; wait "$PID"; st=$?
  [ $st -eq 0 ] && grep -q "stopping (SIGTERM)" "$T/serve.log" && ok || bad "SIGTERM: exit $st, log: $(tail -3 "$T/serve.log")"
else
  bad "server did not start: $(cat "$T/serve.log")"
fi

# the Llama family through the same API: its meta says so, and a streamed chat completes
if "$H" train --data "$T/corpus.txt" --out "$T/llama" --preset llama-tiny --steps 4 --seq 32 --batch 4 --sample 0 --ckpt-every 4 > "$T/train2.log" 2>&1 &&
   start_server "$T/llama.log" --model "$T/llama" --threads 1; then
  wait_ready "$T/llama.log"
  got=$(node --input-type=module -e '
const base = process.argv[1];
const m = await (await fetch(base + "/v1/models")).json();
const r = await fetch(base + "/v1/chat/completions", { method: "POST", body: JSON.stringify({ model: m.data[0].id,
  messages: [{ role: "user", content: "to be" }], max_tokens: 6, stream: true }) });
const t = await r.text();
console.log(m.data[0].meta.family, r.status, t.trimEnd().endsWith("data: [DONE]"), /"finish_reason":"length"/.test(t));' "http://127.0.0.1:$PORT")
  [ "$got" = "llama 200 true true" ] && ok || bad "llama-tiny: got '$got'"
  kill -TERM "$PID"; wait "$PID"
else
  bad "llama-tiny: training or serving failed: $(tail -3 "$T/train2.log" "$T/llama.log" 2> /dev/null)"
fi

# while the model loads: the tokenizer is a FIFO, so the load blocks until a writer opens it
mkfifo "$T/tok.fifo"
if start_server "$T/load.log" --model "$T/tiny" --tokenizer "$T/tok.fifo"; then
  [ "$(http_status "http://127.0.0.1:$PORT/health")" = "503 1" ] && ok || bad "/health while loading: not 503 with Retry-After"
  code=$(node -e "fetch(process.argv[1], {method:'POST', body:'{\"prompt\":\"x\"}'}).then(r => console.log(r.status, r.headers.get('retry-after')))" "http://127.0.0.1:$PORT/v1/completions")
  [ "$code" = "503 1" ] && ok || bad "completion while loading: got '$code', want 503 with Retry-After"
  # open and close the writing end (as often as the loader opens it): the load fails, since a
  # FIFO is not a regular file
  for _ in $(seq 20); do
    kill -0 "$PID" 2> /dev/null || break
    timeout 1 sh -c ": > '$T/tok.fifo'" 2> /dev/null
  done
  wait "$PID"; st=$?
  [ $st -eq 1 ] && grep -q "not a regular file" "$T/load.log" && ok || bad "failed load: exit $st, log: $(cat "$T/load.log")"
else
  bad "server (loading) did not start: $(cat "$T/load.log")"
fi

# the HTTP layer against careless and hostile clients; no model, so it starts at once
if start_server "$T/limits.log" --vstore-dir "$T/vs" --api-key sekret --max-body 65536 --max-conns-per-ip 20 --header-timeout 1 --body-timeout 2 --timeout 5; then
  if node "$DIR/limits.mjs" "http://127.0.0.1:$PORT" sekret; then ok; else bad "limits.mjs (server log: $(tail -5 "$T/limits.log"))"; fi
  kill -TERM "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "limits server: non-zero exit on SIGTERM"
else
  bad "server (limits) did not start: $(cat "$T/limits.log")"
fi

# real model families from GGUF (tests/fixtures/gguf-families): Qwen2 with its ChatML template
# and a Llama 3.1-style model with Llama 3's, chatted with through the openai client (families.mjs:
# llama.cpp's greedy answer, the file stem as the model id, no end-of-turn token printed)
FX="$DIR/../fixtures/gguf-families"
for f in qwen2-Q8_0.gguf llama-Q8_0.gguf; do
  cp "$FX/$f" "$T/$f"
  if start_server "$T/fam-$f.log" --model "$T/$f" --threads 1; then
    wait_ready "$T/fam-$f.log" 200
    if node "$DIR/families.mjs" "http://127.0.0.1:$PORT" "$f" "$FX/expected.tsv"; then ok; else bad "families.mjs $f (log: $(tail -3 "$T/fam-$f.log"))"; fi
    kill -TERM "$PID"; wait "$PID"
  else
    bad "server did not start on $f: $(cat "$T/fam-$f.log")"
  fi
done

# argument errors
expect_fail() {
  local name=$1 pat=$2; shift 2
  if "$H" serve "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" && ok || bad "$name: stderr lacks /$pat/: $(cat "$T/err")"
}
expect_fail "nothing to serve" "--model PATH or --vstore-dir DIR is required"
expect_fail "bad port" "--port must be an integer" --model "$T/tiny" --port 70000
expect_fail "bad header timeout" "--header-timeout must be an integer" --model "$T/tiny" --header-timeout -1
expect_fail "unknown option" "unknown option '--frob'" --model "$T/tiny" --frob
expect_fail "bad chat template" "unknown chat template 'alpaca'" --model "$T/tiny" --chat-template alpaca
expect_fail "missing model" "nope" --model "$T/nope" --port 0
start_server "$T/busy.log" --model "$T/tiny" && {
  expect_fail "port in use" "cannot listen on 127.0.0.1:$PORT" --model "$T/tiny" --port "$PORT"
  kill -INT "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "SIGINT: non-zero exit"
}

# under SAN=1 a sanitizer report in any server's log is a failure
check_sanitizer_logs

echo "test_serve.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
