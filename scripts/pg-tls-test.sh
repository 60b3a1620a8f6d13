#!/usr/bin/env bash
# Live test of src/store/pgconn.rs against real PostgreSQL servers.
#
# Unit tests cannot show that sslmode=verify-full really checks host names or
# that require really encrypts, so this starts two throwaway clusters on free
# loopback ports:
#   * "tls":   ssl=on, server certificate signed by a fresh test CA, whose only
#              SAN is DNS:localhost (so 127.0.0.1 fails verify-full's name
#              check but passes verify-ca); also accepts a client certificate
#              for role "certuser" (cert auth).
#   * "plain": ssl=off.
# It then runs the ignored test `store::pgconn::tests::live_tls_modes` with the
# ports, CA paths and credentials in PGTLS_* variables, and tears everything
# down again (also on failure or Ctrl-C).
#
# Requirements: PostgreSQL server binaries (PGBIN, default: newest
# /usr/lib/postgresql/*/bin), openssl, cargo. initdb refuses to run as root,
# so as root the clusters run as an unprivileged user (PG_OS_USER, default
# "pgtest", created if missing).
#
# Usage: scripts/pg-tls-test.sh [extra cargo test args...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_OS_USER=${PG_OS_USER:-pgtest}

die() { echo "pg-tls-test: $*" >&2; exit 1; }
[[ -x "$PGBIN/initdb" ]] || die "no initdb in PGBIN=$PGBIN; install PostgreSQL or set PGBIN"
command -v openssl >/dev/null || die "openssl not found"

if [[ $(id -u) == 0 ]]; then
    if ! id "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
    as_pg() { runuser -u "$PG_OS_USER" -- "$@"; }
else
    PG_OS_USER=$(id -un)
    as_pg() { "$@"; }
fi

WORK=$(mktemp -d /tmp/pg-tls-test.XXXXXX)
chmod 755 "$WORK"
STARTED=()
cleanup() {
    local status=$?
    for dir in "${STARTED[@]}"; do
        as_pg "$PGBIN/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
    done
    if [[ $status != 0 ]]; then
        for log in "$WORK"/logs/*.log; do
            [[ -f $log ]] && { echo "--- $log"; tail -n 20 "$log"; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

free_port() {
    # Ask the kernel for an unused port; fall back to probing.
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        local p
        for _ in $(seq 100); do
            p=$((20000 + RANDOM % 30000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
        done
        die "no free port found"
    fi
}

# --- certificates -----------------------------------------------------------
CERTS="$WORK/certs"
mkdir -p "$CERTS"
(
    cd "$CERTS"
    q() { openssl "$@" >/dev/null 2>&1 || { openssl "$@"; exit 1; }; }
    for ca in ca wrong-ca; do
        q req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$ca.key" -out "$ca.crt" \
            -subj "/CN=cinematch $ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
    done
    # Only DNS:localhost, on purpose (see the header).
    q req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    q x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
    q req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=certuser"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=clientAuth" >client.ext
    q x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out client.crt
)
mkdir -p "$WORK/server-certs"
cp "$CERTS/server.crt" "$CERTS/server.key" "$CERTS/ca.crt" "$WORK/server-certs/"
chown -R "$PG_OS_USER" "$WORK/server-certs"
chmod 600 "$WORK/server-certs/server.key"
chmod 644 "$CERTS"/*.crt

# --- clusters ---------------------------------------------------------------
PASSWORD=$(openssl rand -hex 16)
printf '%s\n' "$PASSWORD" >"$WORK/pwfile"
chmod 644 "$WORK/pwfile"
mkdir -p "$WORK/sock" "$WORK/logs"
chown "$PG_OS_USER" "$WORK/sock" "$WORK/logs"

start_cluster() { # name port ssl(on/off)
    local name=$1 port=$2 ssl=$3 dir="$WORK/$1"
    mkdir -p "$dir"
    chown "$PG_OS_USER" "$dir"
    as_pg "$PGBIN/initdb" -D "$dir" -U postgres --pwfile="$WORK/pwfile" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$WORK/$name-initdb.log" 2>&1 \
        || die "initdb $name failed: $(tail -n 5 "$WORK/$name-initdb.log")"
    {
        echo "listen_addresses = 'localhost'"
        echo "port = $port"
        echo "unix_socket_directories = '$WORK/sock'"
        echo "ssl = $ssl"
        if [[ $ssl == on ]]; then
            echo "ssl_cert_file = '$WORK/server-certs/server.crt'"
            echo "ssl_key_file = '$WORK/server-certs/server.key'"
            echo "ssl_ca_file = '$WORK/server-certs/ca.crt'"
        fi
    } | as_pg tee -a "$dir/postgresql.conf" >/dev/null
    {
        echo "local all all trust"
        if [[ $ssl == on ]]; then
            echo "hostssl all certuser 127.0.0.1/32 cert"
            echo "hostssl all certuser ::1/128 cert"
        fi
        echo "host all all 127.0.0.1/32 scram-sha-256"
        echo "host all all ::1/128 scram-sha-256"
    } | as_pg tee "$dir/pg_hba.conf" >/dev/null
    STARTED+=("$dir")
    as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$WORK/logs/$name.log" -w -t 60 start >/dev/null \
        || die "cannot start the $name cluster: $(tail -n 5 "$WORK/logs/$name.log")"
}

TLS_PORT=$(free_port)
start_cluster tls "$TLS_PORT" on
PLAIN_PORT=$(free_port)
start_cluster plain "$PLAIN_PORT" off
as_pg "$PGBIN/psql" -h "$WORK/sock" -p "$TLS_PORT" -U postgres -d postgres -qAt \
    -c "CREATE ROLE certuser LOGIN" >/dev/null
echo "pg-tls-test: TLS cluster on port $TLS_PORT, plain cluster on port $PLAIN_PORT"

# --- the test ---------------------------------------------------------------
cd "$ROOT"
# An empty HOME keeps a developer's ~/.postgresql/root.crt or postgresql.crt
# (which libpq semantics would pick up) out of the test.
mkdir -p "$WORK/home"
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
HOME="$WORK/home" \
PGTLS_TLS_PORT=$TLS_PORT \
PGTLS_PLAIN_PORT=$PLAIN_PORT \
PGTLS_CA="$CERTS/ca.crt" \
PGTLS_WRONG_CA="$CERTS/wrong-ca.crt" \
PGTLS_USER=postgres \
PGTLS_PASSWORD=$PASSWORD \
PGTLS_CLIENT_CERT="$CERTS/client.crt" \
PGTLS_CLIENT_KEY="$CERTS/client.key" \
PGTLS_CERT_USER=certuser \
    cargo test --lib "$@" store::pgconn -- --ignored --nocapture
