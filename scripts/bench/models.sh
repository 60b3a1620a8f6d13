#!/usr/bin/env bash
# Benchmark: model training and serving speed (issue 3), side by side with
# the reference libraries on the same machine, the same data and the same
# split, in one run:
#
#   scripts/bench/models.sh [RATINGS=1000000]
#
#   svd        cinematch svd with Surprise's SVD() settings (100 factors,
#              20 epochs, lr 0.005, reg 0.02) on THREADS (default 2) threads,
#              and on 1 for information, against scikit-surprise 1.1.5 SVD()
#              (single-threaded; it has no threads option) and LIBMF (the
#              `libmf` crate, 100 factors, 20 iterations, THREADS threads, its
#              other parameters at their defaults; built as the crate builds
#              it, and again with -march=native as LIBMF's own Makefile does).
#              Bars: Surprise / cinematch >= 4 at equal or better RMSE;
#              cinematch / LIBMF <= 1.2.
#   als        cinematch als, 64 factors, 15 iterations (every core):
#              seconds per iteration and the peak memory the fit adds;
#              implicit's ALS on the same matrix with the same sizes and
#              threads (conjugate gradient, its default, and exact Cholesky
#              solves like ours). implicit fits implicit feedback, so only
#              speed compares, not RMSE.
#   ials       cinematch ials, 64 factors, 15 iterations (its other
#              settings at their defaults, every core), against implicit
#              0.7.3's iALS on the same objective, settings and THREADS
#              (scripts/reference/ranking_reference.py); fit seconds (best of
#              ROUNDS for cinematch) and the NDCG@10 of both, scored by
#              Python. Bar (issue 9): no slower than implicit.
#   recommend  latency of one recommendation (score all movies, exclude the
#              rated ones, top 10) at 9,742 movies x 100 factors and 62,000
#              movies x 128 factors.
#
# Data: RATINGS synthetic ratings (`cinematch data synth`, RATINGS/150+10
# users and 20,000 movies, as scripts/bench/load.sh), loaded with `cinematch
# load` (random 70/30 split, seed 42) into a temporary SQLite file; every
# tool trains on its train rows and is scored on its test rows. Fit times
# count the fit only (data already in memory) and are the best of ROUNDS
# (default 3) for cinematch and LIBMF, of SURPRISE_ROUNDS (default 1) for
# Surprise. Runs are sequential, so each has the machine to itself, and the
# SVD rounds interleave the tools, so that on a shared machine background
# load hits them alike; the load average at the start is printed.
#
# KEEP_RESULTS=FILE keeps the raw JSON lines the table is printed from.
#
# Needs: the Rust toolchain, a C++ compiler (LIBMF), python3 with venv; the
# Python packages (scikit-surprise 1.1.5, numpy, pandas, implicit) are
# installed from PyPI into target/surprise-venv (scripts/reference/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${1:-1000000}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
SURPRISE_ROUNDS=${SURPRISE_ROUNDS:-1}
WORK=$(mktemp -d /tmp/cinematch-models.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.jsonl
log() { echo "==> $*" >&2; }

source scripts/reference/venv.sh
reference_venv implicit

log "building (release): cinematch, the models bench, LIBMF"
cargo build --release --quiet --bin cinematch
# Copies, run directly: nothing is rebuilt (or replaced by a concurrent
# build) between the runs.
cp "$ROOT/target/release/cinematch" "$WORK/cinematch"
BIN=$WORK/cinematch
BENCH=$(cargo bench --quiet --bench models --no-run --message-format=json \
  | "$PY" -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "models" \
            and m.get("executable"):
        print(m["executable"])')
[ -x "$BENCH" ] || { echo "error: no models bench executable" >&2; exit 1; }
cp "$BENCH" "$WORK/models-bench"
BENCH=$WORK/models-bench
bench() { "$BENCH" "$@"; }
LIBMF_MANIFEST=$ROOT/scripts/bench/libmf/Cargo.toml
CARGO_TARGET_DIR=$ROOT/target/libmf-bench \
  cargo build --release --quiet --manifest-path "$LIBMF_MANIFEST"
CXXFLAGS="${CXXFLAGS:-} -march=native" CARGO_TARGET_DIR=$ROOT/target/libmf-bench-native \
  cargo build --release --quiet --manifest-path "$LIBMF_MANIFEST"

log "generating $N synthetic ratings"
"$BIN" -q data synth --out "$WORK/data" --ratings "$N" --users $((N / 150 + 10)) \
  --movies 20000 >/dev/null
export CINEMATCH_DB="sqlite://$WORK/cm.db"
URL=$CINEMATCH_DB
"$BIN" -q load "$WORK/data" >/dev/null
"$PY" - "$WORK/cm.db" "$WORK" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for split in ("train", "test"):
    with open(f"{sys.argv[2]}/{split}.csv", "w") as f:
        for u, m, r in con.execute(
                "SELECT userId, movieId, rating FROM ratings WHERE data_split = ? "
                "ORDER BY userId, movieId", (split,)):
            f.write(f"{u},{m},{r}\n")
EOF
TRAIN=$WORK/train.csv
TEST=$WORK/test.csv
{
  echo "{\"name\": \"meta\", \"ratings\": $N, \"users\": $((N / 150 + 10)), \"movies\": 20000,"
  echo " \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\","
  echo " \"cores\": $(nproc), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo " \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\", \"rustc\": \"$(rustc --version)\"}"
} | tr -d '\n' >>"$RESULTS"
echo >>"$RESULTS"

log "svd: cinematch ($THREADS threads and 1), LIBMF, Surprise; $ROUNDS interleaved rounds"
# One fit of each per round, in turn, so that all of them see the same
# background load; the table takes the best round of each.
for round in $(seq "$ROUNDS"); do
  bench svd "$URL" "$THREADS" 1 >>"$RESULTS"
  "$ROOT/target/libmf-bench/release/cinematch-libmf-bench" "$TRAIN" "$TEST" "$THREADS" 1 \
    | sed 's/"name": "libmf /"name": "libmf (crate build) /' >>"$RESULTS"
  "$ROOT/target/libmf-bench-native/release/cinematch-libmf-bench" "$TRAIN" "$TEST" "$THREADS" 1 \
    | sed 's/"name": "libmf /"name": "libmf (-march=native) /' >>"$RESULTS"
  bench svd "$URL" 1 1 >>"$RESULTS"
  if [ "$round" -le "$SURPRISE_ROUNDS" ]; then
    "$PY" scripts/reference/bench_reference.py surprise-svd "$TRAIN" "$TEST" >>"$RESULTS"
  fi
done

log "als: cinematch, implicit"
bench als "$URL" 64 15 >>"$RESULTS"
"$PY" scripts/reference/bench_reference.py implicit-als "$TRAIN" "$TEST" \
  --factors 64 --iterations 15 --threads "$THREADS" >>"$RESULTS"
"$PY" scripts/reference/bench_reference.py implicit-als "$TRAIN" "$TEST" \
  --factors 64 --iterations 15 --threads "$THREADS" --cholesky >>"$RESULTS"

log "ials: cinematch, implicit (64 factors, 15 iterations)"
bench rank ials "$URL" "$ROUNDS" 64 15 >>"$RESULTS"
"$PY" scripts/reference/ranking_reference.py ials "$TRAIN" "$TEST" \
  --factors 64 --iterations 15 --threads "$THREADS" >>"$RESULTS"

log "recommend latency"
bench recommend 2000 >>"$RESULTS"

if [ -n "${KEEP_RESULTS:-}" ]; then cp "$RESULTS" "$KEEP_RESULTS"; fi
"$PY" - "$RESULTS" "$THREADS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads = int(sys.argv[2])
meta = rows[0]
# Rounds of the same run arrive as separate rows: merge their fit times.
merged = []
for r in rows[1:]:
    prev = next((m for m in merged if m["name"] == r["name"] and "fit_seconds" in r), None)
    if prev is not None and isinstance(prev["fit_seconds"], list):
        prev["fit_seconds"] = prev["fit_seconds"] + r["fit_seconds"]
    else:
        merged.append(r)
rows = [meta] + merged
by = {r["name"]: r for r in rows[1:] if r["name"] != "cinematch recommend"}
best = lambda r: min(r["fit_seconds"]) if isinstance(r["fit_seconds"], list) else r["fit_seconds"]
mib = lambda b: f"{b / 2**20:.0f} MiB" if b is not None else "n/a"
print(f"\n{meta['ratings']:,} synthetic ratings ({meta['users']:,} users, {meta['movies']:,} movies), "
      f"cinematch load split (random 70/30, seed 42); {meta['date']}")
print(f"{meta['cpu']}, {meta['cores']} cores, load average at start {meta['load']}; {meta['rustc']}")

print("\nSVD, 100 factors, 20 epochs (fit only, best of the rounds)")
print(f"{'':<36} {'train rows':>10} {'fit s':>8} {'rounds':>24} {'test RMSE':>10}")
for r in rows[1:]:
    if r["name"].startswith(("cinematch svd", "libmf", "surprise SVD")):
        rounds = ", ".join(f"{x:.2f}" for x in r["fit_seconds"])
        print(f"{r['name']:<36} {r['train_rows']:>10,} {best(r):8.3f} {rounds:>24} {r['rmse']:10.4f}")
cm = by[f"cinematch svd ({threads} threads)" if threads > 1 else "cinematch svd (1 thread)"]
sp = by["surprise SVD"]
print(f"\n  Surprise SVD / cinematch svd ({threads} threads): {best(sp) / best(cm):.1f}x "
      f"(bar: >= 4x), RMSE {cm['rmse']:.4f} vs {sp['rmse']:.4f} (bar: <=)")
for name in (f"libmf (crate build) {threads} threads", f"libmf (-march=native) {threads} threads"):
    lm = by[name]
    print(f"  cinematch svd / {name}: {best(cm) / best(lm):.2f} (bar: <= 1.2); "
          f"LIBMF RMSE {lm['rmse']:.4f} (no biases, its own defaults)")

print("\nALS, 64 factors, 15 iterations")
print(f"{'':<36} {'threads':>7} {'fit s':>8} {'s/iter':>8} {'setup s':>8} "
      f"{'RSS before':>11} {'peak RSS':>9} {'added':>8}")
for r in rows[1:]:
    if "iteration_seconds" in r:
        it = r["iteration_seconds"]
        setup = f"{r['setup_seconds']:8.3f}" if "setup_seconds" in r else f"{'':>8}"
        print(f"{r['name']:<36} {r['threads']:>7} {r['fit_seconds']:8.3f} "
              f"{statistics.median(it):8.3f} {setup} {mib(r.get('rss_before_fit_bytes')):>11} "
              f"{mib(r.get('peak_rss_bytes')):>9} {mib(r.get('peak_added_bytes')):>8}")
al = by["cinematch als"]
print(f"  s/iter: median iteration. RSS before: the process with the ratings loaded. "
      f"cinematch als test RMSE {al['rmse']:.4f}.\n"
      "  Python's 'added' can undercount: the fit reuses heap that pandas freed.")

print("\niALS, 64 factors, 15 iterations, the same objective (confidence 1 + 1.7 * stars, reg 50)")
ci, ri = by["cinematch ials"], by["implicit iALS (cg)"]
print(f"{'':<36} {'fit s':>8} {'NDCG@10':>8}")
print(f"{'cinematch ials (' + str(ci['threads']) + ' threads)':<36} {best(ci):8.3f} {ci['cinematch_ndcg_at_10']:8.4f}")
print(f"{'implicit ' + ri['version'] + ' (' + str(ri['threads']) + ' threads, cg)':<36} {best(ri):8.3f} {ri['ndcg_at_10']:8.4f}")
print(f"  implicit / cinematch fit: {best(ri) / best(ci):.2f}x (bar: >= 1)")

print("\nrecommend: one user, top 10 of the unrated movies (microseconds per request)")
print(f"{'':<36} {'threads':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}   score_all p50")
for r in rows[1:]:
    if r["name"] == "cinematch recommend":
        for run in r["runs"]:
            x, s = run["recommend"], run["score_all"]
            label = f"{r['movies']:,} movies x {r['factors']} factors"
            print(f"{label:<36} {run['threads']:>7} {x['p50_us']:8.1f} {x['p90_us']:8.1f} "
                  f"{x['p99_us']:8.1f} {x['mean_us']:8.1f}   {s['p50_us']:8.1f}")
EOF
