#!/usr/bin/env bash
# Issue 17's operator replay, scored outside the project (scripts/bench/replay.py):
#   scripts/bench/replay.sh [DATA_DIR] [--weeks 6] [--history-fraction 0.8]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/ml-latest-small}
shift || true
cargo build --release --quiet
exec python3 scripts/bench/replay.py target/release/cinematch "$data" "$@"
