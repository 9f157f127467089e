#!/usr/bin/env bash
# tests/dist/test_netns.sh: two "machines" on one host — two network namespaces joined by a
# veth pair, made here (as root) — and `hearth train` over Open MPI's TCP transport between
# them: mpirun runs in the first namespace and starts the second one's daemon through a launch
# agent that enters that namespace (where ssh would reach another host), so rank 1 lives behind
# the veth pair and every byte between the ranks crosses it. The run must give the same bits as
# the same run over loopback TCP in one namespace. Skips (exit 0, saying why) only when this
# machine cannot make namespaces: not root, no `ip`, or the kernel refuses.
# Usage: test_netns.sh PATH/TO/hearth
set -u
H=$(realpath "${1:?usage: test_netns.sh path/to/hearth}")
skip() { echo "netns: SKIPPED: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root to make network namespaces (CI runs as root)"
command -v ip > /dev/null || skip "no ip command (Debian's iproute2)"
command -v mpirun > /dev/null || { echo "FAIL: mpirun not found (make deps installs openmpi-bin)"; exit 1; }
NS0=hearth$$a NS1=hearth$$b V0=hv$$a V1=hv$$b
T=$(mktemp -d)
cleanup() {
  ip netns del "$NS0" 2> /dev/null
  ip netns del "$NS1" 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT
if ! err=$(ip netns add "$NS0" 2>&1); then skip "ip netns add failed: $err"; fi
ip netns add "$NS1" || exit 1
if ! err=$(ip link add "$V0" type veth peer name "$V1" 2>&1); then skip "no veth pair: $err"; fi
set -e
ip link set "$V0" netns "$NS0"
ip link set "$V1" netns "$NS1"
ip -n "$NS0" addr add 10.213.0.1/24 dev "$V0"
ip -n "$NS1" addr add 10.213.0.2/24 dev "$V1"
for n in "$NS0" "$NS1"; do ip -n "$n" link set lo up; done
ip -n "$NS0" link set "$V0" up
ip -n "$NS1" link set "$V1" up
set +e
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# the launch agent: mpirun calls it as `agent HOST COMMAND...` where it would call ssh
cat > "$T/agent.sh" << EOF
#!/bin/sh
host=\$1; shift
case "\$host" in 10.213.0.2) ns=$NS1 ;; *) ns=$NS0 ;; esac
echo "launched on \$host in \$ns" >> "$T/agent.log"
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$T/agent.sh"
printf '10.213.0.1 slots=1\n10.213.0.2 slots=1\n' > "$T/hosts"
awk 'BEGIN { s = 7; split("the a of and to in is was that it for on with as by at from this be or an are not have had his her they we you one all", w, " ");
  for (i = 0; i < 24000; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%s%s", w[int(s / 65536) % 34 + 1], (i % 13 == 12) ? ".\n" : " " } }' > "$T/corpus.txt"
export OMP_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ARGS=(train --data "$T/corpus.txt" --steps 6 --batch 2 --seq 32 --threads 1 --sample 0 --n-layer 2
  --d-model 64 --n-head 4 --bucket-mb 0 --eval-batches 2 --comm-timeout 60)

# two namespaces, TCP over the veth pair only (no shared memory between the ranks)
timeout 120 ip netns exec "$NS0" mpirun --allow-run-as-root --hostfile "$T/hosts" \
  --mca plm_rsh_agent "$T/agent.sh" --mca btl self,tcp --mca btl_tcp_if_include 10.213.0.0/24 \
  --mca oob_tcp_if_include 10.213.0.0/24 -x OMP_NUM_THREADS -x ASAN_OPTIONS -np 2 \
  "$H" "${ARGS[@]}" --out "$T/veth" > "$T/veth.log" 2>&1 || bad "over the veth pair: $(tail -5 "$T/veth.log")"
grep -q "launched on 10.213.0.2 in $NS1" "$T/agent.log" 2> /dev/null && ok ||
  bad "rank 1's daemon was not started in the second namespace: $(cat "$T/agent.log" 2> /dev/null)"
grep -q "data parallel over 2 ranks" "$T/veth.log" && ok || bad "not 2 ranks: $(head -3 "$T/veth.log")"

# the same run over loopback TCP, one namespace
timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo \
  -x OMP_NUM_THREADS -x ASAN_OPTIONS -np 2 "$H" "${ARGS[@]}" --out "$T/lo" > "$T/lo.log" 2>&1 ||
  bad "over loopback: $(tail -5 "$T/lo.log")"
for f in model optimizer; do
  cmp -s "$T/veth/step_00000006/$f.safetensors" "$T/lo/step_00000006/$f.safetensors" && ok ||
    bad "$f.safetensors: the veth run differs from the loopback run"
done
l1=$(grep -o '"loss":[^,]*' "$T/veth/metrics.jsonl") l2=$(grep -o '"loss":[^,]*' "$T/lo/metrics.jsonl")
[ -n "$l1" ] && [ "$l1" = "$l2" ] && ok || bad "losses differ between veth and loopback"

echo "netns: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
