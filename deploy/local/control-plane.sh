#!/usr/bin/env bash
# Runs the control plane (API + worker in one process, role `all`) in the background against the
# local stack, with its log and pid file in the state dir. Idempotent.
#   control-plane.sh up|down|status|logs|first-machine
# Netns machines (root only) live on a bridge whose gateway is the first address of
# FLOTILLA_MACHINE_CIDR (default 198.18.0.1/16, bridge FLOTILLA_MACHINE_BRIDGE, default flmach0).
# The API stays on loopback; their agents reach it at the gateway, which the API relays to itself
# (FLOTILLA_AGENT_LISTEN, bound once the first machine creates the bridge). `first-machine`
# creates the netns machine FLOTILLA_FIRST_MACHINE (default `local`; empty: none) unless it exists.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$here/stack.sh" env | sed 's/^/export /')"
run_dir=$FLOTILLA_STATE_DIR/control-plane
pid_file=$run_dir/api.pid
log_file=$run_dir/api.log
port=${FLOTILLA_PORT:-8080}
export FLOTILLA_PORT=$port
machine_cidr=${FLOTILLA_MACHINE_CIDR:-198.18.0.1/16}
machine_bridge=${FLOTILLA_MACHINE_BRIDGE:-flmach0}
gateway=${machine_cidr%/*}
if [ "$(id -u)" -eq 0 ]; then
  # Set to "" to turn either off.
  export FLOTILLA_AGENT_LISTEN=${FLOTILLA_AGENT_LISTEN-$gateway:$port}
  # https: the agents' listener speaks TLS with a certificate from the Flotilla CA.
  export FLOTILLA_AGENT_API_URL=${FLOTILLA_AGENT_API_URL-https://$gateway:$port}
fi
ctl() { node "$root/apps/ctl/bin/ctl.js" "$@"; }

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "${1:-status}" in
  up)
    mkdir -p "$run_dir"
    if running; then echo "control plane: already running (pid $(cat "$pid_file"))" >&2; exit 0; fi
    (cd "$root" && node prisma/migrate.mjs deploy)
    # A larger young generation, as the systemd units have it (deploy/README.md).
    nohup node --max-semi-space-size=64 "$root/apps/api/dist/main.js" all >>"$log_file" 2>&1 &
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
      # Like docker-machine, stopping the control plane leaves machines as they are.
      machines=$(timeout 10 node "$root/apps/ctl/bin/ctl.js" machine ls --filter state=ready -q 2>/dev/null | tr '\n' ' ' || true)
      [ -n "${machines// /}" ] && echo "control plane: machines keep running: ${machines% } (ctl machine stop NAME stops one)" >&2
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
  first-machine)
    # Never fails the caller: the control plane is useful without it; the reason is printed.
    name=${FLOTILLA_FIRST_MACHINE-local}
    [ -n "$name" ] || exit 0
    skip() { echo "first machine: $*" >&2; exit 0; }
    [ "$(id -u)" -eq 0 ] || skip "skipped: netns machines need root (as root: ctl machine create -d netns $name)"
    running || skip "skipped: the control plane is not running"
    missing=()
    for tool in ip nsenter unshare ssh-keygen; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    [ -x /usr/sbin/sshd ] || missing+=(sshd)
    [ ${#missing[@]} -eq 0 ] || skip "skipped: ${missing[*]} missing (apt-get install openssh-server iproute2, or ./setup.sh install)"
    if ! state=$(ctl machine inspect --format '{{.State}}' "$name" 2>/dev/null); then
      echo "first machine: creating the netns machine $name on $machine_bridge ($machine_cidr)" >&2
      ctl machine create -d netns --netns-cidr "$machine_cidr" --netns-bridge "$machine_bridge" "$name" ||
        skip "could not create $name (above); the control plane runs without it. Retry: ctl machine rm -f -y $name; ./setup.sh start"
    elif [ "$state" != READY ]; then
      skip "$name exists and is $state (ctl machine inspect $name; ctl machine start $name)"
    elif [ "$(ctl machine status "$name" 2>/dev/null)" = Stopped ]; then
      # The host rebooted: the namespace is gone, the machine's store is not.
      echo "first machine: starting $name again" >&2
      ctl machine start "$name" || skip "could not start $name (above); see ctl machine inspect $name"
    fi
    echo "first machine: $name is ready; point docker at it with: eval \$(ctl machine env $name)" >&2
    ;;
  *) echo "usage: $0 up|down|status|logs|first-machine" >&2; exit 2 ;;
esac
