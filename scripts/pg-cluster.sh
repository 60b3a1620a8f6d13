#!/usr/bin/env bash
# Throwaway PostgreSQL clusters on loopback, for tests and benchmarks.
#
#   source scripts/pg-cluster.sh
#   pg_cluster_start NAME [extra postgres -c settings...]   # sets PG_URL_<NAME>
#   pg_cluster_start_tls NAME [settings...]                 # TLS, see below
#   pg_cluster_stop_all                                       # (also on EXIT)
#
# Installs PostgreSQL (and openssl, for TLS) with apt if missing. initdb
# refuses to run as root, so as root the cluster runs as an unprivileged
# system user.
#
# pg_cluster_start trusts every connection and has no TLS. pg_cluster_start_tls
# starts a cluster with ssl=on and certificates from a CA generated on the spot:
#   * the server certificate names only DNS:localhost, so sslmode=verify-full
#     succeeds via localhost and fails its host name check via 127.0.0.1
#     (where verify-ca passes);
#   * TCP logins need a password (scram-sha-256), except role certuser, which
#     must log in over TLS with the client certificate the same CA signed;
#   * plaintext connections are still accepted (sslmode disable/prefer).
# It sets, besides PG_URL_<NAME> (postgres://postgres:PASSWORD@localhost:PORT/postgres):
#   PG_TLS_CA_<NAME>          the CA certificate (PEM) that signed the server's
#   PG_TLS_WRONG_CA_<NAME>    another CA, which signed nothing the server has
#   PG_TLS_CLIENT_CERT_<NAME> PG_TLS_CLIENT_KEY_<NAME>   certuser's certificate and key
# Certificates live in the cluster's directory (removed by pg_cluster_stop_all);
# the server key is readable by the cluster owner only, the rest by everyone.

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

pg_ensure_openssl() {
  command -v openssl >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: openssl is not installed and this is not root; install the 'openssl' package" >&2
    return 1
  fi
  echo "openssl not found; installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq openssl >&2
}

# Writes ca, wrong-ca, server (DNS:localhost only) and client (CN=certuser)
# certificates and keys into DIR.
pg_tls_certs() {
  local d=$1
  (
    cd "$d" || exit 1
    q() { openssl "$@" >/dev/null 2>&1 || { openssl "$@"; exit 1; }; }
    for ca in ca wrong-ca; do
      q req -x509 -newkey rsa:2048 -nodes -days 7 -keyout "$ca.key" -out "$ca.crt" \
        -subj "/CN=cinematch test $ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    done
    q req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    q x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -extfile server.ext -out server.crt
    q req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=certuser"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >client.ext
    q x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -extfile client.ext -out client.crt
    rm -f ./*.csr ./*.ext ./*.srl ca.key wrong-ca.key
  ) || { echo "error: generating the test certificates failed" >&2; return 1; }
  chmod 755 "$d"
  chmod 644 "$d"/*.crt
  chmod 600 "$d"/server.key "$d"/client.key
  [ "$(id -u)" -eq 0 ] && chown "$PG_CLUSTER_USER" "$d/server.key"
  return 0
}

pg_cluster_start_tls() {
  local name=$1; shift
  pg_ensure_installed || return 1
  pg_ensure_openssl || return 1
  local bin; bin=$(pg_bindir)
  if [ "$(id -u)" -eq 0 ] && ! id "$PG_CLUSTER_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_CLUSTER_USER"
  fi
  local dir; dir=$(mktemp -d "${TMPDIR:-/tmp}/cinematch-pg-$name.XXXXXX")
  chmod 755 "$dir"
  PG_CLUSTER_DIRS+=("$dir")
  mkdir "$dir/certs"
  pg_tls_certs "$dir/certs" || return 1
  local password; password=$(openssl rand -hex 16)
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 644 "$dir/pwfile"
  [ "$(id -u)" -eq 0 ] && chown "$PG_CLUSTER_USER" "$dir"
  local init=(-D "$dir/data" -U postgres --pwfile="$dir/pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8)
  pg_as_owner "$bin/initdb" "${init[@]}" --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || pg_as_owner "$bin/initdb" "${init[@]}" --locale=C >"$dir/initdb.log" 2>&1 \
    || { rm -f "$dir/pwfile"; cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pwfile"
  printf '%s\n' \
    "local all all trust" \
    "hostssl all certuser 127.0.0.1/32 cert" \
    "hostssl all certuser ::1/128 cert" \
    "host all all 127.0.0.1/32 scram-sha-256" \
    "host all all ::1/128 scram-sha-256" | pg_as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  local port attempt extra
  for attempt in 1 2 3 4 5; do
    port=$(pg_free_port $((55432 + RANDOM % 5000))) || return 1
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=100"
    opts="$opts -c ssl=on -c ssl_cert_file=$dir/certs/server.crt -c ssl_key_file=$dir/certs/server.key"
    opts="$opts -c ssl_ca_file=$dir/certs/ca.crt"
    for extra in "$@"; do opts="$opts -c $extra"; done
    if pg_as_owner "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null; then
      pg_as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt \
        -c "CREATE ROLE certuser LOGIN" >/dev/null || return 1
      printf -v "PG_URL_$name" 'postgres://postgres:%s@localhost:%s/postgres' "$password" "$port"
      printf -v "PG_TLS_CA_$name" '%s' "$dir/certs/ca.crt"
      printf -v "PG_TLS_WRONG_CA_$name" '%s' "$dir/certs/wrong-ca.crt"
      printf -v "PG_TLS_CLIENT_CERT_$name" '%s' "$dir/certs/client.crt"
      printf -v "PG_TLS_CLIENT_KEY_$name" '%s' "$dir/certs/client.key"
      export "PG_URL_$name" "PG_TLS_CA_$name" "PG_TLS_WRONG_CA_$name" \
        "PG_TLS_CLIENT_CERT_$name" "PG_TLS_CLIENT_KEY_$name"
      return 0
    fi
  done
  cat "$dir/server.log" >&2
  return 1
}
