#!/usr/bin/env bash
# bench/dist_tail.sh: the network's tail latency and what it does to a data-parallel step.
# Two ranks of `hearth train` in two network namespaces joined by a veth pair (made here, as
# root; see tests/dist/test_netns.sh for how rank 1's daemon is started behind it), Open MPI
# over TCP on the pair, whose bandwidth is limited with `tc ... tbf` on both ends (RATE).
# Delay and jitter cannot come from the network here (this kernel has tbf and htb, not netem),
# so they are SIMULATED: hearth's test option --sim-delay holds each gradient collective's
# completion for a drawn time (0; 1 ms +- 0.5; 5 ms +- 5; a 1% chance of 50 ms), the same draw
# on both ranks, as if the link had been slow. Each delay runs with the reductions overlapped
# with the backward (--overlap 1) and after it (--overlap 0). Per run, over the steps after the
# first WARMUP: step time p50/p99, communication time p50/p99 (metrics.jsonl comm_ms: wall time
# with a collective in flight, rank 0) and the stall share (sum of stall_ms / sum of step ms:
# the part of the step spent waiting for the network). A markdown table goes to stdout.
#
#   bench/dist_tail.sh [--rate RATE] [--steps N] [--warmup N] [--layers L] [--width C]
#
# Needs root, ip and tc (iproute2), Open MPI. Defaults: RATE 1gbit, 60 steps (5 untimed),
# a GPT-2-family model of 4 layers, width 256, byte vocabulary, micro-batch 4x64.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=1gbit STEPS=60 WARMUP=5 LAYERS=4 WIDTH=256
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --width) WIDTH=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dist_tail.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "dist_tail.sh: needs root (network namespaces, tc)" >&2; exit 1; }
H=$(realpath "${BUILD:-build}/hearth")
NS0=htail$$a NS1=htail$$b V0=ht$$a V1=ht$$b
T=$(mktemp -d)
cleanup() {
  ip netns del "$NS0" 2> /dev/null || true
  ip netns del "$NS1" 2> /dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS0"
ip netns add "$NS1"
ip link add "$V0" type veth peer name "$V1"
ip link set "$V0" netns "$NS0"
ip link set "$V1" netns "$NS1"
ip -n "$NS0" addr add 10.214.0.1/24 dev "$V0"
ip -n "$NS1" addr add 10.214.0.2/24 dev "$V1"
for n in "$NS0" "$NS1"; do ip -n "$n" link set lo up; done
ip -n "$NS0" link set "$V0" up
ip -n "$NS1" link set "$V1" up
# the bandwidth limit, both directions
ip netns exec "$NS0" tc qdisc add dev "$V0" root tbf rate "$RATE" burst 256kb latency 100ms
ip netns exec "$NS1" tc qdisc add dev "$V1" root tbf rate "$RATE" burst 256kb latency 100ms
cat > "$T/agent.sh" << EOF
#!/bin/sh
host=\$1; shift
case "\$host" in 10.214.0.2) ns=$NS1 ;; *) ns=$NS0 ;; esac
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$T/agent.sh"
printf '10.214.0.1 slots=1\n10.214.0.2 slots=1\n' > "$T/hosts"
DATA=../shared/data/tinyshakespeare.txt
[ -f "$DATA" ] || { DATA=$T/corpus.txt; for i in $(seq 20000); do echo "line $i of a generated corpus"; done > "$DATA"; }
DATA=$(realpath "$DATA")
export OMP_NUM_THREADS=1

# p50 / p99 (nearest rank) of a column of numbers on stdin
pct() { sort -g | awk -v q="$1" '{ a[NR] = $1 } END { i = int(q * NR + 0.999999); if (i < 1) i = 1; print a[i] }'; }
field() { grep -o "\"$2\":[0-9.e+-]*" "$1" | cut -d: -f2 | tail -n +$((WARMUP + 1)); }

echo "dist_tail: 2 ranks over a veth pair limited to $RATE (tbf), $STEPS steps ($WARMUP untimed),"
echo "GPT-2 family, $LAYERS layers, width $WIDTH, micro-batch 4x64 a rank; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| simulated delay per collective | overlap | step p50 ms | step p99 ms | comm p50 ms | comm p99 ms | stall share |"
echo "|---|---|---|---|---|---|---|"
for d in 0 1:0.5 5:5 0:0:0.01:50; do
  case "$d" in
    0) label="none" ;;
    1:0.5) label="1 ms ± 0.5" ;;
    5:5) label="5 ms ± 5" ;;
    0:0:0.01:50) label="1% chance of 50 ms" ;;
  esac
  for ov in 1 0; do
    rm -rf "$T/run"
    if ! timeout 600 ip netns exec "$NS0" mpirun --allow-run-as-root --hostfile "$T/hosts" \
      --mca plm_rsh_agent "$T/agent.sh" --mca btl self,tcp --mca btl_tcp_if_include 10.214.0.0/24 \
      --mca oob_tcp_if_include 10.214.0.0/24 -x OMP_NUM_THREADS -np 2 \
      "$H" train --data "$DATA" --out "$T/run" --n-layer "$LAYERS" --d-model "$WIDTH" --n-head 8 \
      --batch 4 --seq 64 --steps "$STEPS" --threads 1 --sample 0 --eval-batches 1 \
      --sim-delay "$d" --overlap "$ov" > "$T/log" 2>&1; then
      echo "run failed (delay $d, overlap $ov):" >&2
      tail -5 "$T/log" >&2
      exit 1
    fi
    m=$T/run/metrics.jsonl
    share=$(paste <(field "$m" stall_ms) <(field "$m" ms) | awk '{ s += $1; t += $2 } END { printf "%.1f%%", 100 * s / t }')
    printf '| %s | %s | %.1f | %.1f | %.1f | %.1f | %s |\n' "$label" "$([ "$ov" = 1 ] && echo on || echo off)" \
      "$(field "$m" ms | pct 0.5)" "$(field "$m" ms | pct 0.99)" \
      "$(field "$m" comm_ms | pct 0.5)" "$(field "$m" comm_ms | pct 0.99)" "$share"
  done
done
grep -A1 "^data parallel:" "$T/log" | tail -1 | sed 's/^ */last run: /'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
