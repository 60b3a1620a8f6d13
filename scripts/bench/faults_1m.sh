#!/usr/bin/env bash
# Issue 6's "fill the buffer with 1,000,000 ratings through the API under
# load while a retrain merges", at full size, with issue 10's faults:
# tests/faults.rs's API test (CI runs it with 60,000) with
# CINEMATCH_FAULTS_API_RATINGS=N.
#
#   scripts/bench/faults_1m.sh [N=1000000] [sqlite|postgres|both]
#
# `cinematch serve` (a child process, CINEMATCH_API_TOKEN set, a 4 s request
# timeout) takes POST /api/ratings from 4 client threads on loopback, 1,000
# ratings per request, each with its own Idempotency-Key, while `cinematch
# retrain` and `cinematch buffer merge` run one after the other in a loop.
# Six times along the way the server gets SIGTERM (it drains and exits 0)
# and a new one starts on a new port; each server holds its third write for
# 1.5 s before the commit (a failpoint), and clients give up on an answer
# after CINEMATCH_FAULTS_CLIENT_TIMEOUT_MS (default 1000) and retry with the
# same key after that, a refused or reset connection, or a 503/408.
# Afterwards every request must have been accepted and every rating must be
# in exactly one of `ratings` (train) or `ratings_buffer`, once, with the
# values sent. The test prints the figures (throughput, attempts, retries by
# cause, replayed answers, restarts, merges).
#
# PostgreSQL is a throwaway cluster (scripts/pg-cluster.sh) with default
# durability (fsync on); SQLite is a file in a temporary directory.
# PROFILE=release builds with the release profile (slow to build); by
# default the test profile CI uses (with the `failpoints` feature the test
# needs).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
WHICH=${2:-both}
source scripts/pg-cluster.sh
trap pg_cluster_stop_all EXIT

profile=()
[ "${PROFILE:-}" = release ] && profile=(--release)

tests=()
case "$WHICH" in
  sqlite) tests=(sqlite::api_ratings_under_load_survive_concurrent_merges) ;;
  postgres) tests=(postgres::api_ratings_under_load_survive_concurrent_merges) ;;
  both) tests=(sqlite::api_ratings_under_load_survive_concurrent_merges
               postgres::api_ratings_under_load_survive_concurrent_merges) ;;
  *) echo "usage: $0 [N] [sqlite|postgres|both]" >&2; exit 2 ;;
esac

echo "==> building"
cargo test "${profile[@]}" --features failpoints --test faults --no-run --quiet

if [ "$WHICH" != sqlite ]; then
  echo "==> starting a throwaway PostgreSQL"
  pg_cluster_start bench max_wal_size=4GB
  export CINEMATCH_TEST_PG="$PG_URL_bench"
fi

export CINEMATCH_FAULTS_API_RATINGS="$N"
for t in "${tests[@]}"; do
  echo "==> $t with $N ratings"
  start=$(date +%s)
  cargo test "${profile[@]}" --features failpoints --quiet --test faults -- --exact "$t" --nocapture --test-threads=1
  echo "    $(( $(date +%s) - start )) s including setup and verification"
done
