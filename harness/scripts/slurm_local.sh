#!/usr/bin/env bash
# A one-node Slurm with real accounting on this machine, for tests and demos (make slurm-up /
# make slurm-down). Debian's packages, no systemd, no cgroups: munged, MariaDB, slurmdbd,
# slurmctld and slurmd started by hand, their state under $SLURM_LOCAL_DIR, their pids recorded
# so that `down` stops exactly what `up` started. Needs root on Debian.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/var/lib/harness-slurm}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARKER="# written by harness/slurm_local.sh"  # the script's first path: configs written then still match
DB_PORT=6820           # MariaDB for slurmdbd only, on loopback (6817-6819 are Slurm's own)
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)

say() { echo "slurm-local: $*"; }
die() { echo "error: slurm-local: $*" >&2; exit 2; }

alive() { local pid; pid=$(cat "$1" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll every 0.5 s until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  for ((i = 0; i < seconds * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
    for pidfile in "$DIR"/pids/*; do  # a daemon that died will not come up
      [[ -s $pidfile ]] && ! alive "$pidfile" && die "${pidfile##*/} exited (logs: $DIR/*.log)"
    done
  done
  die "$what did not come up within ${seconds} s (logs: $DIR/*.log)"
}

node_ready() { sinfo -h -n localhost -o %T | grep -Eq '^(idle|mixed|allocated)'; }

install_packages() {
  local missing=()
  for program in slurmctld slurmd sbatch slurmdbd munged mariadbd mariadb; do
    command -v "$program" >/dev/null || missing+=("$program")
  done
  ((${#missing[@]} == 0)) && return
  say "installing Debian's Slurm, munge and MariaDB (missing: ${missing[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >/dev/null
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return  # a munged already answers (the system's, or ours from an earlier up)
  fi
  [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  chown -R munge:munge /etc/munge && chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  wait_for 10 munged bash -c 'munge -n </dev/null | unmunge'
  cp /run/munge/munged.pid "$DIR/pids/munged"
}

start_mariadb() {
  if [[ ! -d $DIR/mysql/mysql ]]; then
    install -d -o mysql -g mysql "$DIR/mysql"
    mariadb-install-db --user=mysql --datadir="$DIR/mysql" --skip-test-db >"$DIR/mariadb.log" 2>&1
  fi
  # Our own instance (own data, socket and port), so that a MariaDB the machine runs is untouched.
  install -d -o mysql -g mysql "$DIR/mysql-run"
  mariadbd --user=mysql --datadir="$DIR/mysql" --socket="$DIR/mysql-run/mysqld.sock" \
    --pid-file="$DIR/mysql-run/mariadbd.pid" --bind-address=127.0.0.1 --port=$DB_PORT \
    --innodb-buffer-pool-size=64M >>"$DIR/mariadb.log" 2>&1 &
  echo $! >"$DIR/pids/mariadbd"
  wait_for 60 MariaDB mariadb --socket="$DIR/mysql-run/mysqld.sock" -e 'select 1'
  mariadb --socket="$DIR/mysql-run/mysqld.sock" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

write_configs() {
  for file in $CONF $DBD_CONF; do
    if [[ -f $file ]] && ! grep -qF "$MARKER" "$file"; then
      die "$file exists and was not written by this script (a site's Slurm?); not touching it"
    fi
  done
  # The node as slurmd sees it (plain CPUs=N makes slurmctld log a reconfiguration), under the
  # name localhost so that it works where the hostname does not resolve; memory a bit below total.
  local layout memory
  layout=$(slurmd -C | head -1 | grep -o 'CPUs=.*ThreadsPerCore=[0-9]*')
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  install -d -m 755 /etc/slurm "$DIR/ctld" "$DIR/d"
  cat >$CONF <<EOF
$MARKER: a one-node cluster for tests and demos
ClusterName=harness
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/pids/slurmctld
SlurmdPidFile=$DIR/pids/slurmd
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# no cgroups here: Linux process tracking, no task containment, no per-task usage sampling
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# real accounting: sacct answers for ended jobs, which submitit needs to see a killed job
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, each job would take the node's whole memory and jobs would run one at a time
DefMemPerCPU=1024
# array tasks start at once instead of every 3 s
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# SIGTERM → SIGKILL after 5 s (scancel, time limit), so that tests see kills quickly
KillWait=5
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 $layout RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >$DBD_CONF <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DIR/pids/slurmdbd
LogFile=$DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 $DBD_CONF
}

up() {
  [[ $(id -u) == 0 ]] || die "needs root (it installs Debian packages and starts daemons); use your site's Slurm otherwise"
  if command -v sinfo >/dev/null && node_ready 2>/dev/null && sacct -n -X >/dev/null 2>&1; then
    say "already up: $(sinfo -h -o '%P %D node(s) %T' | head -1)"
    return
  fi
  install_packages
  install -d -m 755 "$DIR" "$DIR/pids"
  for pidfile in "$DIR"/pids/*; do  # left by daemons that are gone (a reboot, a kill -9)
    [[ -e $pidfile ]] && ! alive "$pidfile" && rm -f "$pidfile"
  done
  write_configs
  start_munge
  alive "$DIR/pids/mariadbd" || start_mariadb
  if ! alive "$DIR/pids/slurmdbd"; then
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
  fi
  # The cluster must be known to the database before slurmctld registers with it.
  sacctmgr -n list cluster format=cluster | grep -qw harness || sacctmgr -i add cluster harness >/dev/null
  alive "$DIR/pids/slurmctld" || slurmctld
  alive "$DIR/pids/slurmd" || slurmd -N localhost
  wait_for 60 "the node" node_ready
  wait_for 30 accounting sacct -n -X
  say "up: $(sinfo -h -o '%P %D node(s) %T, %c CPUs, %m MB'); state and logs in $DIR"
}

down() {
  local stopped=()
  for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    local pidfile=$DIR/pids/$daemon
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || continue
    if kill "$pid" 2>/dev/null; then
      for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      stopped+=("$daemon")
    fi
    rm -f "$pidfile"
  done
  say "stopped: ${stopped[*]:-nothing (none of its daemons was running)}"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
