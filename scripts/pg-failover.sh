#!/usr/bin/env bash
# A PostgreSQL 15 primary (127.0.0.1:5451) and streaming replica (127.0.0.1:5452) that the fault tests
# fail over: the primary crashes and the replica is promoted with `pg_ctl promote`.
#
#   scripts/pg-failover.sh start      # a healthy pair (rebuilt after a failover), synchronous replication
#   scripts/pg-failover.sh stop       # stop both
#   scripts/pg-failover.sh status     # one line per server; exit 0 only if the replica is streaming
#   scripts/pg-failover.sh env        # `export OPTLOCK_PG_FAILOVER_PRIMARY_DSN=...` etc.
#   scripts/pg-failover.sh failover   # crash the primary, promote the replica; prints the seconds taken
#
# Why `pg_ctl promote` and not a failover manager (pg_auto_failover, Patroni): what the library sees
# is the same, a primary that vanishes mid-call and another server that takes the writes with what it
# had replicated, and a manager would add a monitor node and its own timing to every CI run. What a
# manager adds on top (fencing the old primary, choosing the most advanced standby) is not something
# the library can observe or help with.
#
# The crash is `pg_ctl stop -m immediate` on the primary's data directory: every server process exits
# at once, without a shutdown checkpoint and without waiting for clients or the standby, exactly as
# after a kill -9 of the postmaster (the next start runs crash recovery). Promotion follows at once.
#
# The primary names the replica in synchronous_standby_names: a session that keeps the default
# synchronous_commit=on gets its COMMIT acknowledged only once the replica has flushed it, a session
# with synchronous_commit=local (asynchronous replication) as soon as the primary has. The tests choose
# per connection, so one pair serves both. After a promotion the new primary has no standby: failover
# clears its synchronous_standby_names, as a failover manager would, or every commit would wait.
#
# This is scripts/pg-replica.sh with another directory, other ports and names: everything lives under
# ${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}/pg-failover. Ports: OPTLOCK_PG_FAILOVER_PRIMARY_PORT
# (5451) and OPTLOCK_PG_FAILOVER_REPLICA_PORT (5452). `start` after a failover restarts the old primary
# (crash recovery) and rebuilds the replica from it with pg_basebackup: whatever the promoted replica
# wrote since is discarded, which is fine for a throwaway test pair.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
export OPTLOCK_PG_PAIR_NAME=pg-failover
export OPTLOCK_PG_NAME_PREFIX=optlock_failover
export OPTLOCK_PG_PRIMARY_PORT=${OPTLOCK_PG_FAILOVER_PRIMARY_PORT:-5451}
export OPTLOCK_PG_REPLICA_PORT=${OPTLOCK_PG_FAILOVER_REPLICA_PORT:-5452}
BASE="$(realpath -m -- "${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}")/pg-failover"
PGBIN=/usr/lib/postgresql/15/bin
PAIR="$HERE/pg-replica.sh"
STANDBY=${OPTLOCK_PG_NAME_PREFIX}_replica

log() { printf '[pg-failover] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pq() { # port, sql
  PGAPPNAME=optlock-cluster-script PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

as_pg() {
  if [[ $EUID -eq 0 ]]; then (cd "$BASE" && runuser -u postgres -- "$@"); else (cd "$BASE" && "$@"); fi
}

print_env() {
  "$PAIR" env | sed 's/OPTLOCK_PG_/OPTLOCK_PG_FAILOVER_/'
}

# The primary's postgresql.auto.conf without synchronous_standby_names: set while the replica is
# rebuilt, the primary would wait for it on every commit (its own setup included).
clear_sync_on_disk() {
  local f="$BASE/primary/postgresql.auto.conf"
  [[ -f $f ]] || return 0
  sed -i '/^synchronous_standby_names/d' "$f"
}

cmd_start() {
  if "$PAIR" status >/dev/null 2>&1; then
    log "already running and healthy"
    "$PAIR" status >&2
    print_env
    return 0
  fi
  mkdir -p "$BASE"
  if "$PAIR" status 2>/dev/null | grep -q '^primary .* pid='; then
    pq "$OPTLOCK_PG_PRIMARY_PORT" "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
    pq "$OPTLOCK_PG_PRIMARY_PORT" "SELECT pg_reload_conf()" >/dev/null
  else
    clear_sync_on_disk
  fi
  "$PAIR" start >/dev/null
  pq "$OPTLOCK_PG_PRIMARY_PORT" "ALTER SYSTEM SET synchronous_standby_names = '$STANDBY'" >/dev/null
  pq "$OPTLOCK_PG_PRIMARY_PORT" "SELECT pg_reload_conf()" >/dev/null
  # Wait until the primary counts the replica as its synchronous standby.
  local deadline=$((SECONDS + 30))
  until [[ $(pq "$OPTLOCK_PG_PRIMARY_PORT" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1 ]]; do
    ((SECONDS < deadline)) || die "the replica did not become the synchronous standby within 30s"
    sleep 0.2
  done
  log "synchronous standby: $STANDBY"
  "$PAIR" status >&2
  print_env
}

cmd_failover() {
  local t0 pid
  local status
  t0=$(date +%s.%N)
  # status exits 1 whenever the replica is not streaming (cut off, say): read its lines anyway.
  status=$("$PAIR" status 2>/dev/null || true)
  grep -q '^replica .* in_recovery=t' <<<"$status" || die "no replica in recovery to promote"
  pid=$(sed -n 's/^primary .* pid=\([0-9]*\).*/\1/p' <<<"$status")
  if [[ -n $pid ]]; then
    log "crashing the primary (pid $pid): pg_ctl stop -m immediate"
    as_pg "$PGBIN/pg_ctl" stop -D "$BASE/primary" -m immediate -w -t 30 >/dev/null
  fi
  log "promoting the replica"
  as_pg "$PGBIN/pg_ctl" promote -D "$BASE/replica" -w -t 60 >/dev/null
  pq "$OPTLOCK_PG_REPLICA_PORT" "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
  pq "$OPTLOCK_PG_REPLICA_PORT" "SELECT pg_reload_conf()" >/dev/null
  log "replica promoted; it takes writes on 127.0.0.1:$OPTLOCK_PG_REPLICA_PORT"
  echo "$t0 $(date +%s.%N)" | awk '{printf "%.2f\n", $2 - $1}'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) "$PAIR" stop ;;
  status) "$PAIR" status ;;
  env) print_env ;;
  failover) cmd_failover ;;
  *) echo "usage: $0 {start|stop|status|env|failover}" >&2; exit 2 ;;
esac
