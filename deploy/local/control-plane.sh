#!/usr/bin/env bash
# Runs the control plane (API + worker in one process, role `all`) in the background against the
# local stack, with its log and pid file in the state dir. Idempotent.
#   control-plane.sh up|down|status|logs
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$here/stack.sh" env | sed 's/^/export /')"
run_dir=$FLOTILLA_STATE_DIR/control-plane
pid_file=$run_dir/api.pid
log_file=$run_dir/api.log
port=${FLOTILLA_PORT:-8080}
export FLOTILLA_PORT=$port

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "${1:-status}" in
  up)
    mkdir -p "$run_dir"
    if running; then echo "control plane: already running (pid $(cat "$pid_file"))" >&2; exit 0; fi
    (cd "$root" && node prisma/migrate.mjs deploy)
    nohup node "$root/apps/api/dist/main.js" all >>"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 100); do
      if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then
        echo "control plane: listening on http://127.0.0.1:$port (log: $log_file)" >&2
        exit 0
      fi
      running || break
      sleep 0.2
    done
    echo "control plane: did not become healthy; last log lines:" >&2
    tail -n 20 "$log_file" >&2
    exit 1
    ;;
  down)
    if running; then
      kill -TERM "$(cat "$pid_file")"
      for _ in $(seq 100); do running || break; sleep 0.1; done
      echo "control plane: stopped" >&2
    fi
    rm -f "$pid_file"
    ;;
  status)
    if running; then echo "control plane: running (pid $(cat "$pid_file")) on http://127.0.0.1:$port"; else echo "control plane: stopped"; exit 3; fi
    ;;
  logs) tail -n 100 -f "$log_file" ;;
  *) echo "usage: $0 up|down|status|logs" >&2; exit 2 ;;
esac
