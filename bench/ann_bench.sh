#!/usr/bin/env bash
# make bench-ann: hearth's HNSW against hnswlib and FAISS IndexHNSWFlat (Debian's python3-hnswlib,
# python3-faiss) on fashion-mnist-784 (Debian's dataset-fashion-mnist): 60k base vectors, 10k
# queries, l2, one thread, M=16, ef_construction=200. Build time, then recall@10 and QPS for
# ef 10..160, all three in the same run on the same data; one table, and the targets (QPS at
# recall 0.95 and 0.99 >= 1.0x hnswlib's, build time <= 1.0x hnswlib's). Times are CPU
# seconds of the one working thread (the wall clock counts other users' work on a shared
# machine); wall-clock QPS is also in the JSON lines.
#
#   bench/ann_bench.sh [--quick] [--reps R] [--libs hnswlib,faiss]
#
# Environment: BUILD (default build); ANN_N / ANN_NQ (base and query counts; --quick sets
# 10000 / 2000); ANN_REPS (passes per ef, best kept; default 3); ANN_CACHE (default
# ~/.cache/hearth-bench: the exact ground truth, computed once); ANN_ISA (0 portable, 1 AVX2:
# caps hearth's distance kernels, e.g. to compare with a peer built without AVX-512).
# Exit status 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
N=${ANN_N:-60000} NQ=${ANN_NQ:-10000} REPS=${ANN_REPS:-3} LIBS=hnswlib,faiss
CACHE=${ANN_CACHE:-$HOME/.cache/hearth-bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) N=${ANN_N:-10000} NQ=${ANN_NQ:-2000}; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --libs) LIBS=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ann_bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
NCPU=$(env -u OMP_NUM_THREADS nproc) # nproc obeys OMP_NUM_THREADS
PY=/usr/bin/python3 # Debian's, where python3-hnswlib and python3-faiss live
[ -x "$BUILD/ann_bench" ] || make -s BUILD="$BUILD" "$BUILD/ann_bench"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
out=$(mktemp "${TMPDIR:-/tmp}/ann-bench.XXXXXX")
idx="$out.hnsw" # hearth's index saved and loaded back (timed, answers compared), then measured
trap 'rm -f "$out" "$idx"' EXIT

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $NCPU cores;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== fashion-mnist-784: $N base, $NQ queries, l2, M=16, ef_construction=200, 1 thread, best of $REPS passes per ef"
# the ground truth first (may use every core once; cached), so no library's timing overlaps it
gt=$(OMP_NUM_THREADS=$NCPU "$BUILD/ann_bench" --n "$N" --nq "$NQ" --cache "$CACHE" --gt-only |
     sed -n 's/.*"gt":"\([^"]*\)".*/\1/p')
"$BUILD/ann_bench" --n "$N" --nq "$NQ" --reps "$REPS" --cache "$CACHE" --save "$idx" \
  ${ANN_ISA:+--isa "$ANN_ISA"} |
  tee -a "$out"
$PY bench/peers/ann_peers.py run --gt "$gt" --n "$N" --nq "$NQ" --reps "$REPS" --libs "$LIBS" | tee -a "$out"
echo "== results (load $(cut -d' ' -f1-3 /proc/loadavg))"
$PY bench/peers/ann_peers.py report "$out"
