#!/usr/bin/env bash
# Benchmark: the drift computation over 700,000 baseline and 130,000 new
# ratings (issue 4: "well under 100 ms"), with scipy side by side on the
# very same arrays.
#
#   scripts/bench/drift.sh
#
# Runs `cargo bench --bench drift` (benches/drift.rs: timings of
# `drift_check::compute`, i.e. every test `cinematch drift check` records,
# and of its parts), which also writes the rating arrays, then times
# `scipy.stats.ks_2samp(a, b)` + counting + `scipy.stats.chisquare` (and, for
# information, `chi2_contingency`, the test CineMatch's chi-square matches)
# on them with the same protocol (median after warm-up). scipy comes from a
# venv under /tmp (created with pip on first use) unless $PYTHON already
# imports it.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d /tmp/cinematch-drift-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  VENV=/tmp/cinematch-bench-venv
  if ! "$VENV/bin/python" -c 'import scipy, numpy' 2>/dev/null; then
    echo "creating $VENV with scipy and numpy (pip)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q scipy numpy
  fi
  PY=$VENV/bin/python
fi

echo "== cargo bench --bench drift"
cargo bench --quiet --bench drift -- --dump "$WORK" | tee "$WORK/rust.txt"

echo
echo "== scipy on the same arrays ($("$PY" -c 'import scipy, numpy; print("scipy", scipy.__version__, "numpy", numpy.__version__)'))"
"$PY" - "$WORK" <<'EOF' | tee "$WORK/py.txt"
import sys, time
import numpy as np
from scipy import stats

work = sys.argv[1]

def timeit(label, f):
    for _ in range(3):
        f()
    samples, start = [], time.perf_counter()
    while len(samples) < 15 or (time.perf_counter() - start < 1.5 and len(samples) < 500):
        t = time.perf_counter()
        f()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    med = samples[len(samples) // 2]
    print(f"  {label:<44} median {med:>8.3f} ms   min {samples[0]:>8.3f}   max {samples[-1]:>8.3f}   ({len(samples)} runs)")
    return med

for name in ["temporal", "random"]:
    a = np.fromfile(f"{work}/{name}_baseline.f64", dtype="<f8")
    b = np.fromfile(f"{work}/{name}_new.f64", dtype="<f8")
    r = stats.ks_2samp(a, b)
    print(f"\n{name} split: {a.size} baseline vs {b.size} new; KS D = {r.statistic:.4f}, p = {r.pvalue:.3e}")

    def counts(x):
        return np.bincount(np.rint(2 * x).astype(np.int64) - 1, minlength=10)

    def ks_chisquare():
        ks = stats.ks_2samp(a, b)
        ca, cb = counts(a), counts(b)
        keep = (ca + cb) > 0
        expected = ca[keep] / ca.sum() * cb.sum()
        return ks, stats.chisquare(cb[keep], f_exp=expected)

    def ks_contingency():
        ks = stats.ks_2samp(a, b)
        ca, cb = counts(a), counts(b)
        keep = (ca + cb) > 0
        return ks, stats.chi2_contingency([ca[keep], cb[keep]], correction=False)

    ks = timeit("scipy ks_2samp", lambda: stats.ks_2samp(a, b))
    both = timeit("scipy ks_2samp + bincount + chisquare", ks_chisquare)
    timeit("scipy ks_2samp + bincount + chi2_contingency", ks_contingency)
    print(f"SCIPY {name} {ks:.3f} {both:.3f}")
EOF

echo
echo "== ratios (median time, CineMatch / scipy; below 1 means CineMatch is faster)"
awk '
  /^RESULT/ { c[$2] = $3; raw[$2] = $5; like[$2] = $6 }
  /^SCIPY/ { sks[$2] = $3; sboth[$2] = $4 }
  END {
    for (n in c) {
      printf "  %-9s ks_2samp raw vs scipy ks_2samp:                   %6.3f / %7.3f ms = %.2f\n", n, raw[n], sks[n], raw[n] / sks[n]
      printf "  %-9s ks raw + chi-square vs scipy ks + chisquare:      %6.3f / %7.3f ms = %.2f\n", n, like[n], sboth[n], like[n] / sboth[n]
      printf "  %-9s full drift_check::compute vs scipy ks + chisquare: %6.3f / %7.3f ms = %.2f\n", n, c[n], sboth[n], c[n] / sboth[n]
    }
  }' "$WORK/rust.txt" "$WORK/py.txt"
