#!/usr/bin/env bash
# tests/fuzz/run.sh HEARTH FUZZ_BUILD SECONDS TARGET...: `make fuzz`. Writes the seed corpora
# (seeds.sh, with HEARTH), then runs each libFuzzer target for SECONDS over them, new inputs
# kept in FUZZ_BUILD/corpus/<target>/ between runs, findings (crash-*, leak-*, timeout-*, oom-*)
# written to FUZZ_BUILD/findings/<target>/. Prints one line per target (executions, coverage,
# corpus, findings) and fails when any target found something: reproduce it with
# `FUZZ_BUILD/fuzz_<target> FILE`, fix it, and commit FILE to tests/fuzz/regress/<target>/ so
# `make test` replays it from then on.
set -uo pipefail
H=$1
B=$2
SECS=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/seeds.sh" "$H" "$B/seeds" || exit 1
export OMP_NUM_THREADS=1 # one core per target: the machine is shared
fail=0
printf '%-12s %12s %10s %8s %8s  %s\n' target executions exec/s cov corpus findings
for t in "$@"; do
  mkdir -p "$B/corpus/$t" "$B/findings/$t"
  log="$B/findings/$t.log"
  regress=()
  [ -d "$HERE/regress/$t" ] && regress=("$HERE/regress/$t")
  # -rss_limit_mb: the store and checkpoint targets keep state; -timeout: a hang is a finding
  "$B/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -max_len=131072 \
      -print_final_stats=1 -artifact_prefix="$B/findings/$t/" \
      "$B/corpus/$t" "$B/seeds/$t" "${regress[@]}" > "$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  found=$(find "$B/findings/$t" -type f | wc -l)
  printf '%-12s %12s %10s %8s %8s  %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${corp:-?}" \
      "$found"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    fail=1
    grep -m1 -A12 'ERROR: \|runtime error\|==ERROR\|deadly signal' "$log" | sed 's/^/    /'
    echo "    log: $log; inputs: $B/findings/$t/"
  fi
done
exit $fail
