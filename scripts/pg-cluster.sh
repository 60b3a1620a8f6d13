#!/usr/bin/env bash
# Throwaway PostgreSQL clusters on loopback, for tests and benchmarks.
#
#   source scripts/pg-cluster.sh
#   pg_cluster_start NAME [extra postgres -c settings...]   # sets PG_URL_<NAME>
#   pg_cluster_stop_all                                       # (also on EXIT)
#
# Installs PostgreSQL with apt if it is missing. initdb refuses to run as
# root, so as root the cluster runs as an unprivileged system user.

PG_CLUSTER_USER=${PG_CLUSTER_USER:-cinematch-pg}
PG_CLUSTER_DIRS=()

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
  return 1
}

pg_ensure_installed() {
  pg_bindir >/dev/null && return 0
  echo "PostgreSQL not found; installing it with apt-get" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: PostgreSQL is not installed and this is not root; install the 'postgresql' package" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2 || return 1
  # Debian's package starts a default cluster; tests never use it.
  pg_bindir >/dev/null
}

# Runs a command as the unprivileged cluster owner (or as is, when not root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PG_CLUSTER_USER" -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  local port
  for port in $(seq "${1:-55432}" 65000); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

pg_cluster_start() {
  local name=$1; shift
  pg_ensure_installed || return 1
  local bin; bin=$(pg_bindir)
  if [ "$(id -u)" -eq 0 ] && ! id "$PG_CLUSTER_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_CLUSTER_USER"
  fi
  local dir; dir=$(mktemp -d "${TMPDIR:-/tmp}/cinematch-pg-$name.XXXXXX")
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$PG_CLUSTER_USER" "$dir"
  PG_CLUSTER_DIRS+=("$dir")
  pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  local port attempt
  for attempt in 1 2 3 4 5; do
    port=$(pg_free_port $((55432 + RANDOM % 5000))) || return 1
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
    local extra
    for extra in "$@"; do opts="$opts -c $extra"; done
    if pg_as_owner "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null; then
      printf -v "PG_URL_$name" 'postgres://postgres@127.0.0.1:%s/postgres' "$port"
      export "PG_URL_$name"
      echo "$dir" >"$dir/.dir"
      return 0
    fi
  done
  cat "$dir/server.log" >&2
  return 1
}

pg_cluster_stop_all() {
  local bin dir
  bin=$(pg_bindir) || return 0
  for dir in "${PG_CLUSTER_DIRS[@]}"; do
    [ -d "$dir/data" ] && pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$dir"
  done
  PG_CLUSTER_DIRS=()
}
