#!/usr/bin/env bash
# Benchmark: the lists users see (issue 9), CineMatch's ranking models side by
# side with the reference implementations on the same machine, the same data
# and the same split, every list scored by Python
# (scripts/reference/ranking_reference.py), not by CineMatch:
#
#   scripts/bench/ranking.sh [DATA=../shared/data/ml-latest-small]
#
#   most-rated  the same most-rated list for everyone (the bar to beat)
#   ease        cinematch ease (defaults) vs numpy EASE as the paper writes
#               it (float64 inverse), same lambda and signal: fit seconds
#               (best of ROUNDS, default 3) and NDCG@10
#   ials        cinematch ials (defaults: 128 factors, 15 iterations, CG)
#               vs implicit 0.7.3 on the same objective and settings
#   end to end  the issue's protocol: only the train rows of the split are
#               loaded (`load --train-fraction 1`), `train` with the
#               defaults, `serve`, every test user's
#               /api/users/{id}/recommendations?k=10 scored against the
#               held-back test rows (bar: NDCG@10 >= 0.33)
#
# The split is `cinematch load --seed 42` (random 70/30). CineMatch's own
# NDCG from `cinematch::eval` is printed next to Python's for the same model
# as a cross-check. DATA may be any MovieLens directory (or
# `cinematch data synth` output); at 25M ratings numpy's dense EASE needs
# movies^2 x 8 bytes (set SKIP_REFERENCE_EASE=1 on large catalogues).
#
# Needs: the Rust toolchain, python3 with venv; numpy and implicit are
# installed from PyPI into target/surprise-venv (scripts/reference/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DATA=${1:-$ROOT/../shared/data/ml-latest-small}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
WORK=$(mktemp -d /tmp/cinematch-ranking.XXXXXX)
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.jsonl
log() { echo "==> $*" >&2; }
[ -d "$DATA" ] || { echo "error: no MovieLens directory at $DATA" >&2; exit 1; }

source scripts/reference/venv.sh
reference_venv implicit

log "building (release): cinematch and the models bench"
cargo build --release --quiet --bin cinematch
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

log "loading $DATA (seed 42 split)"
"$BIN" -q --db "sqlite://$WORK/split.db" load "$DATA" --seed 42 >/dev/null
"$PY" - "$WORK/split.db" "$WORK" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for split in ("train", "test"):
    with open(f"{sys.argv[2]}/{split}.csv", "w") as f:
        for row in con.execute(
                "SELECT userId, movieId, rating, timestamp FROM ratings "
                "WHERE data_split = ? ORDER BY rowid", (split,)):
            f.write(",".join(map(str, row)) + "\n")
EOF
TRAIN=$WORK/train.csv
TEST=$WORK/test.csv
{
  echo "{\"name\": \"meta\", \"data\": \"$DATA\", \"train_rows\": $(wc -l <"$TRAIN"), \"test_rows\": $(wc -l <"$TEST"),"
  echo " \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\","
  echo " \"cores\": $(nproc), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo " \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\", \"rustc\": \"$(rustc --version)\"}"
} | tr -d '\n' >>"$RESULTS"
echo >>"$RESULTS"

# score_lists NAME LISTS BENCH_JSON: Python's metrics for the bench's lists,
# merged with the bench's timings into one result line.
score_lists() {
  "$PY" scripts/reference/ranking_reference.py lists "$1" "$2" "$TRAIN" "$TEST" >"$WORK/scored.json"
  "$PY" -c 'import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({**a, **b}))' "$3" "$WORK/scored.json" >>"$RESULTS"
}

log "most-rated list"
"$PY" scripts/reference/ranking_reference.py most-rated "$TRAIN" "$TEST" >>"$RESULTS"

log "ease: cinematch, numpy ($ROUNDS rounds each)"
RANK_LISTS=$WORK/ease.lists "$WORK/models-bench" rank ease "sqlite://$WORK/split.db" "$ROUNDS" \
  >"$WORK/ease.json"
score_lists "cinematch ease" "$WORK/ease.lists" "$WORK/ease.json"
if [ -z "${SKIP_REFERENCE_EASE:-}" ]; then
  "$PY" scripts/reference/ranking_reference.py ease "$TRAIN" "$TEST" --rounds "$ROUNDS" >>"$RESULTS"
fi

log "ials: cinematch, implicit"
RANK_LISTS=$WORK/ials.lists "$WORK/models-bench" rank ials "sqlite://$WORK/split.db" "$ROUNDS" \
  >"$WORK/ials.json"
score_lists "cinematch ials" "$WORK/ials.lists" "$WORK/ials.json"
"$PY" scripts/reference/ranking_reference.py ials "$TRAIN" "$TEST" --threads "$THREADS" >>"$RESULTS"

log "end to end: load the train rows only, train, serve, ask for every test user"
mkdir -p "$WORK/trainonly"
cp "$DATA/movies.csv" "$WORK/trainonly/"
{ echo "userId,movieId,rating,timestamp"; cat "$TRAIN"; } >"$WORK/trainonly/ratings.csv"
export CINEMATCH_DB="sqlite://$WORK/e2e.db"
"$BIN" -q load "$WORK/trainonly" --train-fraction 1 >/dev/null
"$BIN" -q train >/dev/null
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" -q serve --addr "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=1)" \
    2>/dev/null && break
  sleep 0.2
done
"$PY" scripts/reference/ranking_reference.py server "http://127.0.0.1:$PORT" "$TRAIN" "$TEST" >>"$RESULTS"

"$PY" - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta, rows = rows[0], rows[1:]
by = {r["name"]: r for r in rows}
best = lambda r: min(r["fit_seconds"])
print(f"\n{meta['data']}: {meta['train_rows']:,} train / {meta['test_rows']:,} test ratings "
      f"(cinematch load --seed 42); {meta['date']}")
print(f"{meta['cpu']}, {meta['cores']} cores, load average at start {meta['load']}; {meta['rustc']}")
print("\nFull-catalogue metrics on test, scored by scripts/reference/ranking_reference.py")
print(f"{'':<34} {'NDCG@10':>8} {'recall@10':>10} {'P@10':>7} {'fit s (best)':>13} {'rounds':>22}")
for r in rows:
    fit = f"{best(r):13.2f}" if "fit_seconds" in r else f"{'':>13}"
    rounds = ", ".join(f"{x:.2f}" for x in r["fit_seconds"]) if "fit_seconds" in r else ""
    print(f"{r['name']:<34} {r['ndcg_at_10']:8.4f} {r['recall_at_10']:10.4f} {r['p_at_10']:7.4f} {fit} {rounds:>22}")
pop = by["most-rated list"]["ndcg_at_10"]
print()
for name in ("cinematch ease", "cinematch ials"):
    r = by[name]
    mib = f", fit adds {r['peak_added_bytes'] / 2**20:.0f} MiB peak" if r.get("peak_added_bytes") else ""
    print(f"  {name}: NDCG@10 {r['ndcg_at_10']:.4f} = {r['ndcg_at_10'] / pop:.2f}x most-rated "
          f"(cinematch's own evaluation: {r['cinematch_ndcg_at_10']:.4f} in {r['eval_seconds']:.2f} s); "
          f"artifact {r['artifact_bytes'] / 2**20:.1f} MiB{mib}")
if "numpy EASE (float64 inv)" in by:
    n, c = by["numpy EASE (float64 inv)"], by["cinematch ease"]
    print(f"  numpy EASE fit / cinematch ease fit: {best(n) / best(c):.1f}x "
          f"(NDCG {n['ndcg_at_10']:.4f} vs {c['ndcg_at_10']:.4f})")
i, c = by["implicit iALS (cg)"], by["cinematch ials"]
print(f"  implicit iALS fit / cinematch ials fit: {best(i) / best(c):.1f}x "
      f"(NDCG {i['ndcg_at_10']:.4f} vs {c['ndcg_at_10']:.4f})")
e = by["cinematch serve, end to end"]
print(f"  end to end through the server: NDCG@10 {e['ndcg_at_10']:.4f} (bar: >= 0.33) over "
      f"{e['requests']} users in {e['seconds']:.1f} s, strategies {e['strategies']}")
EOF
