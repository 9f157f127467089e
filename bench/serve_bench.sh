#!/usr/bin/env bash
# bench/serve_bench.sh: `hearth serve` under load — concurrency 1, 4 and 16, then Poisson arrivals
# — measured from the client (bench/serve_bench.mjs: TTFT, ITL, TPOT, end-to-end latency
# p50/p90/p99, request and output-token throughput, as vLLM's benchmark_serving reports them).
# The model: MODEL=PATH (a run directory or .safetensors), else the `small` preset (GPT-2
# family, 6 layers, d_model 384, byte vocabulary) after 2 training steps on
# tests/tokenizer/corpus.txt — effectively random weights, which cost the same per token as
# trained ones and never emit end-of-text, so every request generates exactly MAX_TOKENS.
# Run by `make bench-serve`; figures go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
H=$(realpath "$B/hearth")
SLOTS=${SLOTS:-16}
THREADS=${THREADS:-1}
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
"$H" serve --model "$MODEL" --model-name bench --port 0 --slots "$SLOTS" --threads "$THREADS" \
  --queue 256 > "$T/serve.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "ready" "$T/serve.log" && break; kill -0 "$pid" || { cat "$T/serve.log"; exit 1; }; sleep 0.1; done
port=$(grep -o 'listening on http://[^ ]*' "$T/serve.log" | sed 's/.*://')
echo "== hearth serve: $(basename "$MODEL"), --slots $SLOTS --threads $THREADS; prompts of $PROMPT_WORDS words, $MAX_TOKENS output tokens"
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
node bench/serve_bench.mjs "http://127.0.0.1:$port" bench c1 2 "$PROMPT_WORDS" 8 > /dev/null # warm-up
for m in $MODES; do
  node bench/serve_bench.mjs "http://127.0.0.1:$port" bench "${m%%:*}" "${m##*:}" "$PROMPT_WORDS" "$MAX_TOKENS" >> "$T/results.jsonl"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const f = (x, d = 1) => Number.isFinite(x) ? x.toFixed(d) : "-";
const trip = (s) => `${f(s.p50)} / ${f(s.p90)} / ${f(s.p99)}`;
console.log("| load | requests (ok) | prompt tok | req/s | out tok/s | TTFT ms p50/p90/p99 | ITL ms p50/p90/p99 | TPOT ms p50 | E2E ms p50/p90/p99 |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const load = r.mode[0] === "c" ? `concurrency ${r.mode.slice(1)}` : `Poisson ${r.mode.slice(1)} req/s`;
  console.log(`| ${load} | ${r.requests} (${r.completed}) | ${f(r.prompt_tokens_mean, 0)} | ${f(r.request_throughput, 2)} | ${f(r.output_token_throughput)} | ${trip(r.ttft_ms)} | ${trip(r.itl_ms)} | ${f(r.tpot_ms.p50)} | ${trip(r.e2e_ms)} |`);
}' "$T/results.jsonl"
echo "== server-side /metrics (excerpt)"
node -e "fetch(process.argv[1]).then(r => r.text()).then(t => console.log(t.split('\n').filter(l => /_(sum|count) |_total/.test(l)).join('\n')))" "http://127.0.0.1:$port/metrics"
