#!/usr/bin/env bash
# bench/serve_bench.sh: `hearth serve` under load — concurrency 1, 4 and 16, then Poisson arrivals
# — measured from the client (bench/serve_bench.mjs: TTFT, ITL, TPOT, end-to-end latency
# p50/p90/p99, request and output-token throughput, as vLLM's benchmark_serving reports them),
# then the same prompts against llama.cpp's llama-server on the same model file (the model
# exported as GGUF; both servers load that file) when LLAMA_SERVER (default
# ~/.cache/hearth-peers/llama.cpp/build/bin/llama-server) exists.
# The model: MODEL=PATH (a run directory or .safetensors), else the `small` preset (GPT-2
# family, 6 layers, d_model 384, byte vocabulary) after 2 training steps on
# tests/tokenizer/corpus.txt — effectively random weights, which cost the same per token as
# trained ones and never emit end-of-text, so every request generates exactly MAX_TOKENS.
# QUANT=TYPE (q8_0, q4_0, q4_k_m, ...): both servers load the GGUF after `hearth quantize` to
# that type (a type llama.cpp also runs: hearth's quantizer writes llama.cpp's layout).
# Run by `make bench-serve`; figures go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
H=$(realpath "$B/hearth")
SLOTS=${SLOTS:-16}
THREADS=${THREADS:-2}
PROMPT_WORDS=${PROMPT_WORDS:-24}
MAX_TOKENS=${MAX_TOKENS:-64}
RATE=${RATE:-4}
MODES=${MODES:-"c1:8 c4:16 c16:32 r$RATE:32"}
[ -d node_modules ] || { echo "serve_bench: node_modules missing (make deps)"; exit 1; }
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2> /dev/null; rm -rf "$T"' EXIT
MODEL=${MODEL:-}
if [ -z "$MODEL" ]; then
  MODEL=$T/small
  "$H" train --data tests/tokenizer/corpus.txt --out "$MODEL" --preset small --steps 2 --batch 1 \
    --seq 64 --sample 0 --ckpt-every 2 --threads "$THREADS" > "$T/train.log" 2>&1 ||
    { echo "serve_bench: training failed: $(tail -3 "$T/train.log")"; exit 1; }
fi
# The same model file for both servers: GGUF, which llama.cpp's llama-server also serves.
"$H" export "$MODEL" --format gguf -o "$T/model.gguf" > /dev/null
QUANT=${QUANT:-}
if [ -n "$QUANT" ]; then
  "$H" quantize "$T/model.gguf" "$T/model-q.gguf" "$QUANT" > "$T/quant.log" 2>&1 ||
    { echo "serve_bench: quantize failed: $(tail -3 "$T/quant.log")"; exit 1; }
  mv "$T/model-q.gguf" "$T/model.gguf"
fi
LLAMA_SERVER=${LLAMA_SERVER:-$HOME/.cache/hearth-peers/llama.cpp/build/bin/llama-server}
CTX=${CTX:-256}
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== model: $(basename "$MODEL") as GGUF${QUANT:+ in $QUANT} ($(du -h "$T/model.gguf" | cut -f1)); $SLOTS slots, $THREADS threads, context $CTX per slot; prompts of $PROMPT_WORDS words, $MAX_TOKENS output tokens"

# wait_ready LOG URL: until the server answers /health with 200 (or dies)
wait_ready() {
  for _ in $(seq 600); do
    node -e "fetch(process.argv[1]).then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))" "$2/health" && return 0
    kill -0 "$pid" 2> /dev/null || { cat "$1"; exit 1; }
    sleep 0.2
  done
  echo "serve_bench: $2 never became ready"; exit 1
}

# run_load NAME URL: the warm-up, then every mode, into $T/NAME.jsonl
run_load() {
  node bench/serve_bench.mjs "$2" bench c1 2 "$PROMPT_WORDS" 8 > /dev/null # warm-up
  for m in $MODES; do
    node bench/serve_bench.mjs "$2" bench "${m%%:*}" "${m##*:}" "$PROMPT_WORDS" "$MAX_TOKENS" >> "$T/$1.jsonl"
  done
}

"$H" serve --model "$T/model.gguf" --model-name bench --port 0 --slots "$SLOTS" --threads "$THREADS" \
  --ctx "$CTX" --queue 256 > "$T/serve.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "listening on" "$T/serve.log" && break; kill -0 "$pid" || { cat "$T/serve.log"; exit 1; }; sleep 0.1; done
port=$(grep -o 'listening on http://[^ ]*' "$T/serve.log" | sed 's/.*://')
wait_ready "$T/serve.log" "http://127.0.0.1:$port"
run_load hearth "http://127.0.0.1:$port"
echo "== hearth's own /metrics (excerpt)"
node -e "fetch(process.argv[1]).then(r => r.text()).then(t => console.log(t.split('\n').filter(l => /_(sum|count) |_total/.test(l)).join('\n')))" "http://127.0.0.1:$port/metrics"
kill "$pid"; wait "$pid" 2> /dev/null || true; pid=

peers="hearth"
if [ -x "$LLAMA_SERVER" ]; then
  lport=$((20000 + RANDOM % 20000))
  # the same slots, threads and context per slot; continuous batching is llama-server's default
  "$LLAMA_SERVER" -m "$T/model.gguf" --host 127.0.0.1 --port "$lport" -np "$SLOTS" -c $((CTX * SLOTS)) \
    -t "$THREADS" -tb "$THREADS" --no-warmup > "$T/llama.log" 2>&1 &
  pid=$!
  wait_ready "$T/llama.log" "http://127.0.0.1:$lport"
  run_load llama.cpp "http://127.0.0.1:$lport"
  kill "$pid"; wait "$pid" 2> /dev/null || true; pid=
  peers="hearth llama.cpp"
else
  echo "== no llama-server at $LLAMA_SERVER: hearth alone (build llama.cpp as docs/BENCHMARKS.md says)"
fi

node -e '
const fs = require("fs");
const f = (x, d = 1) => Number.isFinite(x) ? x.toFixed(d) : "-";
const trip = (s) => `${f(s.p50)} / ${f(s.p90)} / ${f(s.p99)}`;
const [dir, ...peers] = process.argv.slice(1);
const all = {};
console.log("| server | load | requests (ok) | prompt tok | req/s | out tok/s | TTFT ms p50/p90/p99 | ITL ms p50/p90/p99 | TPOT ms p50 | E2E ms p50/p90/p99 |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const p of peers) {
  all[p] = fs.readFileSync(`${dir}/${p}.jsonl`, "utf8").trim().split("\n").map(JSON.parse);
  for (const r of all[p]) {
    const load = r.mode[0] === "c" ? `concurrency ${r.mode.slice(1)}` : `Poisson ${r.mode.slice(1)} req/s`;
    console.log(`| ${p} | ${load} | ${r.requests} (${r.completed}) | ${f(r.prompt_tokens_mean, 0)} | ${f(r.request_throughput, 2)} | ${f(r.output_token_throughput)} | ${trip(r.ttft_ms)} | ${trip(r.itl_ms)} | ${f(r.tpot_ms.p50)} | ${trip(r.e2e_ms)} |`);
  }
}
if (all["llama.cpp"]) {
  console.log("\nhearth / llama.cpp: output tokens/s (higher is better for hearth), TTFT p50 and E2E p50 (lower is better for hearth)");
  all.hearth.forEach((h, i) => {
    const l = all["llama.cpp"][i];
    console.log(`  ${h.mode}: throughput ${f(h.output_token_throughput / l.output_token_throughput, 2)}x, TTFT ${f(h.ttft_ms.p50 / l.ttft_ms.p50, 2)}x, E2E ${f(h.e2e_ms.p50 / l.e2e_ms.p50, 2)}x`);
  });
}' "$T" $peers
