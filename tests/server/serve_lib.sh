# tests/server/serve_lib.sh: sourced by the server shell tests right after they set H (the hearth
# binary) and DIR; sets up what they share: a temporary folder T removed on exit, the pids array
# whose servers the exit trap kills, and the pass/fail counters with ok and bad.
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# start_server LOG ARGS...: runs hearth serve --port 0 in the background; sets PID and PORT once
# it listens (5 s at most); 1 if it never does.
start_server() {
  local log=$1; shift
  "$H" serve --port 0 "$@" > "$log" 2>&1 &
  PID=$!
  pids+=("$PID")
  PORT=
  for _ in $(seq 100); do
    PORT=$(grep -o 'listening on http://[^ ]*' "$log" 2> /dev/null | sed 's/.*://')
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2> /dev/null || break
    sleep 0.05
  done
  return 1
}

# wait_ready LOG [N]: waits until the server writing LOG says "ready" (its model loaded), N polls
# of 50 ms at most (default 100: 5 s); returns either way, the requests that follow tell.
wait_ready() {
  local log=$1 n=${2:-100}
  for _ in $(seq "$n"); do grep -q "ready" "$log" && break; sleep 0.05; done
}

# check_sanitizer_logs: under SAN=1 a sanitizer report in any log under T is a failure; one ok
# per clean log.
check_sanitizer_logs() {
  local log
  for log in "$T"/*.log; do
    ! grep -q "Sanitizer" "$log" && ok || bad "sanitizer report in $(basename "$log"): $(grep -m3 -A5 Sanitizer "$log")"
  done
}
