#!/usr/bin/env bash
# bench/finetune_bench.sh: a LoRA fine-tuning step, hearth against PyTorch, on a Llama of about
# 300M parameters (tools/gguf_random_llama.py SHAPE 300m: width 1024, 20 layers, 16 heads, 8 KV
# heads, FFN 2816, 32000 tokens; noise weights), both with an F32 base and rank-8 adapters on
# q, k, v, o, batch B x T tokens, THREADS threads. hearth: `hearth finetune` on that GGUF in each
# file type of TYPES (default "F32 Q8_0 Q4_0", made from the F16 one by llama-quantize, or
# `hearth quantize` without it: F32 is the base loaded in F32, Q8_0 and Q4_0 are QLoRA, the base
# kept in its type and dequantized per product) with a text corpus, no held-out split (no evals),
# its per-step ms from metrics.jsonl; PyTorch: bench/peers/lora_torch.py (the same model in torch
# ops, random weights, F32), run once per round and compared with each of hearth's rows. Peak memory: /usr/bin/time's maximum resident set size for each whole
# process. ROUNDS rounds, interleaved (hearth, torch, hearth, torch, ...); per round the median
# step time of steps 2..STEPS; the table gives the medians and the ratio per round.
#
#   bench/finetune_bench.sh [STEPS] [ROUNDS]       (defaults 3 and 3; B=1, T=1024, THREADS=2)
#   T=128 bench/finetune_bench.sh 5 3      (the earlier, smaller shape)
#
# The default shape is one packed sequence of 1024 tokens per step: what a LoRA fine-tuning run
# on chat or instruction data uses per micro-batch on a small machine (PEFT/TRL and Unsloth
# examples pack to 1024-2048 tokens, micro-batch 1-2, gradient accumulation for the rest).
# B=4 T=512 has twice the tokens per step: PyTorch then takes minutes a step on 2 cores.
#
# Environment: BUILD (default build), PYTHON_TORCH (default /usr/bin/python3), LLAMA_DIR (its
# gguf-py and ggml-vocab-llama-spm.gguf, default ~/.cache/hearth-peers/llama.cpp), B, T,
# THREADS, RANK, TYPES, MODEL (an existing F16 GGUF of that shape to reuse).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-3} ROUNDS=${2:-3}
BUILD=${BUILD:-build} PY=${PYTHON_TORCH:-/usr/bin/python3}
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
B=${B:-1} T=${T:-1024} THREADS=${THREADS:-2} RANK=${RANK:-8} TYPES=${TYPES:-F32 Q8_0 Q4_0}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # both sides: spinning threads crawl on a loaded machine
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
MODEL=${MODEL:-$W/llama300m.gguf}
if [ ! -s "$MODEL" ]; then
  PYTHONPATH=$LLAMA_DIR/gguf-py "$PY" tools/gguf_random_llama.py \
    "$LLAMA_DIR/models/ggml-vocab-llama-spm.gguf" "$MODEL" 1 300m > /dev/null
fi
for ty in $TYPES; do
  if [ -x "$LLAMA_DIR/build/bin/llama-quantize" ]; then
    "$LLAMA_DIR/build/bin/llama-quantize" "$MODEL" "$W/base-$ty.gguf" "$ty" > /dev/null 2>&1
  else
    "$BUILD/hearth" quantize "$MODEL" "$W/base-$ty.gguf" "$ty" > /dev/null
  fi
done
for i in $(seq 4000); do echo "the quick brown fox $i jumps over the lazy dog near the river bank"; done > "$W/corpus.txt"
echo "load before: $(uptime | sed 's/.*load average: //')"
hearth_round() { # TYPE
  rm -rf "$W/run"
  /usr/bin/time -v "$BUILD/hearth" finetune --base "$W/base-$1.gguf" --data "$W/corpus.txt" --out "$W/run" \
    --steps "$STEPS" --batch "$B" --seq "$T" --threads "$THREADS" --val-frac 0 \
    --lora-rank "$RANK" --lora-alpha $((2 * RANK)) --lora-targets q,k,v,o --lora-dropout 0 \
    > "$W/h.out" 2> "$W/h.time"
  grep -o '"ms":[0-9.]*' "$W/run/metrics.jsonl" | cut -d: -f2 | tail -n +2 | sort -g |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
  grep 'Maximum resident' "$W/h.time" | awk '{print $NF}'
}
torch_round() {
  /usr/bin/time -v "$PY" bench/peers/lora_torch.py 1024 20 16 8 2816 32000 "$B" "$T" "$RANK" \
    "$STEPS" "$THREADS" > "$W/t.out" 2> "$W/t.time"
  grep '^step' "$W/t.out" | awk '{print $3}' | tail -n +2 | sort -g |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
  grep 'Maximum resident' "$W/t.time" | awk '{print $NF}'
}
printf '%-6s %-6s %-12s %-12s %-10s %-12s %-12s %-10s\n' round base "hearth ms" "torch ms" \
  "speed x" "hearth MB" "torch MB" "mem x"
declare -A h0 h1 # per type: hearth's step ms and peak KB of the round
for r in $(seq "$ROUNDS"); do
  for ty in $TYPES; do
    mapfile -t h < <(hearth_round "$ty")
    h0[$ty]=${h[0]} h1[$ty]=${h[1]}
  done
  mapfile -t p < <(torch_round)
  for ty in $TYPES; do
    awk -v r="$r" -v ty="$ty" -v hm="${h0[$ty]}" -v pm="${p[0]}" -v hr="${h1[$ty]}" -v pr="${p[1]}" \
      'BEGIN { printf "%-6s %-6s %-12.1f %-12.1f %-10.2f %-12.0f %-12.0f %-10.2f\n", r, ty, hm, pm,
        pm / hm, hr / 1024, pr / 1024, hr / pr }'
  done
done
echo "tokens per step: $((B * T)); load after: $(uptime | sed 's/.*load average: //')"
