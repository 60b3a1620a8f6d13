#!/usr/bin/env bash
# Mutation testing of the code whose correctness is the product's promise:
# cargo-mutants changes one operator, constant or function body at a time
# and runs the tests that should notice; a mutant they miss is a behaviour
# no test pins down. Not part of the test command (./scripts/test.sh): a run
# takes hours on 2 cores. The README (Measured results, Robustness) holds the
# last report and the mutants judged equivalent.
#
#   scripts/mutants.sh [TARGET...]      TARGET: metrics stats merge catalogue (default: all, in that order)
#
#   metrics    src/eval/metrics.rs            with the library's unit tests
#   stats      crates/cinematch-stats/src/lib.rs  with its unit tests (checked against scipy)
#   merge      Store::merge_buffer on both    with the unit tests and tests/conformance.rs
#              backends (src/store/{sqlite,postgres}/ingestion.rs), on a throwaway PostgreSQL
#   catalogue  src/recommend/catalogue.rs     with the unit tests (its own pin the id table's
#                                             bounds and both genre-filter paths)
#
# Results go to target/mutants/TARGET/mutants.out (caught.txt, missed.txt,
# unviable.txt, timeout.txt, outcomes.json); the script prints the counts and
# exits non-zero when a mutant was missed. A mutant that makes the tests hang
# (an endless loop: `i += 1` made `i *= 1`) is stopped at cargo-mutants'
# timeout and counted as caught, as cargo-mutants' own documentation does;
# the count is printed apart.
#
# cargo-mutants builds a copy of the tree in a temporary folder, where
# `../shared` is nothing: the tests find the shared MovieLens data and spec
# through $CINEMATCH_SHARED_DIR, which this script sets (override it to point
# elsewhere). MUTANTS_IN_PLACE=1 mutates this tree instead of a copy (reuses
# target/ and skips the copy's full debug build; do not edit or build the
# tree while it runs). Extra cargo-mutants options go in $MUTANTS_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "==> installing cargo-mutants (crates.io)"
  cargo install cargo-mutants --locked
fi

export CINEMATCH_SHARED_DIR=${CINEMATCH_SHARED_DIR:-$(cd "$ROOT/.." && pwd)/shared}
[ -d "$CINEMATCH_SHARED_DIR/data" ] || {
  echo "error: $CINEMATCH_SHARED_DIR/data is missing (the shared MovieLens data)" >&2
  exit 1
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(metrics stats merge catalogue)

# The merge's tests run on PostgreSQL too: a throwaway cluster, as test.sh does.
for t in "${targets[@]}"; do
  if [ "$t" = merge ] && [ -z "${CINEMATCH_TEST_PG:-}" ]; then
    source scripts/pg-cluster.sh
    trap pg_cluster_stop_all EXIT
    pg_cluster_start mutants fsync=off synchronous_commit=off full_page_writes=off
    export CINEMATCH_TEST_PG="$PG_URL_mutants"
  fi
done

common=(--no-shuffle)
[ "${MUTANTS_IN_PLACE:-0}" = 1 ] && common+=(--in-place)
# The main crate's tests build with failpoints, as in the test command; the
# statistics crate has no features.
main=(--package cinematch --features failpoints)
# shellcheck disable=SC2206
extra=(${MUTANTS_ARGS:-})

status=0
for t in "${targets[@]}"; do
  case $t in
    metrics) scope=("${main[@]}" --file src/eval/metrics.rs) tests=(--lib) ;;
    stats) scope=(--package cinematch-stats --file crates/cinematch-stats/src/lib.rs) tests=(--lib) ;;
    merge)
      scope=("${main[@]}" --file src/store/sqlite/ingestion.rs --file src/store/postgres/ingestion.rs --re merge_buffer)
      tests=(--lib --test=conformance)
      ;;
    catalogue) scope=("${main[@]}" --file src/recommend/catalogue.rs) tests=(--lib) ;;
    *) echo "error: unknown target $t (metrics, stats, merge, catalogue)" >&2; exit 2 ;;
  esac
  out=target/mutants/$t
  mkdir -p "$out"
  echo "==> cargo mutants: $t (${scope[*]})"
  start=$(date +%s)
  # The test targets go to every cargo invocation (-C), so each mutant's
  # build compiles only them, not all ~40 test binaries.
  # Exit codes: 2 = a mutant missed, 3 = one timed out (missed.txt decides
  # below); anything else (the unmutated tree failing its tests, 4) fails.
  rc=0
  cargo mutants "${common[@]}" "${extra[@]}" "${scope[@]}" "${tests[@]/#/-C}" --output "$out" || rc=$?
  case $rc in 0 | 2 | 3) ;; *) status=1 ;; esac
  secs=$(( $(date +%s) - start ))
  dir=$out/mutants.out
  count() { local n=0; [ -s "$dir/$1.txt" ] && n=$(grep -c . "$dir/$1.txt"); echo "$n"; }
  echo "==> $t: $(count caught) caught, $(count missed) missed, $(count unviable) unviable, $(count timeout) timeouts in ${secs}s"
  if [ -s "$dir/missed.txt" ]; then
    status=1
    echo "    missed:"
    sed 's/^/      /' "$dir/missed.txt"
  fi
done
exit $status
