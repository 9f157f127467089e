#!/usr/bin/env bash
# make bench-ckpt: checkpoint cost on the GPT-2 124M preset (model + AdamW state, ~1.5 GB).
# (a) ckpt_save write throughput (every file fsync'd) against `dd conv=fdatasync` of the same
#     size into the same directory, alternating, in the same run; MB/s (10^6 bytes) and ratio.
# (b) training step time (B=4, T=64) with and without a checkpoint in flight on ckpt_writer:
#     the training thread's stall (the submit, and its wait for the writer's snapshot copy
#     before the next optimizer step) and the slowdown of the steps overlapping the background
#     copy and write, as fractions of a plain step.
# Results go in docs/BENCHMARKS.md.
#
#   bench/ckpt_bench.sh [--dir DIR] [--reps N] [--steps N] [--threads N] [--no-save] [--no-async]
#
# DIR (default: a temporary directory under $BUILD, i.e. the repository's disk) gets the
# checkpoints and dd's file; it is removed afterwards. Environment: BUILD (default build),
# QUIET_WAIT (default 120 s: each part first waits this long at most for the machine to go
# idle; on 2 cores any other load skews the figures; the load average is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DIR="" REPS=3 STEPS=6 THREADS=2 ASYNC=1 SAVE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-async) ASYNC=0; shift ;;
    --no-save) SAVE=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ckpt_bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
[ -x "$BUILD/ckpt_bench" ] || make -s "$BUILD/ckpt_bench"
work=$(mktemp -d "${DIR:-$BUILD}/ckpt-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

jget() { sed -n "s/.*\"$2\": *\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1" | head -n1; }
HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
wait_quiet() { # until the machine has been idle for 3 s, at most QUIET_WAIT seconds
  local until=$((SECONDS + ${QUIET_WAIT:-120})) b0 b1
  while :; do
    b0=$(busy); sleep 3; b1=$(busy)
    awk -v d="$((b1 - b0))" -v hz="$HZ" 'BEGIN { exit !(d / hz / 3 < 0.15) }' && return 0
    if [ $SECONDS -ge $until ]; then echo "   (the machine is busy; running anyway)"; return 0; fi
  done
}

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
  "$(free -g | awk '/^Mem:/{print $2}') GiB; disk $(df -h "$work" | awk 'NR==2{print $1", "$2}')"
if [ "$SAVE" = 1 ]; then
echo "== (a) ckpt_save of gpt2-124m vs dd conv=fdatasync, $REPS times each, into $work"
ck=() dd_mbs=() ddd_mbs=() bytes=0
for ((r = 1; r <= REPS; r++)); do
  wait_quiet; sync
  out=$("$BUILD/ckpt_bench" --dir "$work" --mode save --reps 1 --threads "$THREADS")
  J=$(tail -n1 <<<"$out"); bytes=$(jget "$J" bytes); ck+=("$(jget "$J" mb_per_s)")
  echo "   ckpt_save: $bytes bytes, $(jget "$J" median_ms) ms, $(jget "$J" mb_per_s) MB/s (load $(cut -d' ' -f1 /proc/loadavg))"
  rm -rf "$work"/step_* "$work"/latest
  wait_quiet; sync
  mib=$(((bytes + 1048575) / 1048576))
  t0=$(date +%s.%N)
  dd if=/dev/zero of="$work/dd.bin" bs=1M count="$mib" conv=fdatasync status=none
  t1=$(date +%s.%N)
  d=$(awk -v b="$((mib * 1048576))" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / (z - a) / 1e6 }')
  dd_mbs+=("$d")
  echo "   dd:        $((mib * 1048576)) bytes, $d MB/s"
  rm -f "$work/dd.bin"
  # for reference, the disk without the page cache: what O_DIRECT (ckpt_save's path) can reach
  sync
  t0=$(date +%s.%N)
  dd if=/dev/zero of="$work/dd.bin" bs=8M count="$(((mib + 7) / 8))" oflag=direct conv=fdatasync status=none
  t1=$(date +%s.%N)
  d=$(awk -v b="$(((mib + 7) / 8 * 8388608))" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / (z - a) / 1e6 }')
  ddd_mbs+=("$d")
  echo "   dd direct: $(((mib + 7) / 8 * 8388608)) bytes, $d MB/s (oflag=direct, reference only)"
  rm -f "$work/dd.bin"
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
c=$(med "${ck[@]}"); d=$(med "${dd_mbs[@]}")
dx=$(med "${ddd_mbs[@]}")
echo "   median: ckpt_save $c MB/s, dd $d MB/s, ratio $(awk -v c="$c" -v d="$d" 'BEGIN { printf "%.2fx", c / d }') (target >= 0.9x);" \
  "dd oflag=direct $dx MB/s (ckpt_save at $(awk -v c="$c" -v d="$dx" 'BEGIN { printf "%.2fx", c / d }') of it)"
fi

if [ "$ASYNC" = 1 ]; then
  echo "== (b) training step (gpt2-124m, B=4, T=64, $THREADS threads) with a checkpoint in flight"
  wait_quiet
  out=$("$BUILD/ckpt_bench" --dir "$work" --mode async --steps "$STEPS" --threads "$THREADS")
  sed '$d' <<<"$out" | sed 's/^/   /'
  J=$(tail -n1 <<<"$out")
  echo "   stall (the submit + waiting for the snapshot before the optimizer step): $(awk -v f="$(jget "$J" stall_frac)" 'BEGIN { printf "%.1f", 100 * f }')% of a step" \
    "(target <= 5%); all extra time for the checkpoint (submit + slower overlapping steps):" \
    "$(awk -v f="$(jget "$J" slowdown_total_frac)" 'BEGIN { printf "%.1f", 100 * f }')% of a step" \
    "(load $(cut -d' ' -f1 /proc/loadavg))"
fi
