#!/usr/bin/env bash
# bench/finetune_cpu.sh: CPU time per LoRA fine-tuning step, hearth against PyTorch, on the
# model of bench/finetune_bench.sh (300M Llama, rank 8 on q,k,v,o, 2 threads). hearth gets the
# F16 GGUF itself as --base, so it keeps the base in F16 and dequantizes each matrix as used
# (QLoRA; not finetune_bench.sh's F32 row); PyTorch's model is F32. Wall time on a machine other
# work shares moves with that work; the CPU time a process spends (perf stat's task-clock, all
# threads) moves much less, so this is the load-robust companion of the interleaved wall-clock
# rounds. Per side: a run of S2 steps minus a run of S1 steps, over
# S2 - S1 (the load and the first steps cancel out).
#
#   bench/finetune_cpu.sh [S1] [S2]       (defaults 1 and 3; B=1, T=1024, THREADS=2)
#
# Needs perf (Debian's linux-perf). Environment: BUILD (default build; HEARTH_OLD: a second hearth binary to measure beside it),
# PYTHON_TORCH, LLAMA_DIR, B, T, THREADS, RANK, MODEL as in bench/finetune_bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
S1=${1:-1} S2=${2:-3}
command -v perf > /dev/null || { echo "finetune_cpu.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
BUILD=${BUILD:-build} PY=${PYTHON_TORCH:-/usr/bin/python3}
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
B=${B:-1} T=${T:-1024} THREADS=${THREADS:-2} RANK=${RANK:-8}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
MODEL=${MODEL:-$W/llama300m.gguf}
if [ ! -s "$MODEL" ]; then
  PYTHONPATH=$LLAMA_DIR/gguf-py "$PY" tools/gguf_random_llama.py \
    "$LLAMA_DIR/models/ggml-vocab-llama-spm.gguf" "$MODEL" 1 300m > /dev/null
fi
for i in $(seq 4000); do echo "the quick brown fox $i jumps over the lazy dog near the river bank"; done > "$W/corpus.txt"
task_ms() { perf stat -x, -e task-clock "$@" 2>&1 > /dev/null | grep task-clock | cut -d, -f1; }
hearth() { # BIN STEPS
  rm -rf "$W/run"
  task_ms "$1" finetune --base "$MODEL" --data "$W/corpus.txt" --out "$W/run" --steps "$2" \
    --batch "$B" --seq "$T" --threads "$THREADS" --val-frac 0 --lora-rank "$RANK" \
    --lora-alpha $((2 * RANK)) --lora-targets q,k,v,o --lora-dropout 0
}
torch() { task_ms "$PY" bench/peers/lora_torch.py 1024 20 16 8 2816 32000 "$B" "$T" "$RANK" "$1" "$THREADS"; }
per_step() { awk -v a="$1" -v b="$2" -v n=$((S2 - S1)) 'BEGIN { printf "%.0f", (b - a) / n }'; }
echo "B=$B T=$T, CPU ms per step (task-clock); load before: $(uptime | sed 's/.*load average: //')"
for who in ${HEARTH_OLD:+old} hearth torch; do
  case $who in
  old) a=$(hearth "$HEARTH_OLD" "$S1") b=$(hearth "$HEARTH_OLD" "$S2") ;;
  hearth) a=$(hearth "$BUILD/hearth" "$S1") b=$(hearth "$BUILD/hearth" "$S2") ;;
  torch) a=$(torch "$S1") b=$(torch "$S2") ;;
  esac
  echo "$who $(per_step "$a" "$b")"
done
echo "load after: $(uptime | sed 's/.*load average: //')"
