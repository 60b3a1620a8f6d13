#!/usr/bin/env bash
# Fuzzes CineMatch's input parsers with cargo-fuzz (libFuzzer), each target
# for a bounded time, and prints the executions and seconds of each.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]
#
# Targets (fuzz/fuzz_targets/): ratings_csv, movies_csv, ratings_dat,
# movies_dat, u_data, u_item (one per MovieLens reader format), batch_file
# (the ratings reader `ingest` uses, with a catalogue, layout by extension or
# sniffed) and api_request (raw HTTP requests through the real axum router).
# Default: all of them, one after the other, SECONDS each.
#
# Not part of CI: .ci/run never calls this, and fuzz/ is a crate of its own
# (its own [workspace]) that `cargo test` in the main crate never builds.
#
# Toolchain: stable Rust is enough. cargo-fuzz's default AddressSanitizer
# needs `-Zsanitizer`, a nightly-only rustc flag, so the targets are built
# with `--sanitizer none`: cargo-fuzz then passes only -C flags (SanitizerCoverage
# instrumentation for libFuzzer, debug assertions, overflow checks), which
# stable rustc accepts as is. ASan adds little to safe Rust; to use it
# anyway, FUZZ_SANITIZER=address builds with RUSTC_BOOTSTRAP=1, which lets
# the stable compiler take -Z flags (its ASan runtime ships with the std
# component). Builds go to fuzz/target, never the main crate's target/.
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_CGU        codegen units for the fuzz build (default 16: much faster
#                   to build on 2 cores than cargo-fuzz's 1, a little slower to run)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (20)
#   FUZZ_MAX_LEN    largest input libFuzzer generates, in bytes (4096)
#
# Corpora: the committed seeds are fuzz/corpus/TARGET/ (read only); what the
# fuzzer finds goes to fuzz/target/corpus/TARGET/ and is reused by the next
# run. A crash stops that target: its input is saved under
# fuzz/artifacts/TARGET/, the libFuzzer log is fuzz/target/fuzz-logs/TARGET.log,
# and the script exits 1 after the remaining targets ran. Reproduce one with
#   cargo fuzz run -s none --target-dir fuzz/target TARGET fuzz/artifacts/TARGET/crash-...
# (or run fuzz/target/x86_64-unknown-linux-gnu/release/TARGET on the file)
# then keep it as a test (tests/fuzz_regressions.rs) once fixed.
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
shift || true
case $SECONDS_PER_TARGET in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS=60] [TARGET...]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FUZZ_DIR=$ROOT/fuzz
TARGET_DIR=$FUZZ_DIR/target
SANITIZER=${FUZZ_SANITIZER:-none}
CGU=${FUZZ_CGU:-16}
TIMEOUT=${FUZZ_TIMEOUT:-20}
MAX_LEN=${FUZZ_MAX_LEN:-4096}

ALL_TARGETS=(ratings_csv movies_csv ratings_dat movies_dat u_data u_item batch_file api_request)
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
for t in "${TARGETS[@]}"; do
    if [ ! -f "$FUZZ_DIR/fuzz_targets/$t.rs" ]; then
        echo "no fuzz target $t; the targets are: ${ALL_TARGETS[*]}" >&2
        exit 2
    fi
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

BUILD_FLAGS=(--sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" --codegen-units "$CGU")
case $SANITIZER in
none) ;;
*) export RUSTC_BOOTSTRAP=1 ;;
esac

echo "== building ${#TARGETS[@]} fuzz target(s): $(cargo fuzz --version), $(rustc --version), sanitizer $SANITIZER"
build_start=$(date +%s)
if [ ${#TARGETS[@]} -eq ${#ALL_TARGETS[@]} ]; then
    cargo fuzz build "${BUILD_FLAGS[@]}"
else
    for t in "${TARGETS[@]}"; do
        cargo fuzz build "${BUILD_FLAGS[@]}" "$t"
    done
fi
echo "== built in $(($(date +%s) - build_start)) s"
BIN_DIR=$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release

# Scratch files of the targets (inputs written as files, the API's SQLite
# database) live on tmpfs when there is one, and are removed at the end.
SCRATCH_BASE=/dev/shm
[ -d "$SCRATCH_BASE" ] && [ -w "$SCRATCH_BASE" ] || SCRATCH_BASE=${TMPDIR:-/tmp}
CINEMATCH_FUZZ_TMP=$(mktemp -d "$SCRATCH_BASE/cinematch-fuzz.XXXXXX")
export CINEMATCH_FUZZ_TMP
trap 'rm -rf "$CINEMATCH_FUZZ_TMP"' EXIT
# The server logs through tracing; keep libFuzzer's output readable.
export CINEMATCH_LOG=${CINEMATCH_LOG:-off}
export RUST_LOG=${RUST_LOG:-off}

LOG_DIR=$TARGET_DIR/fuzz-logs
mkdir -p "$LOG_DIR"
results=()
failed=0
for t in "${TARGETS[@]}"; do
    work=$TARGET_DIR/corpus/$t
    mkdir -p "$work" "$FUZZ_DIR/artifacts/$t"
    log=$LOG_DIR/$t.log
    echo "== $t: ${SECONDS_PER_TARGET} s (log: ${log#"$ROOT"/})"
    start=$(date +%s.%N)
    set +e
    # The binary cargo-fuzz built, run directly: `cargo fuzz run` would first
    # rebuild the library whenever its sources changed since the build above.
    "$BIN_DIR/$t" -artifact_prefix="$FUZZ_DIR/artifacts/$t/" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -max_len="$MAX_LEN" \
        -print_final_stats=1 -detect_leaks=0 "$work" "$FUZZ_DIR/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # No final stats (killed hard): the last status line's count.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    execs=${execs:-0}
    corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    rate=$(awk -v n="$execs" -v s="$elapsed" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
    if [ "$rc" -eq 0 ]; then
        verdict=ok
    else
        failed=1
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
        verdict="CRASH (exit $rc) ${artifact:-see the log}"
        echo "!! $t crashed; the end of its log:"
        grep -E 'panicked at|ERROR|SUMMARY|Test unit written' "$log" | head -20 || tail -20 "$log"
    fi
    results+=("$(printf '%-12s %12s %8.1f %9s %8s %6s  %s' "$t" "$execs" "$elapsed" "$rate" "${corpus:--}" "${cov:--}" "$verdict")")
    echo "${results[-1]}"
done

echo
echo "== fuzzing summary ($SECONDS_PER_TARGET s per target, sanitizer $SANITIZER, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
printf '%-12s %12s %8s %9s %8s %6s  %s\n' target executions seconds exec/s corpus cov result
printf '%s\n' "${results[@]}"
exit "$failed"
