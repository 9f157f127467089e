#!/usr/bin/env bash
# bench/dist_scaling.sh: data-parallel training throughput on this machine, GPT-2 small shape
# (12 layers, width 768, 12 heads, vocab 50257, tied head), interleaved in one run:
#   h1   hearth, 1 process x THREADS threads, --accum RANKS (the same global batch)
#   hN   hearth, mpirun -np RANKS x 1 thread (Open MPI, shared memory)
#   pt   PyTorch DDP, RANKS processes x 1 thread, gloo (Debian's python3-torch;
#        bench/peers/pytorch_ddp.py, the model of bench/peers/pytorch_train.py)
# each micro-batch BATCH x SEQ tokens, STEPS steps of which the first WARMUP are not timed;
# rounds h1 hN pt, h1 hN pt, ... Per config: median step ms and tokens/s of the whole job
# (hearth: from metrics.jsonl; PyTorch: its own timer around zero_grad..step). Then the ratios
# hN/pt (the target: >= 1.3) and hN/h1 (scaling), median and range over the rounds, and the
# load average. Results go in docs/BENCHMARKS.md.
#
#   bench/dist_scaling.sh [--rounds N] [--steps N] [--warmup N] [--batch B] [--seq T]
#                         [--layers L] [--ranks N] [--threads N] [--data FILE]
#
# Data: a text file read as bytes (default ../shared/data/tinyshakespeare.txt, else a generated
# one); the model's vocabulary is set to 50257, so the compute is GPT-2's. PyTorch trains on
# random tokens (the same compute). Environment: BUILD (default build), PYTHON_TORCH (default
# /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${PYTHON_TORCH:-/usr/bin/python3}
ROUNDS=3 STEPS=5 WARMUP=2 BATCH=4 SEQ=64 LAYERS=12 RANKS=2 THREADS=2
DATA=../shared/data/tinyshakespeare.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --ranks) RANKS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dist_scaling.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$DATA" ]; then
  DATA=$tmp/corpus.txt
  for i in $(seq 20000); do echo "line $i of a generated corpus for the scaling benchmark"; done > "$DATA"
fi
H=$BUILD/hearth
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
MODEL=(--preset gpt2-124m --n-layer "$LAYERS" --vocab-size 50257 --batch "$BATCH" --seq "$SEQ"
  --steps "$STEPS" --sample 0 --eval-batches 1 --data "$DATA")

# median step ms of steps after WARMUP in a run's metrics.jsonl
median_ms() {
  grep -o '"ms":[0-9.e+-]*' "$1/metrics.jsonl" | cut -d: -f2 | tail -n +$((WARMUP + 1)) |
    sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
tokens=$((RANKS * BATCH * SEQ))
run_h1() {
  rm -rf "$tmp/h1"
  OMP_NUM_THREADS=$THREADS "$H" train "${MODEL[@]}" --out "$tmp/h1" --threads "$THREADS" --accum "$RANKS" > "$tmp/h1.log" 2>&1
  median_ms "$tmp/h1"
}
run_hn() {
  rm -rf "$tmp/hn"
  OMP_NUM_THREADS=1 "${MPI[@]}" -x OMP_NUM_THREADS -np "$RANKS" "$H" train "${MODEL[@]}" --out "$tmp/hn" --threads 1 > "$tmp/hn.log" 2>&1
  median_ms "$tmp/hn"
}
run_pt() {
  OMP_NUM_THREADS=1 "$PY" bench/peers/pytorch_ddp.py --ranks "$RANKS" --threads 1 --batch "$BATCH" --seq "$SEQ" \
    --layers "$LAYERS" --steps "$STEPS" --warmup "$WARMUP" 2> "$tmp/pt.log" | sed -n 's/.*"step_ms": \([0-9.]*\).*/\1/p'
}
echo "dist_scaling: GPT-2 shape, $LAYERS layers, micro-batch ${BATCH}x$SEQ, $RANKS ranks; $STEPS steps ($WARMUP untimed), $ROUNDS rounds"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
r_pt=() r_sc=()
for r in $(seq "$ROUNDS"); do
  a=$(run_h1) b=$(run_hn) c=$(run_pt)
  [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] || { echo "a run failed: see logs"; tail -5 "$tmp"/*.log; exit 1; }
  printf 'round %d: h1 %.0f ms (%.0f tok/s)  h%d %.0f ms (%.0f tok/s)  pytorch-ddp %.0f ms (%.0f tok/s)  load %s\n' \
    "$r" "$a" "$(echo "$tokens / $a * 1000" | bc -l)" "$RANKS" "$b" "$(echo "$tokens / $b * 1000" | bc -l)" \
    "$c" "$(echo "$tokens / $c * 1000" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
  r_pt+=("$(echo "$c / $b" | bc -l)") r_sc+=("$(echo "$a / $b" | bc -l)")
done
stats() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { printf "%.2fx (range %.2f-%.2f)", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR] }'; }
echo "tokens/s, hearth ${RANKS} ranks / PyTorch DDP ${RANKS} ranks: $(stats "${r_pt[@]}")"
echo "tokens/s, hearth ${RANKS} ranks x 1 thread / 1 rank x $THREADS threads: $(stats "${r_sc[@]}")"
grep -A4 "^data parallel:" "$tmp/hn.log" | sed 's/^/hearth (last round) /'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
