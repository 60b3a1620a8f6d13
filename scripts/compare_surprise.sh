#!/usr/bin/env bash
# Compares CineMatch's RMSE with Surprise's on exactly the same split.
#
#   scripts/compare_surprise.sh [DATA_DIR]     (default ../shared/data/ml-latest-small)
#
# Steps: a virtualenv with scikit-surprise (scripts/reference/venv.sh), a
# release build of cinematch, `cinematch
# load` into a temporary SQLite file (70/30 random split, seed 42), then
# Surprise (scripts/reference/surprise_compare.py reads that file's train and
# test rows with Python's sqlite3 module) and `cinematch train` on the same
# rows. Prints one table: RMSE and fit time of each.
#
# Env: VENV (default target/surprise-venv), SVD_SEEDS (random_state values of
# Surprise's SVD, default 42,0,1,2,3), NO_KNN=1 skips KNNBaseline (~10 s),
# SVDPP=1 adds SVD++ (slow: 1-2 min on ml-latest-small).
#
# scikit-surprise is pinned to 1.1.5, the version the issue quotes; see
# scripts/reference/venv.sh for how it is installed (a PyPI wheel on CPython
# 3.11 / x86_64, else a source build; SURPRISE_NUMPY='numpy<2' if that fails).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${1:-$ROOT/../shared/data/ml-latest-small}
SVD_SEEDS=${SVD_SEEDS:-42,0,1,2,3}

die() { echo "error: $*" >&2; exit 1; }
[ -d "$DATA" ] || die "no data directory $DATA"

# --- Surprise -----------------------------------------------------------------
source "$ROOT/scripts/reference/venv.sh"
reference_venv || die "no Surprise virtualenv"

# --- CineMatch ----------------------------------------------------------------
echo "==> cargo build --release" >&2
cargo build --release --quiet --bin cinematch
CM=$ROOT/target/release/cinematch

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DB=$TMP/cinematch.db
export CINEMATCH_DB="sqlite://$DB"
echo "==> cinematch load $DATA" >&2
"$CM" --quiet load "$DATA" >&2

RESULTS=$TMP/results.jsonl
echo "==> Surprise (seeds $SVD_SEEDS)" >&2
extra=()
[ "${NO_KNN:-}" = 1 ] && extra+=(--no-knn)
[ "${SVDPP:-}" = 1 ] && extra+=(--svdpp)
"$PY" "$ROOT/scripts/reference/surprise_compare.py" "$DB" --svd-seeds "$SVD_SEEDS" "${extra[@]}" \
  >>"$RESULTS"

# Trains one CineMatch model and appends its full-precision RMSE and fit time,
# read back from the model_metrics row the run recorded.
cm_train() {
  local name=$1; shift
  echo "==> cinematch train $*" >&2
  "$CM" --quiet train --no-ranking "$@" >&2
  "$PY" - "$DB" "$name" "$*" >>"$RESULTS" <<'EOF'
import json, sqlite3, sys
db, name, args = sys.argv[1:]
con = sqlite3.connect(db)
rmse, notes = con.execute(
    "SELECT rmse, notes FROM model_metrics ORDER BY id DESC LIMIT 1").fetchone()
n = json.loads(notes)
print(json.dumps({"name": name, "rmse": rmse, "fit_seconds": n.get("train_seconds"),
                  "args": args}))
EOF
}
# Surprise's SVD() settings, once per seed of SVD_SEEDS (as tests/quality.rs
# does), so both sides are means over the same number of seeds.
IFS=, read -ra seeds <<<"$SVD_SEEDS"
for s in "${seeds[@]}"; do
  cm_train "cinematch svd (Surprise settings)" --algo svd --factors 100 --epochs 20 \
    --lr 0.005 --reg 0.02 --init-std 0.1 --seed "$s"
done
if [ "${#seeds[@]}" -gt 1 ]; then
  "$PY" - "$RESULTS" "$SVD_SEEDS" >>"$RESULTS" <<'EOF'
import json, statistics, sys
name = "cinematch svd (Surprise settings)"
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
xs = [r["rmse"] for r in rows if r["name"] == name]
print(json.dumps({"name": name + " mean", "rmse": statistics.mean(xs),
                  "sd": statistics.stdev(xs), "seeds": [int(s) for s in sys.argv[2].split(",")],
                  "min": min(xs), "max": max(xs)}))
EOF
fi
cm_train "cinematch svd (defaults)" --algo svd
cm_train "cinematch als (defaults)" --algo als
cm_train "cinematch baseline (defaults)" --algo baseline

# --- Table --------------------------------------------------------------------
"$PY" - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r for r in rows if r["name"] == "meta")
import datetime, platform
print(f"\ncinematch load split (random 70/30, seed 42): "
      f"{meta['train_rows']} train / {meta['test_rows']} test ratings")
print(f"{datetime.date.today()}, {platform.machine()}, {__import__('os').cpu_count()} CPUs; "
      f"scikit-surprise {meta['surprise_version']}, numpy {meta['numpy_version']}, "
      f"pandas {meta['pandas_version']}, Python {meta['python_version']}\n")
print(f"{'model':<48} {'RMSE':>8} {'fit s':>8}  notes")
print("-" * 90)
for r in rows:
    if r["name"] == "meta":
        continue
    note = ""
    if "random_state" in r:
        note = f"random_state={r['random_state']}"
    if "sd" in r:
        note = f"mean of {len(r['seeds'])} seeds {r['seeds']}, sd {r['sd']:.4f}, range {r['min']:.4f}-{r['max']:.4f}"
    if "args" in r:
        note = r["args"]
    fit = r.get("fit_seconds")
    fit = f"{fit:8.2f}" if fit is not None else f"{'':>8}"
    print(f"{r['name']:<48} {r['rmse']:8.4f} {fit}  {note}")
print("\nfull precision:")
for r in rows:
    if "rmse" in r:
        extra = f" (random_state={r['random_state']})" if "random_state" in r else ""
        if "args" in r and "--seed" in r["args"]:
            extra = f" (seed {r['args'].split('--seed ')[1]})"
        print(f"  {r['name']}{extra}: {r['rmse']!r}")
EOF
