#!/usr/bin/env bash
# `make server`: an MLflow tracking server for many jobs at once (a cluster, parallel sweeps).
# DB=sqlite (default): a SQLite file under SERVER_DIR, for one machine. DB=postgres: Debian's
# PostgreSQL (installed if missing), an instance of its own — data, socket and log under
# SERVER_DIR/postgres (mode 700), no TCP, its socket named by PG_PORT — started here and stopped
# when the server ends (one that was already running is left running). Both get the pool settings below;
# numbers behind them: docs/cluster.md.
set -euo pipefail

DB=${DB:-sqlite}
PORT=${PORT:-5001}
HOST=${SERVER_HOST:-127.0.0.1}
DIR=$(realpath -m "${SERVER_DIR:-results/server}")
PG_PORT=${PG_PORT:-5433}
MLFLOW=${MLFLOW:-.venv/bin/mlflow}
# Each of the server's workers answers up to 40 requests at once from one database pool; a
# request that waits 30 s for a connection is answered 400 "QueuePool limit". 4 workers × (20 +
# 10) connections, and PostgreSQL's max_connections above that.
WORKERS=${SERVER_WORKERS:-4}
export MLFLOW_SQLALCHEMYSTORE_POOL_SIZE=${MLFLOW_SQLALCHEMYSTORE_POOL_SIZE:-20}
export MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW=${MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW:-10}

say() { echo "server: $*"; }
die() { echo "error: $*" >&2; exit 2; }

[[ $DB == sqlite || $DB == postgres ]] || die "DB: '$DB' is not allowed; use sqlite or postgres"
for name in PORT PG_PORT; do
  value=${!name}
  [[ $value =~ ^[0-9]+$ ]] && ((10#$value >= 1 && 10#$value <= 65535)) ||
    die "$name: '$value' is not allowed; use a port number 1..65535"
done
for name in SERVER_WORKERS MLFLOW_SQLALCHEMYSTORE_POOL_SIZE MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW; do
  value=${!name:-$WORKERS}
  [[ $value =~ ^[1-9][0-9]{0,3}$ ]] || die "$name: '$value' is not allowed; use an integer 1..9999"
done
MAX_CONNECTIONS=$((WORKERS * (MLFLOW_SQLALCHEMYSTORE_POOL_SIZE + MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW) + 20))
mkdir -p "$DIR"

PG_HOME=$DIR/postgres  # the instance's own folder: data/, its socket, postgres.log
PG_DATA=$PG_HOME/data
PG_LOG=$PG_HOME/postgres.log
started_postgres=

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_postgres() {  # PostgreSQL refuses to run as root: as root, run it as the postgres user
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  if [[ -z $(pg_bin) ]]; then
    ((EUID == 0)) || die "DB: postgres: PostgreSQL is not installed and only root can install it (apt-get install postgresql)"
    say "installing Debian's PostgreSQL"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  local bin
  bin=$(pg_bin)
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    install -d -m 700 "$PG_HOME"
    if ((EUID == 0)); then chown postgres: "$PG_HOME"; fi
    as_postgres test -w "$PG_HOME" ||
      die "DB: postgres: the postgres user cannot reach $PG_HOME; use a SERVER_DIR it can (every folder above it readable, e.g. under /var/tmp)"
    as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 >/dev/null 2>&1 ||
      die "DB: postgres: initdb failed in $PG_DATA"
  fi
  if as_postgres "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "PostgreSQL already running in $PG_DATA (left running at the end)"
  else
    started_postgres=$bin  # before the start: a signal during it still stops it
    # No TCP: its socket only, in PG_HOME (mode 700): only this user (and root) reach it.
    as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start -o \
      "-p $PG_PORT -k $PG_HOME -c listen_addresses='' -c max_connections=$MAX_CONNECTIONS" \
      >/dev/null || die "DB: postgres: PostgreSQL did not start with port $PG_PORT (log: $PG_LOG)"
  fi
  local sql=("$bin/psql" -h "$PG_HOME" -p "$PG_PORT" -U postgres -d postgres -qtA)
  [[ $("${sql[@]}" -c "select 1 from pg_database where datname = 'mlflow'") == 1 ]] ||
    "${sql[@]}" -c "create database mlflow" >/dev/null
}

stop_postgres() {
  if [[ -n $started_postgres ]]; then
    as_postgres "$started_postgres/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
    started_postgres=
  fi
}

if [[ $DB == postgres ]]; then
  trap stop_postgres EXIT
  start_postgres
  STORE="postgresql+psycopg2://postgres@/mlflow?host=$PG_HOME&port=$PG_PORT"
else
  STORE=sqlite:///$DIR/mlflow.db
fi
say "MLflow on http://$HOST:$PORT, store $STORE, $WORKERS workers"
# In the background of this shell (its process group: Ctrl-C or a signal to the group reaches
# the server and its workers), waited for, so that PostgreSQL is stopped after it.
"$MLFLOW" server --host "$HOST" --port "$PORT" --workers "$WORKERS" \
  --backend-store-uri "$STORE" --artifacts-destination "$DIR/artifacts" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' INT TERM HUP
status=0
while kill -0 "$server" 2>/dev/null; do
  status=0  # an interrupted wait says 128 + the signal; the server's own status follows
  wait "$server" || status=$?
done
exit "$status"
