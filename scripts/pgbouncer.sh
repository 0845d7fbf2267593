#!/usr/bin/env bash
# PgBouncer (Debian package pgbouncer) in transaction-pooling mode on 127.0.0.1:6441, in front of the
# tests' PostgreSQL (127.0.0.1:5432), for the fault tests.
#
#   scripts/pgbouncer.sh start    # write the configuration, start the pooler, wait until it serves
#   scripts/pgbouncer.sh stop     # stop it (SIGTERM to the pid in its pid file)
#   scripts/pgbouncer.sh status   # one line; exit 0 only if it answers and reaches the server
#   scripts/pgbouncer.sh env      # `export OPTLOCK_PGBOUNCER_DSN=...` for eval "$(scripts/pgbouncer.sh env)"
#
# Overridable: OPTLOCK_PGBOUNCER_PORT (6441), OPTLOCK_PGBOUNCER_TARGET_PORT (5432, the server),
# OPTLOCK_PGBOUNCER_DBNAME (test, the database the printed DSN names; any database of the server can
# be reached), OPTLOCK_PGBOUNCER_POOL_SIZE (8 server connections per database and user: fewer than the
# clients, so transactions of different clients do share server connections).
# Everything lives under ${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}/pgbouncer (pgbouncer.ini,
# userlist.txt, pgbouncer.log, pgbouncer.pid). Only the process named in pgbouncer.pid whose command
# line names this pgbouncer.ini is ever signalled. PgBouncer refuses to run as root: as root it runs as
# the postgres user.
set -euo pipefail
umask 022

BASE="$(realpath -m -- "${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}")/pgbouncer"
PORT=${OPTLOCK_PGBOUNCER_PORT:-6441}
TARGET_PORT=${OPTLOCK_PGBOUNCER_TARGET_PORT:-5432}
DBNAME=${OPTLOCK_PGBOUNCER_DBNAME:-test}
POOL_SIZE=${OPTLOCK_PGBOUNCER_POOL_SIZE:-8}
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
INI="$BASE/pgbouncer.ini"
PIDFILE="$BASE/pgbouncer.pid"

log() { printf '[pgbouncer] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

print_env() {
  printf "export OPTLOCK_PGBOUNCER_DSN='host=127.0.0.1 port=%s user=root dbname=%s sslmode=disable'\n" "$PORT" "$DBNAME"
}

as_run_user() {
  if [[ $EUID -eq 0 ]]; then (cd "$BASE" && runuser -u postgres -- "$@"); else (cd "$BASE" && "$@"); fi
}

# Prints pgbouncer's pid if it is running and is ours; else returns 1.
bouncer_pid() {
  local pid args
  [[ -s $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  args=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
  [[ $'\n'$args$'\n' == *$'\n'"$INI"$'\n'* ]] || return 1
  echo "$pid"
}

pq() { # database, sql
  PGAPPNAME=optlock-cluster-script PGCONNECT_TIMEOUT=3 psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U root -d "$1" -c "$2"
}

write_config() {
  mkdir -p "$BASE"
  # trust: the server behind trusts 127.0.0.1 too; the user must still be listed in auth_file.
  printf '"root" ""\n"postgres" ""\n' >"$BASE/userlist.txt"
  cat >"$INI.tmp" <<CONF
; Written by scripts/pgbouncer.sh; rewritten on every start.
[databases]
; Every database name is passed through to the test server.
* = host=127.0.0.1 port=$TARGET_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $BASE/userlist.txt
admin_users = root
stats_users = root
; The mode the library must survive: a server connection belongs to a client for one transaction only.
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 300
; pgx and lib/pq may send these; PgBouncer would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits
logfile = $BASE/pgbouncer.log
pidfile = $PIDFILE
log_connections = 0
log_disconnections = 0
CONF
  mv "$INI.tmp" "$INI"
  chown -R postgres: "$BASE" 2>/dev/null || true
}

cmd_start() {
  if cmd_status >/dev/null 2>&1; then
    log "already running and healthy"
    cmd_status >&2
    print_env
    return 0
  fi
  [[ -x $PGBOUNCER ]] || die "pgbouncer not found (apt-get install pgbouncer)"
  if bouncer_pid >/dev/null; then cmd_stop; fi
  if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port $PORT is in use by a process this script did not start"
  fi
  write_config
  rm -f "$PIDFILE"
  log "starting on 127.0.0.1:$PORT (transaction pooling, in front of 127.0.0.1:$TARGET_PORT)"
  # -d: daemonize, after writing the pid file; 9>&-: it must not hold the lock of with_lock.
  as_run_user setsid "$PGBOUNCER" -d -q "$INI" </dev/null 9>&- || {
    tail -n 20 "$BASE/pgbouncer.log" >&2 2>/dev/null; die "pgbouncer did not start"; }
  local deadline=$((SECONDS + 30))
  until cmd_status >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$BASE/pgbouncer.log" >&2 2>/dev/null || true
      die "pgbouncer does not serve $DBNAME on 127.0.0.1:$PORT after 30s"
    fi
    sleep 0.2
  done
  cmd_status >&2
  print_env
}

cmd_stop() {
  local pid deadline
  pid=$(bouncer_pid) || { log "not running"; rm -f "$PIDFILE"; return 0; }
  log "stopping (pid $pid)"
  kill -TERM "$pid"
  deadline=$((SECONDS + 30))
  while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.2; done
  if bouncer_pid >/dev/null; then
    log "still running after 30s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

cmd_status() {
  local pid
  if ! pid=$(bouncer_pid); then
    printf 'pgbouncer 127.0.0.1:%s down\n' "$PORT"
    return 1
  fi
  if [[ $(pq "$DBNAME" "SELECT 1" 2>/dev/null) != 1 ]]; then
    printf 'pgbouncer 127.0.0.1:%s pid=%s cannot reach database %s on 127.0.0.1:%s\n' "$PORT" "$pid" "$DBNAME" "$TARGET_PORT"
    return 1
  fi
  printf 'pgbouncer 127.0.0.1:%s pid=%s pool_mode=transaction server=127.0.0.1:%s log=%s\n' "$PORT" "$pid" "$TARGET_PORT" "$BASE/pgbouncer.log"
}

with_lock() {
  mkdir -p "$BASE"
  exec 9>"$BASE/.lock"
  flock -w 120 9 || die "another $0 is still running"
  "$@"
}

case "${1:-}" in
  start) with_lock cmd_start ;;
  stop) with_lock cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
