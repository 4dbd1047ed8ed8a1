#!/usr/bin/env bash
# A throwaway local PostgreSQL 15 with pgvector (>= 0.8) for tests, benchmarks and development.
#
#   bash .ci/postgres.sh            # installs what is missing, starts the server, prints its DSN
#   export MEMRL_TEST_POSTGRES_DSN=$(bash .ci/postgres.sh | tail -n 1)
#
# Idempotent: a second run finds everything installed and the server running, and prints the
# same DSN. Its own data directory and port (MEMRL_PG_DIR, MEMRL_PG_PORT), trust auth on
# loopback only: never expose this instance. Stop it with
#   runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$MEMRL_PG_DIR" stop
# Needs root (apt-get, and initdb runs as the postgres user because it refuses root).
#
# Debian 12 packages PostgreSQL 15 but not pgvector; the next Debian release does, and its
# source package builds against PostgreSQL 15 in seconds. The source is fetched with a
# private apt configuration (a deb-src line made from this machine's own Debian mirror), so
# the machine's apt sources are left unchanged.
set -euo pipefail

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_DIR=${MEMRL_PG_DIR:-/var/tmp/memrl-postgres}
PG_PORT=${MEMRL_PG_PORT:-55432}
PG_DB=${MEMRL_PG_DB:-memrl_test}
PGVECTOR_SUITE=${MEMRL_PGVECTOR_SUITE:-trixie}

log() { echo "postgres.sh: $*" >&2; }

apt_install() {
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -q >&2
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

install_postgres() {
  if [ -x "$PG_BIN/postgres" ]; then
    return
  fi
  log "installing postgresql-$PG_VERSION"
  # No cluster of the distribution's own: this script makes its own data directory.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/memrl.conf
  apt_install "postgresql-$PG_VERSION"
}

debian_mirror() {
  # The URI of this machine's Debian archive (deb822 sources or a classic sources.list).
  local uri=""
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -v -- '-security' | grep -m1 debian || true)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

install_pgvector() {
  local sharedir
  if [ -f "/usr/share/postgresql/$PG_VERSION/extension/vector.control" ]; then
    return
  fi
  log "building pgvector from Debian's source package ($PGVECTOR_SUITE)"
  apt_install "postgresql-server-dev-$PG_VERSION" build-essential dpkg-dev ca-certificates
  local work
  work=$(mktemp -d)
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  echo "deb-src $(debian_mirror) $PGVECTOR_SUITE main" > "$work/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${opts[@]}" update -q >&2
  (cd "$work" && apt-get "${opts[@]}" source --download-only pgvector >&2)
  (cd "$work" && dpkg-source -x --no-check ./pgvector_*.dsc src >&2)
  make -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" -j2 >&2
  make -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" install >&2
  sharedir=$("$PG_BIN/pg_config" --sharedir)
  test -f "$sharedir/extension/vector.control"
  rm -rf "$work"
}

as_postgres() { runuser -u postgres -- "$@"; }

start_server() {
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    log "initdb $PG_DIR"
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_postgres "$PG_BIN/initdb" -D "$PG_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >&2
    cat >> "$PG_DIR/postgresql.conf" <<EOF
# memrl test instance (.ci/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
shared_buffers = 512MB
maintenance_work_mem = 512MB
EOF
  fi
  if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "already running on port $PG_PORT"
  else
    log "starting on port $PG_PORT"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 start >&2
  fi
}

create_database() {
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $PG_DB" >&2
  fi
  "${psql[@]}" -d "$PG_DB" -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
  log "pgvector $("${psql[@]}" -d "$PG_DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
}

install_postgres
install_pgvector
start_server
create_database
echo "postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB"
