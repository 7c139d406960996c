#!/usr/bin/env bash
# The embedded default: Postgres 15 and Redis 7 from the OS packages, data in a per-user state
# dir, listening on loopback only. Idempotent: `up` twice is `up` once. Redis keeps an append-only
# file (fsync every second), so a Redis restart loses at most a second of queued work.
#   stack.sh up|down|status|env
# Settings (env): FLOTILLA_STATE_DIR (default ${XDG_STATE_HOME:-~/.local/state}/flotilla, or
#   /var/lib/flotilla for root: Postgres runs as the `postgres` user, which cannot enter /root),
#   FLOTILLA_PG_PORT (55432), FLOTILLA_REDIS_PORT (56379).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -eq 0 ]; then default_state=/var/lib/flotilla; else default_state=${XDG_STATE_HOME:-$HOME/.local/state}/flotilla; fi
state=${FLOTILLA_STATE_DIR:-$default_state}
pg_port=${FLOTILLA_PG_PORT:-55432}
redis_port=${FLOTILLA_REDIS_PORT:-56379}
pg_bin=/usr/lib/postgresql/15/bin
pg_data=$state/postgres
redis_dir=$state/redis
db=flotilla

log() { echo "stack: $*" >&2; }

# Postgres refuses to run as root; as root we run it as the OS `postgres` user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

database_url() { echo "postgresql://$(pg_user)@127.0.0.1:$pg_port/$db"; }
redis_url() { echo "redis://127.0.0.1:$redis_port"; }

pg_running() { as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; }
# A Redis killed -9 stays a zombie until its reaper collects it, and kill -0 still finds a zombie.
redis_running() {
  [ -f "$redis_dir/redis.pid" ] || return 1
  local stat
  stat=$(ps -o stat= -p "$(cat "$redis_dir/redis.pid")" 2>/dev/null) && [ "${stat#Z}" = "$stat" ]
}

pg_up() {
  mkdir -p "$state"
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    log "initialising Postgres in $pg_data"
    mkdir -p "$pg_data"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_data" && chmod 700 "$pg_data"
    # trust on loopback only: the socket dir and port are private to this user's stack.
    as_pg "$pg_bin/initdb" -D "$pg_data" -U "$(pg_user)" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! pg_running; then
    log "starting Postgres on 127.0.0.1:$pg_port"
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_data -c max_connections=300 -c fsync=${FLOTILLA_PG_FSYNC:-on}" >/dev/null
  fi
  pg_wait_ready
  if ! as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" "$db"
  fi
}

# A running postmaster may still refuse connections: after a crash it replays its WAL first
# ("the database system is in recovery mode"). Wait for it, with a bound, before using it.
pg_wait_ready() {
  local wait_s=${FLOTILLA_PG_READY_TIMEOUT_S:-60}
  for _ in $(seq $((wait_s * 10))); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -d postgres && return 0
    sleep 0.1
  done
  log "Postgres on 127.0.0.1:$pg_port did not accept connections within ${wait_s}s; see $pg_data/server.log"
  exit 1
}

redis_up() {
  mkdir -p "$redis_dir"
  if ! redis_running; then
    log "starting Redis on 127.0.0.1:$redis_port"
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --daemonize yes \
      --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" --save '' --appendonly yes --appendfsync everysec >/dev/null
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "Redis did not answer on port $redis_port; see $redis_dir/redis.log"; exit 1
  fi
}

case "${1:-status}" in
  up)
    "$here/../../scripts/system-deps.sh" stack
    pg_up
    redis_up
    ;;
  down)
    if [ -f "$pg_data/PG_VERSION" ] && pg_running; then log "stopping Postgres"; as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null; fi
    if redis_running; then log "stopping Redis"; redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$redis_dir/redis.pid")"; fi
    ;;
  status)
    rc=0
    if [ -f "$pg_data/PG_VERSION" ] && pg_running; then echo "postgres: running on 127.0.0.1:$pg_port ($pg_data)"; else echo "postgres: stopped"; rc=3; fi
    if redis_running; then echo "redis:    running on 127.0.0.1:$redis_port ($redis_dir)"; else echo "redis:    stopped"; rc=3; fi
    exit $rc
    ;;
  env)
    echo "DATABASE_URL=$(database_url)"
    echo "REDIS_URL=$(redis_url)"
    echo "FLOTILLA_STATE_DIR=$state"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
