#!/usr/bin/env bash
# A highly available control plane on loopback, to try and measure failover on one host:
#   Postgres pg1 (primary) + pg2 (streaming replica, the synchronous standby),
#   Redis r1 (master) + r2 (replica) watched by 3 sentinels (master name `flotilla`),
#   two API processes and two workers (`node apps/api/dist/main.js api|worker`).
# Every process listens on 127.0.0.1 only; ports are FLOTILLA_HA_PORT_BASE (27400) + an offset,
# below Linux's ephemeral range (32768-60999): a node stopped for a failover must find its port
# free again, and the kernel hands ephemeral ports to any outgoing connection or `listen(0)`.
#   ha.sh up|down|status|env
#   ha.sh pg-failover        stop the Postgres primary and promote the standby
#   ha.sh pg-rejoin          make the stopped node a standby of the new primary again (fresh copy)
#   ha.sh redis-failover     SENTINEL FAILOVER (graceful); `redis-kill-master` kills it instead
#   ha.sh kill-api N | start-api N   (N = 1 or 2; likewise kill-worker/start-worker)
# Secrets (Postgres scram password, Redis requirepass) are generated once into
# $state/secrets.env (0600), as deploy/local/stack.sh does; `env` prints the URLs carrying them.
# Settings: FLOTILLA_HA_STATE_DIR (/var/tmp/flotilla-ha as root, else ~/.local/state/flotilla-ha),
#   FLOTILLA_HA_PORT_BASE (27400), FLOTILLA_HA_NO_APPS=1 (databases only: tests start the apps).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ "$(id -u)" -eq 0 ]; then default_state=/var/tmp/flotilla-ha; else default_state=${XDG_STATE_HOME:-$HOME/.local/state}/flotilla-ha; fi
state=${FLOTILLA_HA_STATE_DIR:-$default_state}
base=${FLOTILLA_HA_PORT_BASE:-27400}
pg_bin=/usr/lib/postgresql/15/bin
secrets=$state/secrets.env
db=flotilla
master_name=flotilla
# Offsets: Postgres +1/+2, Redis +11/+12, sentinels +21..+23, APIs +31/+32.
pg_port() { echo $((base + $1)); }
redis_port() { echo $((base + 10 + $1)); }
sentinel_port() { echo $((base + 20 + $1)); }
api_port() { echo $((base + 30 + $1)); }

log() { echo "ha: $*" >&2; }

# A base whose ports the kernel may give out: warn, as the restart of a failed-over node (pg-rejoin,
# start-api, redis-start) then fails whenever some connection happens to hold its port.
warn_ephemeral_ports() {
  local lo hi
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
  if [ $((base + 1)) -le "$hi" ] && [ $((base + 32)) -ge "$lo" ]; then
    log "warning: ports $((base + 1))-$((base + 32)) overlap the kernel's ephemeral range $lo-$hi" \
      "(net.ipv4.ip_local_port_range): a node stopped for a failover may find its port taken by" \
      "an outgoing connection and fail to start again; choose FLOTILLA_HA_PORT_BASE outside it"
  fi
}
# Who holds a TCP port on loopback, for the message when a node cannot bind it again.
port_holders() { ss -Htanp "( sport = :$1 )" 2>/dev/null | head -n 5; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_user() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
new_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
secret() { sed -n "s/^$1=\([0-9a-f]\{16,\}\)\$/\1/p" "$secrets"; }

ensure_secrets() {
  mkdir -p "$state"
  [ "$(id -u)" -eq 0 ] && chmod a+x "$state"
  if [ -z "$(secret PG_PASSWORD 2>/dev/null)" ] || [ -z "$(secret REDIS_PASSWORD 2>/dev/null)" ]; then
    (umask 077 && printf 'PG_PASSWORD=%s\nREDIS_PASSWORD=%s\n' "$(new_secret)" "$(new_secret)" >"$secrets.new" && mv -f "$secrets.new" "$secrets")
  fi
  chmod 600 "$secrets"
  pg_password=$(secret PG_PASSWORD)
  redis_password=$(secret REDIS_PASSWORD)
}

database_url() {
  echo "postgresql://$(pg_user):$pg_password@127.0.0.1:$(pg_port 1),127.0.0.1:$(pg_port 2)/$db?target_session_attrs=read-write"
}
redis_url() {
  echo "redis+sentinel://:$redis_password@127.0.0.1:$(sentinel_port 1),127.0.0.1:$(sentinel_port 2),127.0.0.1:$(sentinel_port 3)/$master_name"
}

# ---- Postgres ---------------------------------------------------------------------------------
pg_data() { echo "$state/pg$1"; }
# Its log and Unix socket live outside the data dir: pg_basebackup copies the whole data dir, and
# a copied log would mix the nodes' histories, a copied socket lock file names another postmaster.
pg_log() { echo "$state/pg$1.log"; }
pg_run() { echo "$state/pg$1.run"; }
pg_running() { as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$1")" status >/dev/null 2>&1; }
pg_is_standby() { [ -f "$(pg_data "$1")/standby.signal" ]; }
pg_sql() { PGPASSWORD=$pg_password PGCONNECT_TIMEOUT=3 "$pg_bin/psql" -h 127.0.0.1 -p "$(pg_port "$1")" -U "$(pg_user)" -d postgres -v ON_ERROR_STOP=1 -qtAc "$2"; }

pg_hba() {
  printf '%s\n' "# written by deploy/ha-local/ha.sh" "local all all peer" \
    "host all all 127.0.0.1/32 scram-sha-256" "host replication all 127.0.0.1/32 scram-sha-256" >"$1/pg_hba.conf"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$1/pg_hba.conf"
  chmod 600 "$1/pg_hba.conf"
}

pg_start() {
  local n=$1 port
  pg_running "$n" && return 0
  port=$(pg_port "$n")
  log "starting Postgres pg$n on 127.0.0.1:$port$(pg_is_standby "$n" && echo ' (standby)')"
  mkdir -p "$(pg_run "$n")"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$(pg_run "$n")"
  touch "$(pg_log "$n")"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$(pg_log "$n")"
  # Role settings live in postgresql.auto.conf (ALTER SYSTEM, copied by pg_basebackup); the
  # command line carries only what differs per node.
  if ! as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$n")" -l "$(pg_log "$n")" -w -t 120 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $(pg_run "$n") -c cluster_name=pg$n" >/dev/null; then
    pg_start_failed "$n"
  fi
  for _ in $(seq 300); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres && return 0; sleep 0.1; done
  pg_start_failed "$n"
}

pg_start_failed() {
  local holders
  log "pg$1 did not start; the end of $(pg_log "$1"):"
  tail -n 15 "$(pg_log "$1")" >&2
  holders=$(port_holders "$(pg_port "$1")")
  [ -n "$holders" ] && log "port $(pg_port "$1") is held by:" && echo "$holders" >&2
  exit 1
}

pg_init_primary() {
  local data pwfile
  data=$(pg_data 1)
  log "initialising the Postgres primary in $data"
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  pwfile=$(umask 077 && mktemp)
  printf '%s\n' "$pg_password" >"$pwfile"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
  as_pg "$pg_bin/initdb" -D "$data" -U "$(pg_user)" --auth-local=peer --auth-host=scram-sha-256 \
    --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 >/dev/null || { rm -f "$pwfile"; exit 1; }
  rm -f "$pwfile"
  pg_hba "$data"
  pg_start 1
  pg_sql 1 "ALTER SYSTEM SET wal_level = 'replica'" >/dev/null
  pg_sql 1 "ALTER SYSTEM SET max_wal_senders = 5" >/dev/null
  pg_sql 1 "ALTER SYSTEM SET wal_keep_size = '256MB'" >/dev/null
  pg_sql 1 "ALTER SYSTEM SET hot_standby = on" >/dev/null
  # Here, not on the command line: a reload then finds the files agree with the running value.
  pg_sql 1 "ALTER SYSTEM SET max_connections = 300" >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$data" -w -m fast stop >/dev/null
  pg_start 1
  pg_sql 1 "CREATE DATABASE $db" >/dev/null
}

# A standby of node $2, copied fresh into node $1's data dir (replacing what was there).
pg_make_standby() {
  local n=$1 from=$2 data
  data=$(pg_data "$n")
  log "copying pg$from into pg$n as its streaming standby"
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  # -R writes standby.signal and primary_conninfo (with the password) into the 0700 data dir.
  as_pg env PGPASSWORD="$pg_password" "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$(pg_port "$from")" -U "$(pg_user)" \
    -D "$data" -R -X stream -c fast -d "application_name=pg$n" >/dev/null
  rm -f "$data/flotilla-failed-over"
  pg_start "$n"
}

# The node that is not a standby, if any.
pg_primary_node() {
  local n
  for n in 1 2; do
    [ -f "$(pg_data "$n")/PG_VERSION" ] && ! pg_is_standby "$n" && [ ! -f "$(pg_data "$n")/flotilla-failed-over" ] && echo "$n" && return 0
  done
  return 1
}

pg_up() {
  if [ ! -f "$(pg_data 1)/PG_VERSION" ] && [ ! -f "$(pg_data 2)/PG_VERSION" ]; then
    pg_init_primary
    pg_make_standby 2 1
    pg_sync_standby 1
    return
  fi
  local primary
  primary=$(pg_primary_node) || { log "no Postgres node is a primary; see $state"; exit 1; }
  pg_start "$primary"
  for n in 1 2; do
    [ "$n" = "$primary" ] && continue
    if [ -f "$(pg_data "$n")/PG_VERSION" ] && pg_is_standby "$n"; then pg_start "$n"; else pg_make_standby "$n" "$primary"; fi
  done
}

pg_failover() {
  local old new
  old=$(pg_primary_node) || { log "no primary to fail over from"; exit 1; }
  new=$((3 - old))
  pg_is_standby "$new" || { log "pg$new is not a standby"; exit 1; }
  log "stopping the primary pg$old"
  as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$old")" -m immediate -w stop >/dev/null || true
  # Marked so `up` never starts it again as a second primary: `pg-rejoin` copies it afresh.
  touch "$(pg_data "$old")/flotilla-failed-over"
  log "promoting pg$new"
  as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$new")" -w promote >/dev/null
  # No standby is left: a synchronous commit would wait forever. Writes go on unreplicated
  # until pg-rejoin brings a standby back.
  pg_sql "$new" "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
  pg_sql "$new" "SELECT pg_reload_conf()" >/dev/null
}

pg_rejoin() {
  local primary other
  primary=$(pg_primary_node_running) || { log "no running primary"; exit 1; }
  other=$((3 - primary))
  pg_running "$other" && as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$other")" -m fast -w stop >/dev/null
  pg_make_standby "$other" "$primary"
  pg_sync_standby "$primary"
}

# synchronous_commit=on with any standby as the synchronous one: a commit is acknowledged once
# the standby has it, so promoting the standby loses no acknowledged write. Set only once a
# standby streams: before that, every commit (even CREATE DATABASE) would wait for one.
pg_sync_standby() {
  pg_sql "$1" "ALTER SYSTEM SET synchronous_commit = on" >/dev/null
  pg_sql "$1" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
  pg_sql "$1" "SELECT pg_reload_conf()" >/dev/null
}
pg_primary_node_running() {
  local n
  for n in 1 2; do pg_running "$n" && [ "$(pg_sql "$n" "select pg_is_in_recovery()" 2>/dev/null)" = f ] && echo "$n" && return 0; done
  return 1
}

# ---- Redis ------------------------------------------------------------------------------------
redis_dir() { echo "$state/redis$1"; }
sentinel_dir() { echo "$state/sentinel$1"; }
pid_alive() {
  [ -f "$1" ] || return 1
  local stat
  stat=$(ps -o stat= -p "$(cat "$1")" 2>/dev/null) && [ "${stat#Z}" = "$stat" ]
}
rcli() { REDISCLI_AUTH=$redis_password redis-cli --no-auth-warning -h 127.0.0.1 "$@"; }

redis_start() {
  local n=$1 dir
  dir=$(redis_dir "$n")
  pid_alive "$dir/redis.pid" && return 0
  mkdir -p "$dir"
  chmod 700 "$dir"
  # The config file holds the password (0600) and is rewritten by Redis when Sentinel changes
  # its role, so a restarted node comes back as what it last was.
  if [ ! -f "$dir/redis.conf" ]; then
    (umask 077 && {
      printf 'port %s\nbind 127.0.0.1\ndir %s\n' "$(redis_port "$n")" "$dir"
      printf 'requirepass %s\nmasterauth %s\n' "$redis_password" "$redis_password"
      printf 'appendonly yes\nappendfsync everysec\nsave ""\n'
      if [ "$n" = 2 ]; then printf 'replicaof 127.0.0.1 %s\n' "$(redis_port 1)"; fi
    } >"$dir/redis.conf")
  fi
  log "starting Redis r$n on 127.0.0.1:$(redis_port "$n")"
  redis-server "$dir/redis.conf" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 50); do [ "$(rcli -p "$(redis_port "$n")" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done
  log "Redis r$n did not answer; the end of $dir/redis.log:"
  tail -n 5 "$dir/redis.log" >&2
  port_holders "$(redis_port "$n")" >&2
  exit 1
}

sentinel_start() {
  local n=$1 dir
  dir=$(sentinel_dir "$n")
  pid_alive "$dir/sentinel.pid" && return 0
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/sentinel.conf" ]; then
    (umask 077 && {
      printf 'port %s\nbind 127.0.0.1\ndir %s\n' "$(sentinel_port "$n")" "$dir"
      printf 'requirepass %s\nsentinel sentinel-pass %s\n' "$redis_password" "$redis_password"
      printf 'sentinel monitor %s 127.0.0.1 %s 2\n' "$master_name" "$(redis_port 1)"
      printf 'sentinel auth-pass %s %s\n' "$master_name" "$redis_password"
      # Seconds, not the default 30: a dead master is noticed in 2 s on loopback.
      printf 'sentinel down-after-milliseconds %s 2000\nsentinel failover-timeout %s 10000\n' "$master_name" "$master_name"
    } >"$dir/sentinel.conf")
  fi
  log "starting Sentinel s$n on 127.0.0.1:$(sentinel_port "$n")"
  redis-server "$dir/sentinel.conf" --sentinel --daemonize yes --pidfile "$dir/sentinel.pid" --logfile "$dir/sentinel.log" >/dev/null
  for _ in $(seq 50); do [ "$(rcli -p "$(sentinel_port "$n")" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done
  log "Sentinel s$n did not answer; see $dir/sentinel.log"
  exit 1
}

redis_master_port() { rcli -p "$(sentinel_port 1)" sentinel get-master-addr-by-name "$master_name" 2>/dev/null | sed -n 2p; }

# ---- control plane ----------------------------------------------------------------------------
app_dir() { echo "$state/$1"; }
app_env() {
  export DATABASE_URL REDIS_URL FLOTILLA_CONFIG_DIR FLOTILLA_HOST=127.0.0.1 FLOTILLA_PUBLIC_URLS
  DATABASE_URL=$(database_url)
  REDIS_URL=$(redis_url)
  FLOTILLA_CONFIG_DIR=$state/ctl
  # Both APIs list both: the console served by one fails over to the other.
  FLOTILLA_PUBLIC_URLS=http://127.0.0.1:$(api_port 1),http://127.0.0.1:$(api_port 2)
}
app_start() {
  local role=$1 n=$2 dir
  dir=$(app_dir "$role$n")
  mkdir -p "$dir"
  pid_alive "$dir/pid" && return 0
  app_env
  log "starting $role$n$([ "$role" = api ] && echo " on http://127.0.0.1:$(api_port "$n")")"
  # A larger young generation, as the systemd units have it (deploy/README.md).
  FLOTILLA_PORT=$(api_port "$n") nohup node --max-semi-space-size=64 "$root/apps/api/dist/main.js" "$role" >>"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  [ "$role" = api ] || return 0
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$(api_port "$n")/api/v1/health" >/dev/null 2>&1 && return 0
    pid_alive "$dir/pid" || break
    sleep 0.2
  done
  log "api$n did not become healthy; last lines of $dir/log:"
  tail -n 20 "$dir/log" >&2
  port_holders "$(api_port "$n")" >&2
  exit 1
}
app_stop() {
  local dir sig=${2:-TERM}
  dir=$(app_dir "$1")
  if pid_alive "$dir/pid"; then
    kill "-$sig" "$(cat "$dir/pid")"
    for _ in $(seq 100); do pid_alive "$dir/pid" || break; sleep 0.1; done
    # A drain that hangs (its Redis or Postgres gone) must not leave an orphan behind.
    if pid_alive "$dir/pid"; then log "$1 did not stop within 10s: killing it"; kill -KILL "$(cat "$dir/pid")"; fi
  fi
  rm -f "$dir/pid"
}

status() {
  local rc=0 n
  for n in 1 2; do
    if pg_running "$n"; then
      echo "pg$n:       running on 127.0.0.1:$(pg_port "$n") ($([ "$(pg_sql "$n" "select pg_is_in_recovery()" 2>/dev/null)" = t ] && echo standby || echo primary))"
    else echo "pg$n:       stopped"; rc=3; fi
  done
  for n in 1 2; do
    if pid_alive "$(redis_dir "$n")/redis.pid"; then
      echo "r$n:        running on 127.0.0.1:$(redis_port "$n") ($(rcli -p "$(redis_port "$n")" role 2>/dev/null | head -1))"
    else echo "r$n:        stopped"; rc=3; fi
  done
  for n in 1 2 3; do
    if pid_alive "$(sentinel_dir "$n")/sentinel.pid"; then echo "sentinel$n: running on 127.0.0.1:$(sentinel_port "$n")"; else echo "sentinel$n: stopped"; rc=3; fi
  done
  for n in 1 2; do
    if pid_alive "$(app_dir "api$n")/pid"; then echo "api$n:      running on http://127.0.0.1:$(api_port "$n")"; else echo "api$n:      stopped"; rc=3; fi
    if pid_alive "$(app_dir "worker$n")/pid"; then echo "worker$n:   running"; else echo "worker$n:   stopped"; rc=3; fi
  done
  return $rc
}

ensure_secrets
case "${1:-status}" in
  up)
    warn_ephemeral_ports
    [ -x "$pg_bin/postgres" ] || { log "needs $pg_bin (apt-get install postgresql-15)"; exit 1; }
    command -v redis-server >/dev/null || { log "needs redis-server (apt-get install redis-server)"; exit 1; }
    pg_up
    for n in 1 2; do redis_start "$n"; done
    for n in 1 2 3; do sentinel_start "$n"; done
    if [ "${FLOTILLA_HA_NO_APPS:-}" != 1 ]; then
      (cd "$root" && DATABASE_URL="postgresql://$(pg_user):$pg_password@127.0.0.1:$(pg_port "$(pg_primary_node)")/$db" node prisma/migrate.mjs deploy >&2)
      # api1 first: the first start writes the admin token for ctl; api2 then finds it made.
      app_start api 1
      app_start api 2
      app_start worker 1
      app_start worker 2
      # ctl (and the console's proxy) fail over between the API replicas.
      [ -f "$state/ctl/config.json" ] && log "ctl: FLOTILLA_CONFIG_DIR=$state/ctl FLOTILLA_API_URL=http://127.0.0.1:$(api_port 1),http://127.0.0.1:$(api_port 2)"
    fi
    status >/dev/null || true
    ;;
  down)
    for a in worker1 worker2 api1 api2; do app_stop "$a"; done
    for n in 1 2 3; do pid_alive "$(sentinel_dir "$n")/sentinel.pid" && kill "$(cat "$(sentinel_dir "$n")/sentinel.pid")"; done
    for n in 1 2; do pid_alive "$(redis_dir "$n")/redis.pid" && { rcli -p "$(redis_port "$n")" shutdown >/dev/null 2>&1 || kill "$(cat "$(redis_dir "$n")/redis.pid")"; }; done
    for n in 1 2; do pg_running "$n" && as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$n")" -m fast -w stop >/dev/null; done
    log "stopped"
    ;;
  status) status ;;
  env)
    echo "DATABASE_URL=$(database_url)"
    echo "REDIS_URL=$(redis_url)"
    echo "FLOTILLA_API_URL=http://127.0.0.1:$(api_port 1),http://127.0.0.1:$(api_port 2)"
    echo "FLOTILLA_CONFIG_DIR=$state/ctl"
    ;;
  pg-failover) pg_failover ;;
  pg-rejoin) pg_rejoin ;;
  redis-failover) rcli -p "$(sentinel_port 1)" sentinel failover "$master_name" >/dev/null && log "failover of $master_name started" ;;
  redis-kill-master)
    port=$(redis_master_port)
    for n in 1 2; do
      if [ "$(redis_port "$n")" = "$port" ]; then kill -9 "$(cat "$(redis_dir "$n")/redis.pid")" && log "killed the master r$n"; fi
    done
    ;;
  redis-start) for n in 1 2; do redis_start "$n"; done ;;
  kill-api | kill-worker) app_stop "${1#kill-}${2:?N}" KILL ;;
  start-api | start-worker) app_start "${1#start-}" "${2:?N}" ;;
  *) echo "usage: $0 up|down|status|env|pg-failover|pg-rejoin|redis-failover|redis-kill-master|redis-start|kill-api N|start-api N|kill-worker N|start-worker N" >&2; exit 2 ;;
esac
