#!/usr/bin/env bash
# Issue 18's soak, beside faults_1m.sh: everything that feeds the buffer at
# once, with retrains merging it, and then the books must balance.
#
#   scripts/bench/soak.sh [SECONDS=60] [sqlite|postgres|both]
#
# For SECONDS, against a real `cinematch serve` (a child process):
#   * 4 clients POST /api/ratings, 50 ratings a request, each request with
#     its own Idempotency-Key, resent with it after a 1 s client timeout, an
#     error or a 503 until answered (the server holds its third write 1.5 s
#     before the commit, a failpoint, so that client resends);
#   * batch files arrive in the scheduler's inbox every 300 ms (written under
#     a hidden name, then renamed): most once, some delivered twice with the
#     same content, some as two files with one stem (`c7.csv` + `c7.tsv`),
#     some delivered again later with other content, and one symbolic link
#     to a secret file; `cinematch scheduler --once` runs every half second;
#   * `cinematch retrain` runs every two seconds (exit 75 when a scheduler
#     cycle holds the pipeline lease).
# Then: every acknowledged API rating and every row of an accepted file is
# in `ratings` or `ratings_buffer` exactly once, nothing else is; every
# refused file has an error row (a failed pipeline run or audit row) and the
# link's target was never read; and every merge moved exactly the ratings
# its retrain read, each sent before that retrain's read of the buffer.
# The test prints the figures.
#
# PostgreSQL is a throwaway cluster (scripts/pg-cluster.sh), fsync on;
# SQLite a file in a temporary directory. The test is `#[ignore]`d in
# tests/edges.rs, so the test command never runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
WHICH=${2:-both}
source scripts/pg-cluster.sh
trap pg_cluster_stop_all EXIT

tests=()
case "$WHICH" in
  sqlite) tests=(soak_sqlite) ;;
  postgres) tests=(soak_postgres) ;;
  both) tests=(soak_sqlite soak_postgres) ;;
  *) echo "usage: $0 [SECONDS] [sqlite|postgres|both]" >&2; exit 2 ;;
esac

echo "==> building"
cargo test --features failpoints --test edges --no-run --quiet

if [ "$WHICH" != sqlite ]; then
  echo "==> starting a throwaway PostgreSQL"
  pg_cluster_start soak
  export CINEMATCH_TEST_PG="$PG_URL_soak"
fi

export SOAK_SECS="$SECS"
for t in "${tests[@]}"; do
  echo "==> $t for $SECS s"
  cargo test --features failpoints --quiet --test edges -- --exact "$t" --ignored --nocapture --test-threads=1
done
