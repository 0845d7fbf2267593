#!/usr/bin/env bash
# A local 3-node MariaDB Galera cluster on loopback, for the integration tests.
#
#   scripts/galera.sh start    # create (first time) or restart the cluster, wait until all 3 nodes are Synced
#   scripts/galera.sh stop     # stop nodes 3, 2, 1 (node 1 stops last, so it can bootstrap the next start)
#   scripts/galera.sh status   # one line per node; exit 0 only if all 3 are Synced in a cluster of size 3
#   scripts/galera.sh env      # `export OPTLOCK_GALERA_DSNS=...` for eval "$(scripts/galera.sh env)"
#
#   scripts/galera.sh kill N   # kill -9 node N (by its pid file), as a crash would; `start` rejoins it:
#                              # its position is recovered from InnoDB, so it catches up by IST
#
# Node N (1..3): SQL port 331N, gcomm 457N, IST 458N, rsync SST 459N, all on 127.0.0.1; each base is
# overridable (OPTLOCK_GALERA_SQL_BASE=3310, ..._GCOMM_BASE=4570, ..._IST_BASE=4580, ..._SST_BASE=4590:
# node N gets base+N), so a second cluster can run beside the first under another OPTLOCK_CLUSTER_DIR.
# start prints its progress and the status lines on stderr and only the export lines on stdout.
# Everything lives under ${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}/galera/nodeN
# (my.cnf, data/, error.log, optlock.pid). Only processes started by this script are ever signalled:
# their pid is in nodeN/optlock.pid and their command line must name nodeN/my.cnf.
set -euo pipefail
umask 022

# Absolute: it is written into my.cnf and matched against the servers' command lines.
BASE="$(realpath -m -- "${OPTLOCK_CLUSTER_DIR:-/tmp/optlock-clusters}")/galera"
MARIADBD=/usr/sbin/mariadbd
PROVIDER=/usr/lib/galera/libgalera_smm.so
NODES=(1 2 3)
NODE_TIMEOUT=${OPTLOCK_GALERA_NODE_TIMEOUT:-120} # seconds for one node to reach Synced
STOP_TIMEOUT=${OPTLOCK_GALERA_STOP_TIMEOUT:-60}  # seconds for one node to exit after SIGTERM
SQL_BASE=${OPTLOCK_GALERA_SQL_BASE:-3310}
GCOMM_BASE=${OPTLOCK_GALERA_GCOMM_BASE:-4570}
IST_BASE=${OPTLOCK_GALERA_IST_BASE:-4580}
SST_BASE=${OPTLOCK_GALERA_SST_BASE:-4590}

# mariadbd refuses to run as root without --user; as root we run it as the mysql user instead.
if [[ $EUID -eq 0 ]]; then RUN_USER=mysql; else RUN_USER=$(id -un); fi

log() { printf '[galera] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

sql_port() { echo $((SQL_BASE + $1)); }
gcomm_port() { echo $((GCOMM_BASE + $1)); }
node_dir() { echo "$BASE/node$1"; }
cnf() { echo "$BASE/node$1/my.cnf"; }

dsns() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("root@tcp(127.0.0.1:$(sql_port "$n"))/test?parseTime=true"); done
  (IFS=,; echo "${out[*]}")
}

print_env() {
  printf "export OPTLOCK_GALERA_DSNS='%s'\n" "$(dsns)"
}

# --- processes -------------------------------------------------------------------------------------

# True if process PID is alive and one of its arguments is exactly ARG.
cmdline_has() { # pid, arg
  local args
  args=$({ tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
  [[ $'\n'$args$'\n' == *$'\n'"$2"$'\n'* ]]
}

# Prints the pid of node N's mariadbd if it is running and is the one we started; else returns 1.
node_pid() {
  local pidfile pid
  pidfile="$(node_dir "$1")/optlock.pid"
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # The command line must be mariadbd with this node's config: guards against a reused pid.
  cmdline_has "$pid" "--defaults-file=$(cnf "$1")" || return 1
  echo "$pid"
}

# mysql client over TCP only; --no-defaults so /etc/mysql/my.cnf's socket is never used.
myq() { # port, sql
  mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$1" -u root --connect-timeout=3 -N -B -e "$2"
}

# Value of a global status variable on node N, empty if unreachable.
wsrep_status() { # node, variable
  myq "$(sql_port "$1")" "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}' || true
}

running_count() {
  local n c=0
  for n in "${NODES[@]}"; do if node_pid "$n" >/dev/null; then c=$((c + 1)); fi; done
  echo "$c"
}

# --- configuration and data ------------------------------------------------------------------------

write_config() { # node
  local n=$1 d
  d=$(node_dir "$n")
  mkdir -p "$d/data" "$d/tmp"
  cat >"$d/my.cnf.tmp" <<EOF
# Written by scripts/galera.sh; rewritten on every start.
[mysqld]
user                      = $RUN_USER
datadir                   = $d/data
socket                    = $d/mysqld.sock
pid-file                  = $d/mysqld.pid
log-error                 = $d/error.log
# Its own: a starting mariadbd (and --wsrep-recover) deletes every #sql* file in its tmpdir, which in
# a shared /tmp are the internal temporary tables of the other nodes' running statements.
tmpdir                    = $d/tmp
port                      = $(sql_port "$n")
bind-address              = 127.0.0.1
skip-name-resolve
character-set-server      = utf8mb4
collation-server          = utf8mb4_general_ci
# Small footprint: three of these share a 2-core machine with the system servers.
innodb_buffer_pool_size   = 64M
innodb_log_file_size      = 32M
innodb_flush_log_at_trx_commit = 2
performance_schema        = OFF
max_connections           = 200
# What Galera requires.
binlog_format             = ROW
default_storage_engine    = InnoDB
innodb_autoinc_lock_mode  = 2
wsrep_on                  = ON
wsrep_provider            = $PROVIDER
wsrep_cluster_name        = optlock
wsrep_node_name           = node$n
wsrep_cluster_address     = gcomm://127.0.0.1:$(gcomm_port 1),127.0.0.1:$(gcomm_port 2),127.0.0.1:$(gcomm_port 3)
wsrep_provider_options    = "base_host=127.0.0.1; base_port=$(gcomm_port "$n"); gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n"); ist.recv_addr=127.0.0.1:$((IST_BASE + n)); pc.recovery=FALSE; gcache.size=64M"
wsrep_node_incoming_address = 127.0.0.1:$(sql_port "$n")
# mariabackup is not installed; rsync SST is enough for a test cluster.
wsrep_sst_method          = rsync
wsrep_sst_receive_address = 127.0.0.1:$((SST_BASE + n))
EOF
  mv "$d/my.cnf.tmp" "$d/my.cnf"
  chown "$RUN_USER": "$d" "$d/data" "$d/tmp"
}

# First start ever: only node 1 gets system tables; nodes 2 and 3 start empty and receive a full SST.
init_cluster() {
  local n
  log "initialising a new cluster under $BASE"
  for n in "${NODES[@]}"; do
    rm -rf "$(node_dir "$n")"
    write_config "$n"
  done
  # normal auth: root@127.0.0.1 (among others) with an empty password, which the tests use over TCP.
  if ! mariadb-install-db --defaults-file="$(cnf 1)" --user="$RUN_USER" --wsrep-on=OFF \
      --auth-root-authentication-method=normal --skip-test-db >"$(node_dir 1)/install.log" 2>&1; then
    tail -n 30 "$(node_dir 1)/install.log" >&2
    die "mariadb-install-db failed for node 1"
  fi
  touch "$(node_dir 1)/.installed"
}

# A node that died mid-SST leaves a half-copied datadir and lock files; clear them so it can rejoin.
clean_stale_node() { # node
  local d data pid
  d=$(node_dir "$1"); data="$d/data"
  rm -f "$d/optlock.pid"
  # A lingering rsync daemon of a crashed SST would block the next SST for 30 s and then fail.
  if [[ -s $data/rsync_sst.pid ]]; then
    pid=$(<"$data/rsync_sst.pid")
    if [[ $pid =~ ^[0-9]+$ ]] && cmdline_has "$pid" "$data/rsync_sst.conf"; then
      log "node $1: killing leftover rsync SST daemon $pid"
      kill "$pid" 2>/dev/null || true
      sleep 1
    fi
  fi
  rm -f "$data/rsync_sst.pid" "$data/rsync_sst.conf" "$data/stunnel.pid" "$data/stunnel.conf"
  if [[ -e $data/sst_in_progress ]]; then
    log "node $1: previous SST was interrupted; emptying its datadir for a full SST"
    find "$data" -mindepth 1 -delete
  fi
}

# Sequence number node N would resume from: grastate.dat if shut down cleanly, else --wsrep-recover.
node_seqno() { # node
  local d seqno
  d=$(node_dir "$1")
  [[ -f $d/data/grastate.dat ]] || { echo -1; return; }
  seqno=$(awk '/^seqno:/ {print $2}' "$d/data/grastate.dat")
  if [[ ${seqno:--1} == -1 ]]; then
    "$MARIADBD" --defaults-file="$(cnf "$1")" --wsrep-recover --disable-log-error 2>"$d/recover.log" </dev/null || true
    seqno=$(grep -a 'WSREP: Recovered position:' "$d/recover.log" | tail -n1 | sed 's/.*://; s/[^0-9-]//g')
  fi
  echo "${seqno:--1}"
}

# The position (uuid:seqno) a node that was killed should start from, or nothing. After a crash
# grastate.dat says seqno -1, and mariadbd started as is would ask for a full SST (rsync, with the
# donor read-locked while it copies); Debian's systemd unit runs galera_recovery for this, and so do
# we: --wsrep-recover reads the last committed position from InnoDB, and --wsrep-start-position
# lets the node ask for an incremental state transfer (IST) of only what it missed.
recovered_position() { # node
  local d pos
  d=$(node_dir "$1")
  [[ -f $d/data/grastate.dat && -f $d/data/ibdata1 && ! -e $d/data/sst_in_progress ]] || return 0
  grep -q '^seqno: *-1$' "$d/data/grastate.dat" || return 0 # shut down cleanly: grastate.dat has it
  "$MARIADBD" --defaults-file="$(cnf "$1")" --wsrep-recover --disable-log-error 2>"$d/recover.log" </dev/null || true
  pos=$(grep -a 'WSREP: Recovered position:' "$d/recover.log" | tail -n1 | sed 's/.*Recovered position: *//; s/[[:space:]]*$//')
  if [[ $pos =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9]+$ ]]; then
    echo "$pos"
  fi
}

# Which node should bootstrap a cluster that is fully down: the one Galera marked safe_to_bootstrap
# (the last to stop cleanly), else the one with the most recent state (after a crash), else node 1.
pick_bootstrap_node() {
  local n best=1 best_seq=-2 seq
  for n in "${NODES[@]}"; do
    if grep -qx 'safe_to_bootstrap: 1' "$(node_dir "$n")/data/grastate.dat" 2>/dev/null; then
      echo "$n"; return
    fi
  done
  log "no node is marked safe_to_bootstrap (unclean shutdown); recovering positions"
  for n in "${NODES[@]}"; do
    seq=$(node_seqno "$n")
    log "node $n: recovered seqno $seq"
    if ((seq > best_seq)); then best=$n; best_seq=$seq; fi
  done
  echo "$best"
}

mark_safe_to_bootstrap() { # node
  local f
  f="$(node_dir "$1")/data/grastate.dat"
  [[ -f $f ]] || return 0
  sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/' "$f"
  chown "$RUN_USER": "$f" # sed -i replaced the file as the calling user
}

# --- start / stop ----------------------------------------------------------------------------------

launch() { # node, extra mariadbd args...
  local n=$1 d
  shift
  d=$(node_dir "$n")
  clean_stale_node "$n"
  # setsid: the server must outlive the shell (and process group) that ran `start`; 9>&-: it must not
  # inherit (and so hold forever) the lock taken by with_lock.
  # The inner shell records its own pid and then execs mariadbd, so the pid file names mariadbd itself.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$d/optlock.pid" \
    "$MARIADBD" --defaults-file="$(cnf "$n")" "$@" </dev/null >>"$d/console.log" 2>&1 9>&- &
  local _
  for _ in $(seq 1 50); do
    if [[ -s $d/optlock.pid ]]; then break; fi
    sleep 0.1
  done
}

fail_node() { # node, message
  log "ERROR: node $1 (127.0.0.1:$(sql_port "$1")): $2"
  log "last lines of $(node_dir "$1")/error.log:"
  tail -n 40 "$(node_dir "$1")/error.log" >&2 2>/dev/null || true
  exit 1
}

wait_synced() { # node, expected cluster size
  local n=$1 want=$2 deadline state size
  deadline=$((SECONDS + NODE_TIMEOUT))
  while ((SECONDS < deadline)); do
    node_pid "$n" >/dev/null || fail_node "$n" "mariadbd exited while starting"
    state=$(wsrep_status "$n" wsrep_local_state_comment)
    size=$(wsrep_status "$n" wsrep_cluster_size)
    if [[ $state == Synced && $size == "$want" ]]; then
      log "node $n is Synced (cluster size $size)"
      return 0
    fi
    sleep 1
  done
  fail_node "$n" "not Synced with cluster size $want after ${NODE_TIMEOUT}s (state='${state:-}', size='${size:-}'); run '$0 stop' to clean up"
}

# How node N caught up since its error.log was FROM bytes long: full SST, IST, or neither.
transfer_kind() { # node, from
  local since
  since=$(tail -c +"$(($2 + 1))" "$(node_dir "$1")/error.log" 2>/dev/null || true)
  if grep -aq 'rsync SST completed on joiner' <<<"$since"; then echo "a full SST (rsync)"
  elif grep -aqE 'Receiving IST|IST received' <<<"$since"; then echo "IST"
  else echo "no state transfer"; fi
}

start_node() { # node, mode (bootstrap|join)
  local n=$1 pos args=() from
  from=$(stat -c %s "$(node_dir "$n")/error.log" 2>/dev/null || echo 0)
  pos=$(recovered_position "$n")
  if [[ -n $pos ]]; then
    log "node $n: not shut down cleanly; recovered position $pos"
    args+=(--wsrep-start-position="$pos")
  fi
  if [[ $2 == bootstrap ]]; then
    log "bootstrapping a new primary component on node $n"
    mark_safe_to_bootstrap "$n"
    launch "$n" --wsrep-new-cluster "${args[@]}"
  else
    log "starting node $n (joining)"
    launch "$n" "${args[@]}"
  fi
  wait_synced "$n" "$(running_count)"
  if [[ $2 == join ]]; then log "node $n caught up by $(transfer_kind "$n" "$from")"; fi
}

# Any running node that is Synced in a primary component, or empty.
synced_primary_node() {
  local n
  for n in "${NODES[@]}"; do
    node_pid "$n" >/dev/null || continue
    if [[ $(wsrep_status "$n" wsrep_cluster_status) == Primary &&
          $(wsrep_status "$n" wsrep_local_state_comment) == Synced ]]; then
      echo "$n"; return
    fi
  done
}

cmd_start() {
  if cmd_status >/dev/null 2>&1; then
    log "already running and healthy"
    cmd_status >&2
    print_env
    return 0
  fi
  command -v mariadb >/dev/null || die "mariadb client not found"
  [[ -x $MARIADBD ]] || die "$MARIADBD not found"
  [[ -f $PROVIDER ]] || die "Galera provider $PROVIDER not found (install galera-4)"
  command -v rsync >/dev/null || die "rsync not found (needed for SST)"

  local n first="" t0=$SECONDS
  # Refuse to start on a port that some other process already holds (e.g. another cluster).
  for n in "${NODES[@]}"; do
    if ! node_pid "$n" >/dev/null && ss -Hltn "sport = :$(sql_port "$n")" 2>/dev/null | grep -q .; then
      die "port $(sql_port "$n") is in use by a process this script did not start"
    fi
  done

  if (($(running_count) > 0)); then
    # Partial cluster: join the missing nodes to the surviving one(s).
    first=$(synced_primary_node)
    if [[ -z $first ]]; then
      # Survivors lost quorum (non-Primary): promote the first of them to a new primary component.
      for n in "${NODES[@]}"; do
        if node_pid "$n" >/dev/null; then first=$n; break; fi
      done
      log "running node(s) have no primary component; forcing pc.bootstrap on node $first"
      myq "$(sql_port "$first")" "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'" ||
        fail_node "$first" "could not set pc.bootstrap"
      wait_synced "$first" "$(running_count)"
    fi
    for n in "${NODES[@]}"; do write_config "$n"; done
  else
    # Nothing running: fresh cluster, or restart from the stopped datadirs.
    local have_state=0
    for n in "${NODES[@]}"; do
      if [[ -f $(node_dir "$n")/data/grastate.dat ]]; then have_state=1; fi
    done
    if ((have_state == 0)) && [[ ! -f $(node_dir 1)/.installed ]]; then
      init_cluster
      first=1
    else
      for n in "${NODES[@]}"; do write_config "$n"; done
      if ((have_state == 0)); then first=1; else first=$(pick_bootstrap_node); fi
    fi
    start_node "$first" bootstrap
  fi

  for n in "${NODES[@]}"; do
    node_pid "$n" >/dev/null || start_node "$n" join
  done

  # DDL runs as total-order isolation, so creating it on one node creates it on all.
  myq "$(sql_port "$first")" "CREATE DATABASE IF NOT EXISTS test" || die "could not create database test"
  log "cluster up in $((SECONDS - t0))s"
  cmd_status >&2
  print_env
}

stop_node() { # node
  local n=$1 pid deadline
  pid=$(node_pid "$n") || { rm -f "$(node_dir "$n")/optlock.pid"; return 0; }
  log "stopping node $n (pid $pid)"
  kill -TERM "$pid"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.5; done
  if node_pid "$n" >/dev/null; then
    log "node $n did not exit within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while [[ -e /proc/$pid ]]; do sleep 0.2; done
  fi
  rm -f "$(node_dir "$n")/optlock.pid"
}

cmd_stop() {
  [[ -d $BASE ]] || { log "not running"; return 0; }
  local n t0=$SECONDS
  if (($(running_count) == 0)); then
    for n in "${NODES[@]}"; do rm -f "$(node_dir "$n")/optlock.pid"; done
    log "not running"
    return 0
  fi
  # Reverse order, one at a time: each remaining node stays Primary, and node 1, the last to leave,
  # is marked safe_to_bootstrap for the next start.
  for n in 3 2 1; do stop_node "$n"; done
  log "stopped in $((SECONDS - t0))s"
}

# kill -9 of node N's mariadbd, found by its pid file (never by name): a crash, for the fault tests.
cmd_kill() { # node
  local n=$1 pid
  [[ $n =~ ^[1-3]$ ]] || die "kill takes a node number, 1 to 3"
  pid=$(node_pid "$n") || die "node $n is not running"
  log "killing node $n (pid $pid) with SIGKILL"
  kill -KILL "$pid"
  while [[ -e /proc/$pid ]]; do sleep 0.1; done
  rm -f "$(node_dir "$n")/optlock.pid"
}

cmd_status() {
  local n pid state size cstatus ok=0
  for n in "${NODES[@]}"; do
    if pid=$(node_pid "$n"); then
      state=$(wsrep_status "$n" wsrep_local_state_comment)
      size=$(wsrep_status "$n" wsrep_cluster_size)
      cstatus=$(wsrep_status "$n" wsrep_cluster_status)
      printf 'node%s 127.0.0.1:%s pid=%s state=%s cluster_size=%s cluster_status=%s\n' \
        "$n" "$(sql_port "$n")" "$pid" "${state:-unreachable}" "${size:--}" "${cstatus:--}"
      [[ $state == Synced && $size == "${#NODES[@]}" ]] || ok=1
    else
      printf 'node%s 127.0.0.1:%s down\n' "$n" "$(sql_port "$n")"
      ok=1
    fi
  done
  return $ok
}

with_lock() {
  mkdir -p "$BASE"
  # One start/stop at a time: two concurrent starts would both try to bootstrap.
  exec 9>"$BASE/.lock"
  flock -w 600 9 || die "another $0 is still running"
  "$@"
}

case "${1:-}" in
  start) with_lock cmd_start ;;
  stop) with_lock cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  kill) with_lock cmd_kill "${2:-}" ;;
  *) echo "usage: $0 {start|stop|status|env|kill N}" >&2; exit 2 ;;
esac
