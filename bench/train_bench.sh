#!/usr/bin/env bash
# make bench: one training step of GPT-2 124M (B=4, T=64, random init, random tokens, AdamW),
# timed for hearth, PyTorch CPU (Debian's python3-torch) and karpathy/llm.c's CPU trainer
# (train_gpt2.c), one after another in one run with the same thread count; then a table of
# median ms/step, tokens/s, hearth's ratio to each peer, and hearth's achieved GFLOP/s as a
# fraction of OpenBLAS sgemm measured in the same run. Results go in docs/BENCHMARKS.md.
#
#   bench/train_bench.sh [--steps N] [--warmup N] [--threads N] [--profile]
#                        [--no-pytorch] [--no-llmc]
#
# Environment: BUILD (hearth's build folder, default build), PYTHON_TORCH (a python with torch
# and numpy, default /usr/bin/python3), HEARTH_PEERS (where llm.c lives, default
# ~/.cache/hearth-peers). Needs no network: llm.c's source must already be in
# $HEARTH_PEERS/llm.c (the script says how to get it, and reports llm.c as skipped otherwise).
# QUIET_WAIT (default 120): each implementation waits up to this many seconds for the machine
# to go idle before it starts, and afterwards the script reports how much CPU other processes
# took while it ran (on 2 cores any other load skews the figures badly; rerun if flagged).
#
# PyTorch runs twice: as shipped (glibc malloc defaults), and with glibc malloc told to keep
# freed memory (MALLOC_MMAP_MAX_=0, no trimming), which spares it the page faults of
# re-allocating its ~1.5 GB of per-step temporaries; see docs/BENCHMARKS.md for why both.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
PY=${PYTHON_TORCH:-/usr/bin/python3}
PEERS=${HEARTH_PEERS:-$HOME/.cache/hearth-peers}
LLMC=$PEERS/llm.c
STEPS=10 WARMUP=2 THREADS=2 PROFILE=0 DO_PT=1 DO_LLMC=1
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --no-pytorch) DO_PT=0; shift ;;
    --no-llmc) DO_LLMC=0; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Pulls one field out of a one-line JSON object (numbers and plain strings only).
jget() { sed -n "s/.*\"$2\": *\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1" | head -n1; }

# Contention check: CPU the rest of the machine used while one implementation ran, from
# /proc/stat (all busy jiffies) minus what our children used (bash's `times`), in cores.
# The timings are only comparable when it is near 0 (nothing else running).
HZ=$(getconf CLK_TCK)
sys_busy() { awk '/^cpu /{ printf "%d %d\n", $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
kids_cpu() { # sets KC; `times` must run in this shell (not a subshell) to see our children
  times > "$tmp/times"
  KC=$(tail -n1 "$tmp/times" | awk '{ for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.2f", s }')
}
# Waits (up to QUIET_WAIT seconds, default 120) until the machine has been idle for 3 s, so a
# run does not start while something else (a build, a test suite) holds the cores.
wait_quiet() {
  local until=$((SECONDS + ${QUIET_WAIT:-120})) b0 b1
  while :; do
    read -r b0 _ < <(sys_busy); sleep 3; read -r b1 _ < <(sys_busy)
    awk -v d="$((b1 - b0))" -v hz="$HZ" 'BEGIN { exit !(d / hz / 3 < 0.15) }' && return 0
    if [ $SECONDS -ge $until ]; then echo "   (the machine is busy; running anyway)"; return 0; fi
  done
}
mon_start() {
  wait_quiet
  read -r mb0 ms0 < <(sys_busy); kids_cpu; mk0=$KC; mt0=$(date +%s.%N); }
mon_end() { # sets OTHER (cores busy elsewhere since mon_start) and CONTENDED (0/1); prints them
  local b1 s1 k1 t1 st; read -r b1 s1 < <(sys_busy); kids_cpu; k1=$KC; t1=$(date +%s.%N)
  read -r OTHER st < <(awk -v b="$((b1 - mb0))" -v st="$((s1 - ms0))" -v k0="$mk0" -v k1="$k1" \
    -v t0="$mt0" -v t1="$t1" -v hz="$HZ" 'BEGIN { w = t1 - t0; o = (b / hz - (k1 - k0)) / w
      if (o < 0) o = 0; printf "%.2f %.2f\n", o, st / hz / w }')
  CONTENDED=$(awk -v o="$OTHER" -v s="$st" 'BEGIN { print (o > 0.25 || s > 0.25) ? 1 : 0 }')
  echo "   other load while it ran: $OTHER cores busy elsewhere, $st stolen by the host" \
    "$([ "$CONTENDED" = 1 ] && echo '<-- contended')"
}
# measure FN ARGS: runs FN (which sets ROW) between mon_start and mon_end, again up to RETRIES
# times (default 1) while other load skewed it; appends ROW and the other load to rows.
measure() {
  local i
  for ((i = 0; i <= ${RETRIES:-1}; i++)); do
    [ $i -gt 0 ] && echo "   contended: measuring again"
    mon_start; "$@"; mon_end
    [ "$CONTENDED" = 1 ] || break
  done
  rows+=("$ROW|$OTHER")
}

avx512=""; if grep -qw avx512f /proc/cpuinfo; then avx512=", AVX-512"; fi
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')$avx512, $(nproc) cores," \
  "$(free -g | awk '/^Mem:/{print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== GPT-2 124M, B=4, T=64, $THREADS threads, $WARMUP warmup + $STEPS timed steps each"

# rows: name|median ms|tokens/s|note|other load (cores)
rows=()

# ---- hearth
[ -x "$BUILD/train_bench" ] || make -s "$BUILD/train_bench"
run_hearth() {
  echo "== hearth ($BUILD/train_bench)"
  "$BUILD/train_bench" --json --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" > "$tmp/hearth.json"
  H=$(tail -n1 "$tmp/hearth.json")
  h_ms=$(jget "$H" median_ms)
  echo "   median $h_ms ms/step, $(jget "$H" tokens_per_s) tokens/s, $(jget "$H" gflops) GFLOP/s;" \
    "sgemm peak $(jget "$H" sgemm_peak_gflops) GFLOP/s (n=$(jget "$H" sgemm_peak_n))"
  ROW="hearth|$h_ms|$(jget "$H" tokens_per_s)|$(jget "$H" gflops) GFLOP/s"
}
measure run_hearth

# ---- PyTorch
pt_run() { # $1 label, rest: env assignments
  local label=$1; shift
  echo "== $label"
  if env "$@" "$PY" bench/peers/pytorch_train.py --json --steps "$STEPS" --warmup "$WARMUP" \
       --threads "$THREADS" > "$tmp/pt.json" 2> "$tmp/pt.err"; then
    local P; P=$(tail -n1 "$tmp/pt.json")
    echo "   median $(jget "$P" median_ms) ms/step, $(jget "$P" tokens_per_s) tokens/s" \
      "(torch $(jget "$P" torch), AdamW $(jget "$P" adamw): $(jget "$P" adamw_note))"
    ROW="$label|$(jget "$P" median_ms)|$(jget "$P" tokens_per_s)|torch $(jget "$P" torch), AdamW $(jget "$P" adamw)"
  else
    echo "   failed: $(tail -n3 "$tmp/pt.err")"
    ROW="$label|-|-|failed"
  fi
}
if [ "$DO_PT" = 1 ]; then
  if "$PY" -c 'import torch' 2>/dev/null; then
    measure pt_run "pytorch"
    measure pt_run "pytorch, tuned malloc" MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 \
      MALLOC_TOP_PAD_=268435456
  else
    echo "== pytorch: skipped ($PY has no torch: apt-get install python3-torch)"
    rows+=("pytorch|-|-|skipped: no torch|")
  fi
fi

# ---- llm.c
llmc_skip() { echo "   llm.c skipped: $1"; rows+=("llm.c|-|-|skipped|"); }
if [ "$DO_LLMC" = 1 ]; then
  echo "== llm.c ($LLMC)"
  if [ ! -f "$LLMC/train_gpt2.c" ]; then
    llmc_skip "no source in $LLMC. Get it once (needs the network), then rerun:
     git clone https://github.com/karpathy/llm.c $LLMC"
  elif ! "$PY" -c 'import numpy' 2>/dev/null; then
    llmc_skip "$PY has no numpy to write its checkpoint (apt-get install python3-numpy)"
  else
    # Build as llm.c's Makefile does for the CPU trainer (gcc, -Ofast -march=native, OpenMP).
    if [ ! -x "$LLMC/train_gpt2" ] || [ "$LLMC/train_gpt2.c" -nt "$LLMC/train_gpt2" ]; then
      (cd "$LLMC" && gcc -Ofast -Wno-unused-result -Wno-ignored-pragmas -Wno-unknown-attributes \
        -march=native -fopenmp -DOMP train_gpt2.c -lm -lgomp -o train_gpt2)
    fi
    "$PY" bench/peers/llmc_prepare.py "$LLMC"
    if [ -e "$LLMC/.git" ]; then rev=$(git -C "$LLMC" rev-parse HEAD); else
      rev=$(cat "$LLMC/.hearth-commit" 2>/dev/null || echo unknown); fi
    rev=${rev:0:7}
    run_llmc() {
      # train_gpt2 runs 41 steps with val every 10 and sampling every 20; its "took" covers
      # only the training step (forward, zero_grad, backward, update). Stop it once enough
      # steps are in. stdbuf: its stdout is a file here, which stdio would buffer.
      need=$((WARMUP + STEPS))
      (cd "$LLMC" && exec stdbuf -oL ./train_gpt2) > "$tmp/llmc.log" 2>&1 &
      pid=$!
      deadline=$((SECONDS + 1200))
      while kill -0 "$pid" 2>/dev/null; do
        n=$(grep -c '^step [0-9]*: train loss .*took' "$tmp/llmc.log" || true)
        if [ "$n" -ge "$need" ] || [ $SECONDS -ge $deadline ]; then kill "$pid" 2>/dev/null || true; break; fi
        sleep 0.5
      done
      wait "$pid" 2>/dev/null || true
      l_ms=$(awk -v w="$WARMUP" -v n="$STEPS" '/^step [0-9]+: train loss .*took/ {
               s = $2; sub(":", "", s); if (s + 0 < w || k >= n) next
               t = $0; sub(/.*took /, "", t); sub(/ ms.*/, "", t); v[k++] = t + 0 }
             END { if (!k) exit; for (i = 0; i < k; i++) for (j = i + 1; j < k; j++)
                     if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
                   printf "%.2f", (k % 2) ? v[int(k / 2)] : (v[k / 2 - 1] + v[k / 2]) / 2 }' "$tmp/llmc.log")
      if [ -n "$l_ms" ]; then
        l_tok=$(awk -v m="$l_ms" 'BEGIN { printf "%.1f", 256 / (m / 1000) }')
        echo "   median $l_ms ms/step, $l_tok tokens/s (commit $rev)"
        ROW="llm.c|$l_ms|$l_tok|train_gpt2.c @ $rev, gcc -Ofast"
      else
        echo "   no training steps parsed; the end of its output:"; tail -n5 "$tmp/llmc.log" | sed 's/^/   /'
        ROW="llm.c|-|-|failed"
      fi
    }
    measure run_llmc
  fi
fi

# ---- table
echo
echo "GPT-2 124M training step, B=4, T=64, $THREADS threads (median of $STEPS steps after $WARMUP warmup)"
printf '| %-22s | %9s | %8s | %14s | %-36s | %10s |\n' implementation "ms/step" "tokens/s" \
  "hearth speedup" notes "other load"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..11})" \
  "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..38})" \
  "$(printf -- '-%.0s' {1..12})"
for r in "${rows[@]}"; do
  IFS='|' read -r name ms tok note other <<<"$r"
  ratio=$(awk -v a="$h_ms" -v b="$ms" 'BEGIN { if (b + 0 > 0) printf "%.2fx", b / a; else print "-" }')
  printf '| %-22s | %9s | %8s | %14s | %-36s | %10s |\n' "$name" "$ms" "$tok" "$ratio" "$note" "$other"
done
echo
echo "hearth: $(jget "$H" gflops) GFLOP/s achieved (3 x $(jget "$H" flops_per_token_fwd) FLOPs/token) =" \
  "$(awk -v f="$(jget "$H" peak_fraction)" 'BEGIN { printf "%.1f", 100 * f }')% of OpenBLAS sgemm" \
  "($(jget "$H" sgemm_peak_gflops) GFLOP/s, n=$(jget "$H" sgemm_peak_n), same process)"
echo "other load: cores that other processes kept busy while it ran (0 = a clean measurement)"
echo "hearth phases, ms/step (mean): $(sed -n 's/.*"phases_ms":{\([^}]*\)}.*/\1/p' <<<"$H" | tr -d '"' | sed 's/:/ /g; s/,/, /g')"

if [ "$PROFILE" = 1 ]; then
  echo
  echo "== hearth --profile (kernel timings; the wrappers add a little overhead)"
  "$BUILD/train_bench" --profile --no-peak --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" 2>/dev/null
fi
