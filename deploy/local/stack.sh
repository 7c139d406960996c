#!/usr/bin/env bash
# The embedded default: Postgres 15 and Redis 7 from the OS packages, data in a per-user state
# dir, listening on loopback only. Idempotent: `up` twice is `up` once. Redis keeps an append-only
# file (fsync every second), so a Redis restart loses at most a second of queued work.
#   stack.sh up|down|status|env
# Credentials: Postgres takes scram-sha-256 passwords on TCP (its unix socket sits in its 0700 data
# dir, peer auth) and Redis needs a password; both are generated at first start into
# $state/secrets.env (0600) and carried by the URLs `env` prints. A stack made before this is
# converted by the next `up`, its data kept.
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
secrets=$state/secrets.env

log() { echo "stack: $*" >&2; }

# Postgres refuses to run as root; as root we run it as the OS `postgres` user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

# Hex only: safe in a URL, a config file and a SQL literal without escaping.
new_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
secret() { sed -n "s/^$1=\([0-9a-f]\{16,\}\)\$/\1/p" "$secrets"; }

# Generated once; kept readable by the stack's owner only (it holds the keys to all the data).
ensure_secrets() {
  mkdir -p "$state"
  if [ -z "$(secret PG_PASSWORD 2>/dev/null)" ] || [ -z "$(secret REDIS_PASSWORD 2>/dev/null)" ]; then
    (umask 077 && printf 'PG_PASSWORD=%s\nREDIS_PASSWORD=%s\n' "$(new_secret)" "$(new_secret)" >"$secrets.new" && mv -f "$secrets.new" "$secrets")
  fi
  chmod 600 "$secrets"
  pg_password=$(secret PG_PASSWORD)
  redis_password=$(secret REDIS_PASSWORD)
}

database_url() { echo "postgresql://$(pg_user):$pg_password@127.0.0.1:$pg_port/$db"; }
redis_url() { echo "redis://default:$redis_password@127.0.0.1:$redis_port"; }

pg_running() { as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; }
# A Redis killed -9 stays a zombie until its reaper collects it, and kill -0 still finds a zombie.
redis_running() {
  [ -f "$redis_dir/redis.pid" ] || return 1
  local stat
  stat=$(ps -o stat= -p "$(cat "$redis_dir/redis.pid")" 2>/dev/null) && [ "${stat#Z}" = "$stat" ]
}
# Administration goes through the private unix socket, as the database owner (peer auth).
pg_admin() { as_pg "$pg_bin/psql" -h "$pg_data" -p "$pg_port" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
# The password travels in the environment (private to the process), never on a command line.
rcli() { REDISCLI_AUTH=$redis_password redis-cli --no-auth-warning -p "$redis_port" "$@"; }

# Local connections only through the socket in the 0700 data dir, as the same OS user; TCP only
# with the password. Written before every start, so no stack ever listens with trust on TCP.
write_pg_hba() {
  local want
  want=$(printf '%s\n' "# written by deploy/local/stack.sh" "local all all peer" \
    "host all all 127.0.0.1/32 scram-sha-256" "host all all ::1/128 scram-sha-256")
  if [ "$(cat "$pg_data/pg_hba.conf" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$pg_data/pg_hba.conf.new"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_data/pg_hba.conf.new"
    chmod 600 "$pg_data/pg_hba.conf.new"
    mv -f "$pg_data/pg_hba.conf.new" "$pg_data/pg_hba.conf"
    return 0
  fi
  return 1
}

pg_up() {
  mkdir -p "$state"
  # As root, Postgres runs as `postgres` and must pass through the state dir to its data dir,
  # even when something made the dir private first (the API's data dir lives below it).
  [ "$(id -u)" -eq 0 ] && chmod a+x "$state"
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    log "initialising Postgres in $pg_data"
    mkdir -p "$pg_data"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_data" && chmod 700 "$pg_data"
    local pwfile
    pwfile=$(umask 077 && mktemp)
    printf '%s\n' "$pg_password" >"$pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
    as_pg "$pg_bin/initdb" -D "$pg_data" -U "$(pg_user)" --auth-local=peer --auth-host=scram-sha-256 \
      --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 >/dev/null || { rm -f "$pwfile"; exit 1; }
    rm -f "$pwfile"
  fi
  if write_pg_hba && pg_running; then
    log "Postgres now asks for a password on TCP"
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" reload >/dev/null
  fi
  if ! pg_running; then
    log "starting Postgres on 127.0.0.1:$pg_port"
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_data -c max_connections=300 -c fsync=${FLOTILLA_PG_FSYNC:-on}" >/dev/null
  fi
  pg_wait_ready
  # Sets the password a stack made before passwords (or whose secrets file was lost) lacks.
  if ! PGPASSWORD=$pg_password PGCONNECT_TIMEOUT=5 as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -d postgres -qtAc "select 1" >/dev/null 2>&1; then
    printf 'ALTER ROLE "%s" PASSWORD \x27%s\x27;\n' "$(pg_user)" "$pg_password" | pg_admin -f - >/dev/null
  fi
  if ! pg_admin -c "select 1 from pg_database where datname='$db'" | grep -q 1; then
    as_pg "$pg_bin/createdb" -h "$pg_data" -p "$pg_port" "$db"
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
  chmod 700 "$redis_dir"
  # The password goes in a 0600 file, not the command line (which every user can read in ps).
  (umask 077 && printf 'requirepass %s\n' "$redis_password" >"$redis_dir/auth.conf")
  if ! redis_running; then
    log "starting Redis on 127.0.0.1:$redis_port"
    redis-server "$redis_dir/auth.conf" --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --daemonize yes \
      --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" --save '' --appendonly yes --appendfsync everysec >/dev/null
    for _ in $(seq 50); do [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done
    log "Redis did not answer on port $redis_port; see $redis_dir/redis.log"; exit 1
  fi
  # A Redis started before passwords answers without one: give it the password while it runs.
  if [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; then
    log "Redis now asks for a password"
    printf '%s' "$redis_password" | redis-cli -p "$redis_port" -x config set requirepass >/dev/null
  fi
}

case "${1:-status}" in
  up)
    "$here/../../scripts/system-deps.sh" stack
    ensure_secrets
    pg_up
    redis_up
    ;;
  down)
    if [ -f "$pg_data/PG_VERSION" ] && pg_running; then log "stopping Postgres"; as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null; fi
    if redis_running; then
      log "stopping Redis"
      ensure_secrets
      rcli shutdown nosave >/dev/null 2>&1 || kill "$(cat "$redis_dir/redis.pid")"
    fi
    ;;
  status)
    rc=0
    if [ -f "$pg_data/PG_VERSION" ] && pg_running; then echo "postgres: running on 127.0.0.1:$pg_port ($pg_data)"; else echo "postgres: stopped"; rc=3; fi
    if redis_running; then echo "redis:    running on 127.0.0.1:$redis_port ($redis_dir)"; else echo "redis:    stopped"; rc=3; fi
    exit $rc
    ;;
  env)
    ensure_secrets
    echo "DATABASE_URL=$(database_url)"
    echo "REDIS_URL=$(redis_url)"
    echo "FLOTILLA_STATE_DIR=$state"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
