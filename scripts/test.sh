#!/usr/bin/env bash
# Runs every CineMatch test against a real PostgreSQL and real SQLite files.
#
# Provisions what it needs on a fresh Debian machine with only the Rust
# toolchain: a throwaway PostgreSQL cluster on a free loopback port
# (installed with apt if missing), torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-cluster.sh
source scripts/mlflow-server.sh
source scripts/airflow.sh
trap 'airflow_install_stop; mlflow_server_stop; pg_cluster_stop_all' EXIT

# Tools the tests drive for real: python3 with venv (MLflow's and Airflow's
# virtualenvs), Debian's chromium (the dashboard test in a headless
# browser), and rustfmt and clippy (the checks below).
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' 2>/dev/null && need+=(python3-venv)
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

# TLS: a second cluster with ssl=on, certificates from a CA generated now
# (server certificate for DNS:localhost only) and password logins, for
# tests/tls.rs and tests/roles.rs; the main cluster above has no TLS.
echo "==> starting a throwaway PostgreSQL with TLS (self-signed test CA)"
pg_cluster_start_tls tls fsync=off synchronous_commit=off full_page_writes=off
export CINEMATCH_TEST_PG_TLS="$PG_URL_tls" # postgres://postgres:PASSWORD@localhost:PORT/postgres
export CINEMATCH_TEST_CA="$PG_TLS_CA_tls" CINEMATCH_TEST_WRONG_CA="$PG_TLS_WRONG_CA_tls"
export CINEMATCH_TEST_CLIENT_CERT="$PG_TLS_CLIENT_CERT_tls" CINEMATCH_TEST_CLIENT_KEY="$PG_TLS_CLIENT_KEY_tls"
echo "    $(sed -E 's#(//[^:/@]*:)[^@]*@#\1***@#' <<<"$CINEMATCH_TEST_PG_TLS") (CA $CINEMATCH_TEST_CA)"

# Faults: tests/faults.rs stops and restarts this cluster under a running
# pipeline cycle, so it gets one of its own. As root pg_ctl must run as the
# cluster owner, like every pg-cluster.sh command.
echo "==> starting a throwaway PostgreSQL for the fault tests"
pg_cluster_start faults fsync=off synchronous_commit=off full_page_writes=off
faults_dir=${PG_CLUSTER_DIRS[${#PG_CLUSTER_DIRS[@]}-1]}
faults_ctl="$(pg_bindir)/pg_ctl -D $faults_dir/data -l $faults_dir/server.log -w -t 60"
[ "$(id -u)" -eq 0 ] && faults_ctl="runuser -u $PG_CLUSTER_USER -- $faults_ctl"
export CINEMATCH_TEST_PG_FAULTS_URL="$PG_URL_faults"
export CINEMATCH_TEST_PG_FAULTS_STOP="$faults_ctl -m fast stop"
export CINEMATCH_TEST_PG_FAULTS_START="$faults_ctl restart" # restart reuses the start options
echo "    $CINEMATCH_TEST_PG_FAULTS_URL"

# MLflow: a real tracking server on loopback for tests/mlflow.rs, pip-installed
# once into target/mlflow-venv. It starts in the background and is awaited
# just before the tests. Tests get it as MLFLOW_TEST_URI only: a developer's
# own MLFLOW_TRACKING_URI must never receive test runs.
unset MLFLOW_TRACKING_URI MLFLOW_EXPERIMENT_NAME MLFLOW_TRACKING_TOKEN \
  MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD MLFLOW_TRACKING_SERVER_CERT_PATH
echo "==> starting a throwaway MLflow tracking server"
mlflow_server_start

# Airflow: pip-installed once into target/airflow-venv for tests/airflow.rs
# (a real DagBag and `airflow dags test`), in the background like MLflow.
echo "==> Apache Airflow for the DAG tests"
airflow_install_start

# Formatting and lints are part of the test: a machine without rustfmt or
# clippy gets them from rustup, or the run fails; never skipped.
for component in rustfmt clippy; do
  tool=${component/rustfmt/fmt}
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      echo "==> installing $component with rustup"
      rustup component add "$component"
    fi
    if ! cargo "$tool" --version >/dev/null 2>&1; then
      echo "error: cargo $tool is missing; install it (rustup component add $component)" >&2
      exit 1
    fi
  fi
done
echo "==> cargo fmt --check"
cargo fmt --all -- --check
# The tests build with failpoints (src/failpoint.rs), so lint that build.
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --features failpoints --quiet -- -D warnings

mlflow_server_wait
export MLFLOW_TEST_URI="$MLFLOW_SERVER_URI"
echo "==> MLflow at $MLFLOW_TEST_URI"

# An install that failed is reported here and fails tests/airflow.rs (the
# tests need the virtualenv; they do not skip), while the rest still runs.
airflow_install_wait || true
export CINEMATCH_TEST_AIRFLOW="$AIRFLOW_VENV"
echo "==> Airflow from $CINEMATCH_TEST_AIRFLOW"

# The drift statistics against scipy beyond the cases pasted into their
# unit tests: a fixed slice (every 5th case of each kind, 518 cases) of
# `scripts/reference/drift_stats.py --sweep` (scipy 1.17.1), kept in
# tests/fixtures so no scipy is needed here. The full sweep is the script's
# own instructions. Run first, so the suite's summary below stays last.
echo "==> drift statistics against a slice of scipy's sweep"
# A failure here fails the run, after the suite has run too.
sweep=0
DRIFT_SCIPY_SWEEP=$PWD/tests/fixtures/drift_scipy_sweep.txt \
  cargo test -p cinematch-stats --lib tests::scipy_sweep -- --ignored --exact || sweep=$?

# `failpoints`: tests/faults.rs stops the real binary at named points; a
# release build has none.
echo "==> cargo test"
cargo test --workspace --features failpoints --no-fail-fast --lib --bins --tests "$@"
if [ "$sweep" -ne 0 ]; then
  echo "error: the drift statistics differ from scipy's sweep (above)" >&2
  exit "$sweep"
fi
