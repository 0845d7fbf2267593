#!/usr/bin/env bash
# A local PostgreSQL 15 primary (127.0.0.1:5441) with a hot-standby streaming replica (127.0.0.1:5442),
# for the integration tests.
#
#   scripts/pg-replica.sh start    # create (first time) or restart both, wait until the replica streams
#   scripts/pg-replica.sh stop     # stop the replica, then the primary
#   scripts/pg-replica.sh status   # one line per server; exit 0 only if the replica is streaming
#   scripts/pg-replica.sh env      # `export OPTLOCK_PG_PRIMARY_DSN=...` etc. for eval "$(... env)"
#
# Ports and names are overridable, so a second pair can run beside the first (scripts/pg-failover.sh
# runs one): OPTLOCK_PG_PRIMARY_PORT (5441), OPTLOCK_PG_REPLICA_PORT (5442), OPTLOCK_PG_PAIR_NAME (the
# directory and the cluster_name prefix, pg-replica / optlock).
#
# start prints its progress and the status lines on stderr and only the export lines on stdout.
# Everything lives under ${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}/pg-replica: primary/ and replica/
# (data directories) and primary.log / replica.log, the servers' own logs. Every statement is logged
# there (log_statement=all) with the pid and application_name, so tests can tell which server ran it.
# Only servers started by this script are ever signalled: the pid in postmaster.pid must be a postgres
# whose command line names that data directory.
set -euo pipefail
umask 022

PAIR=${OPTLOCK_PG_PAIR_NAME:-pg-replica}
BASE="$(realpath -m -- "${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}")/$PAIR"
PGBIN=/usr/lib/postgresql/15/bin
PRIMARY_PORT=${OPTLOCK_PG_PRIMARY_PORT:-5441}
REPLICA_PORT=${OPTLOCK_PG_REPLICA_PORT:-5442}
# The replica's cluster_name is also its application_name on the primary (synchronous_standby_names).
NAME_PREFIX=${OPTLOCK_PG_NAME_PREFIX:-optlock}
SLOT=${NAME_PREFIX}_replica
START_TIMEOUT=${OPTLOCK_PG_START_TIMEOUT:-120} # seconds for one server to start / the replica to stream

log() { printf '[%s] %s\n' "$PAIR" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

data_dir() { echo "$BASE/$1"; }       # primary | replica
log_file() { echo "$BASE/$1.log"; }
port_of() { if [[ $1 == primary ]]; then echo $PRIMARY_PORT; else echo $REPLICA_PORT; fi; }

dsn() { echo "host=127.0.0.1 port=$(port_of "$1") user=root dbname=test sslmode=disable"; }

print_env() {
  printf "export OPTLOCK_PG_PRIMARY_DSN='%s'\n" "$(dsn primary)"
  printf "export OPTLOCK_PG_REPLICA_DSN='%s'\n" "$(dsn replica)"
  printf "export OPTLOCK_PG_PRIMARY_LOG='%s'\n" "$(log_file primary)"
  printf "export OPTLOCK_PG_REPLICA_LOG='%s'\n" "$(log_file replica)"
}

# The server binaries refuse to run as root. cd: they fail if the caller's cwd is unreadable to postgres.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd "$BASE" && runuser -u postgres -- "$@")
  elif [[ $(id -un) == postgres ]]; then
    (cd "$BASE" && "$@")
  else
    die "run as root or as the postgres user"
  fi
}

# psql over TCP as the bootstrap superuser (trust auth); -X: ignore any ~/.psqlrc. The script's own
# statements are logged too; their application_name lets tests skip them.
pq() { # port, sql
  PGAPPNAME=optlock-cluster-script PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

# Prints the postmaster pid of server NAME if it is running and is ours; else returns 1.
server_pid() { # primary | replica
  local d pid args
  d=$(data_dir "$1")
  [[ -s $d/postmaster.pid ]] || return 1
  pid=$(head -n1 "$d/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # Guard against a reused pid: it must be postgres started with -D on this very directory.
  args=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
  [[ $'\n'$args$'\n' == *$'\n'"$d"$'\n'* && $args == *postgres* ]] || return 1
  echo "$pid"
}

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# --- setup -----------------------------------------------------------------------------------------

# Settings shared by both servers (the replica inherits postgresql.conf through pg_basebackup).
common_settings() {
  cat <<'EOF'

# --- added by scripts/pg-replica.sh ---
listen_addresses = '127.0.0.1'
# TCP only: no socket files next to the system server's in /var/run/postgresql.
unix_socket_directories = ''
shared_buffers = 32MB
max_connections = 100
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
hot_standby_feedback = on
# Every statement goes to this server's log file (stderr, via pg_ctl -l), tagged with pid and
# application_name, so tests can tell which server ran a statement.
logging_collector = off
log_statement = 'all'
log_line_prefix = '%m [%p] %qapp=%a user=%u db=%d '
EOF
}

init_primary() {
  local d
  d=$(data_dir primary)
  log "initialising a new primary under $BASE"
  rm -rf "$d" "$(data_dir replica)" "$BASE/.primary-ready" "$BASE/.replica-ready"
  # trust for local and 127.0.0.1 connections, replication included: a throwaway test cluster.
  as_pg "$PGBIN/initdb" -D "$d" --auth=trust --encoding=UTF8 --locale=C.UTF-8 -U postgres \
    >"$BASE/initdb.log" 2>&1 || { tail -n 20 "$BASE/initdb.log" >&2; die "initdb failed"; }
  { common_settings; echo "port = $PRIMARY_PORT"; echo "cluster_name = '${NAME_PREFIX}_primary'"; } >>"$d/postgresql.conf"
  touch "$BASE/.primary-ready"
}

init_replica() {
  local d
  d=$(data_dir replica)
  log "creating the replica with pg_basebackup"
  rm -rf "$d" "$BASE/.replica-ready"
  # A slot left by an earlier replica would make -C fail; it is ours and inactive, so drop it.
  pq $PRIMARY_PORT "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots
                    WHERE slot_name = '$SLOT' AND NOT active" >/dev/null
  # -R writes standby.signal and primary_conninfo; -C -S creates the slot, so the primary keeps WAL
  # for the replica while it is stopped.
  as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -D "$d" \
    -R -X stream -C -S "$SLOT" --checkpoint=fast >"$BASE/basebackup.log" 2>&1 ||
    { tail -n 20 "$BASE/basebackup.log" >&2; die "pg_basebackup failed"; }
  # Later lines win: give the copied postgresql.conf the replica's own port and name.
  { echo "port = $REPLICA_PORT"; echo "cluster_name = '${NAME_PREFIX}_replica'"; } >>"$d/postgresql.conf"
  touch "$BASE/.replica-ready"
}

# --- start / stop ----------------------------------------------------------------------------------

fail_server() { # name, message
  log "ERROR: $1 (127.0.0.1:$(port_of "$1")): $2"
  log "last lines of $(log_file "$1"):"
  tail -n 40 "$(log_file "$1")" >&2 2>/dev/null || true
  exit 1
}

start_server() { # primary | replica
  local name=$1 d lf
  d=$(data_dir "$name"); lf=$(log_file "$name")
  if server_pid "$name" >/dev/null; then return 0; fi
  if port_taken "$(port_of "$name")"; then
    die "port $(port_of "$name") is in use by a process this script did not start"
  fi
  # A postmaster.pid whose pid is not our postgres is stale (crash, then pid reuse): postgres
  # itself would refuse to start while that pid is alive.
  rm -f "$d/postmaster.pid"
  # Pre-created world-readable, so tests can read it even when they do not run as postgres.
  touch "$lf"; chown postgres: "$lf" 2>/dev/null || true; chmod 0644 "$lf"
  log "starting $name on 127.0.0.1:$(port_of "$name")"
  # pg_ctl's server must outlive the calling shell's process group, hence setsid.
  as_pg setsid "$PGBIN/pg_ctl" start -D "$d" -l "$lf" -w -t "$START_TIMEOUT" >/dev/null </dev/null 9>&- ||
    fail_server "$name" "pg_ctl start failed (waited up to ${START_TIMEOUT}s)"
}

wait_streaming() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    server_pid replica >/dev/null || fail_server replica "exited while starting"
    if [[ $(pq $REPLICA_PORT "SELECT pg_is_in_recovery()" 2>/dev/null) == t &&
          $(streaming_count) -ge 1 ]]; then
      log "replica is streaming from the primary"
      return 0
    fi
    sleep 0.5
  done
  fail_server replica "not streaming from the primary after ${START_TIMEOUT}s"
}

streaming_count() {
  pq $PRIMARY_PORT "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo 0
}

cmd_start() {
  if cmd_status >/dev/null 2>&1; then
    log "already running and healthy"
    cmd_status >&2
    print_env
    return 0
  fi
  [[ -x $PGBIN/pg_ctl ]] || die "$PGBIN/pg_ctl not found (install postgresql-15)"
  local t0=$SECONDS
  chown postgres: "$BASE" 2>/dev/null || true # initdb and pg_ctl -l write here as postgres

  if [[ ! -f $BASE/.primary-ready || ! -f $(data_dir primary)/PG_VERSION ]]; then
    # Never set up, or setup was interrupted: start over (stopping a half-made one first).
    stop_server replica
    stop_server primary
    init_primary
  fi
  start_server primary

  # The tests' role and database; idempotent, and replicated to the replica like any other change.
  pq $PRIMARY_PORT "SELECT 1 FROM pg_roles WHERE rolname = 'root'" | grep -q 1 ||
    pq $PRIMARY_PORT "CREATE ROLE root SUPERUSER LOGIN"
  pq $PRIMARY_PORT "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    pq $PRIMARY_PORT "CREATE DATABASE test OWNER root"

  if [[ ! -f $BASE/.replica-ready || ! -f $(data_dir replica)/standby.signal ]]; then
    if server_pid replica >/dev/null; then stop_server replica; fi
    init_replica
  fi
  start_server replica
  wait_streaming
  log "primary and replica up in $((SECONDS - t0))s"
  cmd_status >&2
  print_env
}

stop_server() { # primary | replica
  local name=$1 d pid
  d=$(data_dir "$name")
  pid=$(server_pid "$name") || return 0
  log "stopping $name (pid $pid)"
  # fast: roll back open transactions and disconnect clients, then a clean shutdown checkpoint.
  if ! as_pg "$PGBIN/pg_ctl" stop -D "$d" -m fast -w -t 60 >/dev/null; then
    if server_pid "$name" >/dev/null; then
      log "$name did not stop within 60s; immediate shutdown"
      as_pg "$PGBIN/pg_ctl" stop -D "$d" -m immediate -w -t 60 >/dev/null || true
    fi
  fi
}

cmd_stop() {
  [[ -d $BASE ]] || { log "not running"; return 0; }
  local t0=$SECONDS
  if ! server_pid primary >/dev/null && ! server_pid replica >/dev/null; then
    log "not running"
    return 0
  fi
  # Replica first, so it does not spend the primary's shutdown retrying its connection.
  stop_server replica
  stop_server primary
  log "stopped in $((SECONDS - t0))s"
}

cmd_status() {
  local pid ok=0 streaming recovery
  if pid=$(server_pid primary); then
    streaming=$(streaming_count)
    printf 'primary 127.0.0.1:%s pid=%s streaming_replicas=%s log=%s\n' \
      $PRIMARY_PORT "$pid" "$streaming" "$(log_file primary)"
    ((streaming >= 1)) || ok=1
  else
    printf 'primary 127.0.0.1:%s down log=%s\n' $PRIMARY_PORT "$(log_file primary)"
    ok=1
  fi
  if pid=$(server_pid replica); then
    recovery=$(pq $REPLICA_PORT "SELECT pg_is_in_recovery()" 2>/dev/null || true)
    printf 'replica 127.0.0.1:%s pid=%s in_recovery=%s log=%s\n' \
      $REPLICA_PORT "$pid" "${recovery:-unreachable}" "$(log_file replica)"
    [[ $recovery == t ]] || ok=1
  else
    printf 'replica 127.0.0.1:%s down log=%s\n' $REPLICA_PORT "$(log_file replica)"
    ok=1
  fi
  return $ok
}

with_lock() {
  mkdir -p "$BASE"
  # One start/stop at a time. The servers are started with 9>&- so they never hold this lock.
  exec 9>"$BASE/.lock"
  flock -w 600 9 || die "another $0 is still running"
  "$@"
}

case "${1:-}" in
  start) with_lock cmd_start ;;
  stop) with_lock cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
