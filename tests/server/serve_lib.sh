# tests/server/serve_lib.sh: sourced by the server shell tests (after H is set and a pids array
# exists, which their cleanup kills).
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
