#!/usr/bin/env bash
# Runs every CineMatch test against a real PostgreSQL and real SQLite files.
#
# Provisions what it needs on a fresh Debian machine with only the Rust
# toolchain: a throwaway PostgreSQL cluster on a free loopback port
# (installed with apt if missing), torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-cluster.sh
trap pg_cluster_stop_all EXIT

# Tools the tests drive for real: python3 (the Airflow DAG import test) and
# Debian's chromium (the dashboard test in a headless browser).
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "==> installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "==> starting a throwaway PostgreSQL"
# Tests create a database each; durability is irrelevant for a throwaway cluster.
pg_cluster_start main fsync=off synchronous_commit=off full_page_writes=off
export CINEMATCH_TEST_PG="$PG_URL_main"
echo "    $CINEMATCH_TEST_PG"

if cargo fmt --version >/dev/null 2>&1; then
  echo "==> cargo fmt --check"
  cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
  echo "==> cargo clippy"
  cargo clippy --all-targets --quiet -- -D warnings
fi

echo "==> cargo test"
cargo test --lib --bins --tests "$@"
