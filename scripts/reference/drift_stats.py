#!/usr/bin/env python3
"""Reference numbers for `crates/cinematch-stats/src/lib.rs` (tests in `crates/cinematch-stats/src/tests.rs`).

Regenerate with (numpy and scipy from PyPI; the pinned numbers came from
scipy 1.17.1 and numpy 2.4.6):

    pip install scipy numpy
    python3 scripts/reference/drift_stats.py            # constants for the Rust tests
    python3 scripts/reference/drift_stats.py --sweep /tmp/drift_sweep.txt
    DRIFT_SCIPY_SWEEP=/tmp/drift_sweep.txt \
        cargo test -p cinematch-stats --lib tests::scipy_sweep -- --ignored --nocapture

The default mode prints Rust source: each data set exactly as the Rust test
holds it, then what scipy/numpy compute for it. Data sets are fixed literals
or drawn from numpy's seeded `default_rng`, and printed, so the Rust side
never has to reproduce a random generator.

`--sweep FILE` writes many more cases (one per line, floats in round-trip
repr) for the ignored Rust test `scipy_sweep`, which reports the largest
differences per function; that is how the accuracy figures in the module
docs were measured.

Reference implementations:
* KS: `scipy.stats.ks_2samp(a, b)` (method='auto', two-sided), and
  `scipy.stats.kstwo.sf` / `scipy.special.smirnov` for the distribution;
* chi-square: `scipy.stats.chi2_contingency([a, b], correction=False)` after
  dropping the categories empty in both rows;
* Jensen-Shannon: `scipy.spatial.distance.jensenshannon(p, q, base=2)`;
* PSI: Evidently's formula `sum((a - e) * ln(a / e))` over proportions with
  zero proportions replaced by eps, summed in bin order (no library has a
  canonical PSI, so this is the formula written out in numpy);
* mean/std: `np.mean(x)`, `np.std(x, ddof=1)`.
"""

import sys
import warnings

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial import distance

LEVELS = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
# Rough MovieLens ml-latest-small shares of each half-star level.
BASE_P = np.array([0.014, 0.028, 0.018, 0.075, 0.055, 0.199, 0.131, 0.266, 0.085, 0.129])
BASE_P = BASE_P / BASE_P.sum()


def f(x):
    """A float as a Rust f64 literal that round-trips exactly."""
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(x)
    r = repr(x)
    if "." not in r and "e" not in r:
        r += ".0"
    return r


def flist(xs):
    return "&[" + ", ".join(f(x) for x in xs) + "]"


def ulist(xs):
    return "&[" + ", ".join(str(int(x)) for x in xs) + "]"


def ks(a, b):
    """ks_2samp, and whether scipy fell back from 'exact' to 'asymp'."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = stats.ks_2samp(np.asarray(a, float), np.asarray(b, float))
    fell_back = any("Exact calculation unsuccessful" in str(x.message) for x in w)
    return float(r.statistic), float(r.pvalue), fell_back


def shifted_probs(shift):
    """Level probabilities whose mean exceeds BASE_P's by about `shift`,
    by moving mass one half-star up (or down for a negative shift)."""
    up = np.concatenate([[0.0], BASE_P[:-1]])
    up[-1] += BASE_P[-1]
    down = np.concatenate([BASE_P[1:], [0.0]])
    down[0] += BASE_P[0]
    mean = (BASE_P * LEVELS).sum()
    target = up if shift >= 0 else down
    step = (target * LEVELS).sum() - mean
    w = min(abs(shift) / abs(step), 1.0)
    return (1 - w) * BASE_P + w * target


def rating_counts(rng, n, shift=0.0):
    return rng.multinomial(n, shifted_probs(shift))


def expand(counts):
    return np.repeat(LEVELS, counts)


def chi2_ref(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    keep = (a + b) > 0
    r = stats.chi2_contingency(np.array([a[keep], b[keep]]), correction=False)
    return float(r.statistic), int(r.dof), float(r.pvalue)


def psi_ref(e_counts, a_counts, eps):
    e = np.asarray(e_counts, float) / np.sum(e_counts)
    a = np.asarray(a_counts, float) / np.sum(a_counts)
    e = np.where(e == 0, eps, e)
    a = np.where(a == 0, eps, a)
    total = 0.0
    for ei, ai in zip(e, a):  # bin order, like Evidently's loop
        total += (ai - ei) * np.log(ai / ei)
    return float(total)


# ---------------------------------------------------------------------------
# Pinned cases (default mode)
# ---------------------------------------------------------------------------


def ks_sample_cases():
    rng = np.random.default_rng(20240611)
    cases = [
        ("single observations", [1.0], [2.0]),
        ("one vs two", [3.0], [1.0, 2.0]),
        ("identical single", [2.5], [2.5]),
        ("identical samples", [1.0, 2.0, 2.0, 3.5], [3.5, 2.0, 1.0, 2.0]),
        ("separated", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]),
        ("separated reversed", [10.0, 11.0, 12.0, 13.0, 14.0], [0.5, 1.0]),
        ("tiny 2 vs 3", [0.1, 0.7], [0.3, 0.5, 0.9]),
        ("tiny 4 vs 5", [1.2, -0.4, 3.3, 0.0], [0.5, 2.2, -1.0, 0.8, 4.1]),
        ("tiny 5 vs 5", [1.0, 2.0, 3.0, 4.0, 5.0], [2.5, 3.5, 4.5, 5.5, 6.5]),
        ("negative zero ties zero", [-0.0, 1.0], [0.0, 2.0]),
    ]
    # Random continuous, equal and unequal sizes.
    cases.append(("normal 12 vs 12", rng.normal(0, 1, 12).round(6), rng.normal(0.8, 1, 12).round(6)))
    cases.append(("normal 9 vs 17", rng.normal(0, 1, 9).round(6), rng.normal(0.3, 1.5, 17).round(6)))
    cases.append(("normal 40 vs 25", rng.normal(0, 1, 40).round(6), rng.normal(0.2, 1, 25).round(6)))
    # Heavy ties: half-star ratings.
    cases.append(("ratings 30 vs 30", expand(rating_counts(rng, 30)), expand(rating_counts(rng, 30, 0.3))))
    cases.append(("ratings 37 vs 61", expand(rating_counts(rng, 37)), expand(rating_counts(rng, 61, 0.2))))
    cases.append(("ratings 8 vs 3", expand(rating_counts(rng, 8)), expand(rating_counts(rng, 3))))
    cases.append(("integers 0..3, 50 vs 20", rng.integers(0, 4, 50).astype(float), rng.integers(1, 5, 20).astype(float)))
    return cases


def ks_count_cases():
    """(name, counts_a, counts_b) on the half-star grid; scipy sees the
    expanded samples."""
    rng = np.random.default_rng(7)
    cases = [
        ("exact: 600 vs 400, no shift", rating_counts(rng, 600), rating_counts(rng, 400)),
        ("exact: 3000 vs 2000, +0.1", rating_counts(rng, 3000), rating_counts(rng, 2000, 0.1)),
        ("exact equal: 2500 vs 2500, +0.15", rating_counts(rng, 2500), rating_counts(rng, 2500, 0.15)),
        ("exact: 10000 vs 7000, +0.05", rating_counts(rng, 10000), rating_counts(rng, 7000, 0.05)),
        ("all mass in one level", np.array([0, 0, 0, 0, 0, 0, 0, 40, 0, 0]), np.array([0, 0, 0, 0, 0, 0, 0, 25, 0, 0])),
        ("one level each, different", np.array([0, 0, 0, 0, 0, 0, 0, 40, 0, 0]), np.array([0, 0, 0, 0, 0, 25, 0, 0, 0, 0])),
        # Equal sizes 1000 with D = 2/1000: scipy's exact value exceeds 1 by
        # rounding, so it falls back to the asymptotic distribution.
        ("exact fallback: 1000 vs 1000, D=2/1000", np.array([0, 0, 0, 0, 0, 500, 0, 500, 0, 0]), np.array([0, 0, 0, 0, 0, 498, 2, 500, 0, 0])),
        # Asymptotic regime (max(n) > 10000).
        ("asymp: 700k vs 130k, no shift", rating_counts(rng, 700_000), rating_counts(rng, 130_000)),
        ("asymp: 700k vs 130k, +0.02", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.02)),
        ("asymp: 700k vs 130k, +0.05", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.05)),
        ("asymp: 700k vs 130k, +0.4", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.4)),
        ("asymp: 700k vs 130k, -0.01", rating_counts(rng, 700_000), rating_counts(rng, 130_000, -0.01)),
        ("asymp: 120k vs 100k, +0.004", rating_counts(rng, 120_000), rating_counts(rng, 100_000, 0.004)),
        ("asymp: 20000 vs 15000, +0.03", rating_counts(rng, 20_000), rating_counts(rng, 15_000, 0.03)),
        ("asymp: 12000 vs 40, +0.3", rating_counts(rng, 12_000), rating_counts(rng, 40, 0.3)),
        ("asymp: 15000 vs 3, shifted", rating_counts(rng, 15_000), np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2])),
        ("asymp: 2.5M vs 2.4M, +0.01", rating_counts(rng, 2_500_000), rating_counts(rng, 2_400_000, 0.01)),
    ]
    return cases


def kstwo_cases():
    """(n, d) pairs that cover every branch of scipy's _kolmogn (sf)."""
    out = []

    def add(n, x):
        out.append((n, float(x)))

    for n in [1, 2, 3, 5, 10, 60, 140]:
        add(n, 0.6 / n)  # Ruben-Gambino, n x <= 1
        add(n, 0.75)  # x >= 0.5: 2 smirnov (or t >= n-1)
        if n >= 5:
            add(n, (n - 0.5) / n)  # t >= n - 1
            add(n, np.sqrt(0.5 / n))  # DMTW, n x^2 <= 0.754693
            add(n, np.sqrt(2.0 / n))  # Pomeranz, n x^2 <= 4
            add(n, np.sqrt(4.0 / n) * 1.01)  # 2 smirnov
    for n in [141, 1000, 10000, 66666, 100000, 109638, 500000]:
        add(n, 0.9 / n)  # Ruben-Gambino via Stirling
        add(n, 1.2 / n)  # DMTW (n <= 1e5) / Pelz-Good
        add(n, np.sqrt(0.3 / n))  # DMTW or Pelz-Good
        add(n, np.sqrt(1.5 / n))  # Pelz-Good
        add(n, np.sqrt(2.5 / n))  # 2 smirnov
        add(n, np.sqrt(40.0 / n))  # 2 smirnov, small p
        add(n, np.sqrt(369.0 / n))  # just below the 370 cut
        add(n, np.sqrt(371.0 / n))  # 0
    add(2_000_000, np.sqrt(5.0 / 2_000_000))  # smirnov's n > 1e6 approximation
    return out


def chi2_cases():
    rng = np.random.default_rng(99)
    return [
        ("small", [10, 20, 30], [15, 15, 40]),
        ("levels with empty columns", [0, 3, 5, 0, 12, 40, 22, 60, 9, 30], [0, 1, 9, 0, 10, 35, 30, 41, 12, 22]),
        ("2x2", [12, 5], [3, 14]),
        ("one observation each", [1, 0], [0, 1]),
        ("ratings 700k vs 130k, +0.05", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.05)),
        ("ratings 700k vs 130k, no shift", rating_counts(rng, 700_000), rating_counts(rng, 130_000)),
        ("ratings 7000 vs 1300, +0.4 (tiny p)", rating_counts(rng, 7000), rating_counts(rng, 1300, 0.4)),
    ]


def js_cases():
    return [
        ("identical", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ("proportional", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
        ("disjoint", [1.0, 0.0], [0.0, 1.0]),
        ("zeros on one side", [5.0, 0.0, 3.0, 2.0], [1.0, 4.0, 0.0, 5.0]),
        ("ratings-like", list(BASE_P), list(shifted_probs(0.3))),
        ("counts", [3.0, 0.0, 7.0, 12.0, 40.0, 22.0, 61.0, 9.0, 30.0, 5.0], [1.0, 2.0, 9.0, 10.0, 35.0, 30.0, 41.0, 12.0, 22.0, 0.0]),
    ]


# (x, y) pairs for scipy.special.rel_entr, each where one of its three forms
# rounds differently from the others: x log1p((x - y)/y) for 1/2 < x/y < 2,
# x log(x/y) for other normal ratios, x (log x - log y) for a subnormal or
# infinite ratio (the subnormal pairs were found by search, seed 1).
REL_ENTR_PAIRS = [
    (0.3, 0.25), (0.7, 0.45), (1e-3, 1.1e-3), (0.26, 0.5), (0.999, 0.5),
    (0.1, 0.5), (1e-5, 0.3), (0.5, 0.25), (0.25, 0.5), (0.0, 0.5),
    (3.826056445958319e-304, 3582393324.2552104),
    (1.0212152440164122e-306, 3450205985.2999253),
    (4.9835660873061855e-304, 22397.306355707457),  # x/y == f64::MIN_POSITIVE
    (1.0, 1e-320),  # x/y == inf
]


def psi_cases():
    rng = np.random.default_rng(5)
    return [
        ("two bins", [50, 50], [30, 70], 1e-4),
        ("zero in actual", [20, 30, 50], [0, 40, 60], 1e-4),
        ("zero in both", [20, 0, 80], [25, 0, 75], 1e-4),
        ("ratings 700k vs 130k, +0.05", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.05), 1e-4),
        ("ratings 700k vs 130k, +0.4", rating_counts(rng, 700_000), rating_counts(rng, 130_000, 0.4), 1e-4),
    ]


def mean_std_cases():
    return [
        ("two", [1.0, 2.0]),
        ("ratings", [4.0, 3.5, 5.0, 0.5, 3.0, 4.0, 4.5, 2.0, 3.0, 4.0]),
        ("large offset", [1e9 + 0.1, 1e9 + 0.2, 1e9 + 0.3, 1e9 + 0.4]),
    ]


def main():
    print("// Generated by: python3 scripts/reference/drift_stats.py")
    print(f"// scipy {scipy.__version__}, numpy {np.__version__}")
    print()
    print("/// (name, a, b, scipy D, scipy p)")
    print("const KS_SAMPLES: &[(&str, &[f64], &[f64], f64, f64)] = &[")
    for name, a, b in ks_sample_cases():
        d, p, _ = ks(a, b)
        print(f'    ("{name}", {flist(a)}, {flist(b)}, {f(d)}, {f(p)}),')
    print("];")
    print()
    print("/// (name, counts_a, counts_b over RATING_LEVELS, scipy D, scipy p, scipy fell back to asymp)")
    print("const KS_COUNTS: &[(&str, &[u64], &[u64], f64, f64, bool)] = &[")
    for name, ca, cb in ks_count_cases():
        d, p, fb = ks(expand(ca), expand(cb))
        print(f'    ("{name}", {ulist(ca)}, {ulist(cb)}, {f(d)}, {f(p)}, {str(fb).lower()}),')
    print("];")
    print()
    print("/// (n, d, scipy.stats.kstwo.sf(d, n))")
    print("const KSTWO_SF: &[(u64, f64, f64)] = &[")
    for n, x in kstwo_cases():
        print(f"    ({n}, {f(x)}, {f(stats.kstwo.sf(x, n))}),")
    print("];")
    print()
    print("/// (n, d, scipy.special.smirnov(n, d))")
    print("const SMIRNOV: &[(u64, f64, f64)] = &[")
    for n, x in [(1, 0.3), (2, 0.3), (5, 0.1), (5, 0.5), (10, 0.05), (10, 0.25), (100, 0.02), (100, 0.15),
                 (1000, 0.03), (20000, 0.004), (20000, 0.02), (109638, 0.006), (1_000_001, 0.001)]:
        print(f"    ({n}, {f(x)}, {f(special.smirnov(n, x))}),")
    print("];")
    print()
    print("/// (name, a, b, scipy chi2 statistic, dof, p) with empty-in-both columns dropped")
    print("const CHI2: &[(&str, &[u64], &[u64], f64, usize, f64)] = &[")
    for name, a, b in chi2_cases():
        s, dof, p = chi2_ref(a, b)
        print(f'    ("{name}", {ulist(a)}, {ulist(b)}, {f(s)}, {dof}, {f(p)}),')
    print("];")
    print()
    print("/// (name, p, q, scipy jensenshannon(p, q, base=2))")
    print("const JS: &[(&str, &[f64], &[f64], f64)] = &[")
    for name, p, q in js_cases():
        js = float(distance.jensenshannon(p, q, base=2))
        print(f'    ("{name}", {flist(p)}, {flist(q)}, {f(js)}),')
    print("];")
    print()
    print("/// (name, expected counts, actual counts, eps, PSI in numpy)")
    print("const PSI: &[(&str, &[u64], &[u64], f64, f64)] = &[")
    for name, e, a, eps in psi_cases():
        print(f'    ("{name}", {ulist(e)}, {ulist(a)}, {f(eps)}, {f(psi_ref(e, a, eps))}),')
    print("];")
    print()
    print("/// (name, x, np.mean(x), np.std(x, ddof=1))")
    print("const MEAN_STD: &[(&str, &[f64], f64, f64)] = &[")
    for name, x in mean_std_cases():
        x = np.asarray(x, float)
        print(f'    ("{name}", {flist(x)}, {f(np.mean(x))}, {f(np.std(x, ddof=1))}),')
    print("];")
    print()
    print("/// (name, counts over RATING_LEVELS, np.mean, np.std(ddof=1) of the expanded sample)")
    print("const MEAN_STD_COUNTS: &[(&str, &[u64], f64, f64)] = &[")
    rng = np.random.default_rng(11)
    for name, c in [("700k ratings", rating_counts(rng, 700_000)), ("130k ratings, +0.4", rating_counts(rng, 130_000, 0.4)),
                    ("two levels", np.array([0, 0, 0, 0, 0, 0, 3, 0, 0, 1]))]:
        x = expand(c)
        print(f'    ("{name}", {ulist(c)}, {f(np.mean(x))}, {f(np.std(x, ddof=1))}),')
    print("];")
    print()
    print("/// (k, np.sum(xs[:k])) for xs[i] = 1e16 if i % 3 == 0 else 1 + i/1000: the")
    print("/// result depends on numpy's pairwise summation order")
    print("const NP_SUM: &[(usize, f64)] = &[")
    xs = np.array([1e16 if i % 3 == 0 else 1.0 + i * 1e-3 for i in range(300)])
    for k in [8, 9, 16, 17, 100, 128, 129, 200, 300]:
        print(f"    ({k}, {f(np.sum(xs[:k]))}),")
    print("];")
    print()
    print("/// (x, y, scipy.special.rel_entr(x, y))")
    print("const REL_ENTR: &[(f64, f64, f64)] = &[")
    for x, y in REL_ENTR_PAIRS:
        print(f"    ({f(x)}, {f(y)}, {f(scipy.special.rel_entr(x, y))}),")
    print("];")
    print()
    print("/// (n, np.sum(xs)) for xs[i] = ((7919 i) % 1001 - 500) * 2**((37 i) % 61 - 30),")
    print("/// exact in binary: magnitudes from 2**-30 to 2**39, so where numpy splits")
    print("/// a long array in halves shows in the last bits")
    print("const NP_SUM_MIXED: &[(usize, f64)] = &[")
    for n in [150, 300, 1000, 4099]:
        mixed = np.array([float((7919 * i) % 1001 - 500) * 2.0 ** ((37 * i) % 61 - 30) for i in range(n)])
        print(f"    ({n}, {f(np.sum(mixed))}),")
    print("];")
    print()
    print(f"/// np.sum of one -0.0 and of twenty: {f(np.sum(np.array([-0.0])))}, {f(np.sum(np.array([-0.0] * 20)))}")


# ---------------------------------------------------------------------------
# Sweep (--sweep FILE)
# ---------------------------------------------------------------------------


def sweep(path):
    rng = np.random.default_rng(2024)
    lines = []

    def line(*parts):
        lines.append(" ".join(p if isinstance(p, str) else (str(p) if isinstance(p, (int, np.integer)) else repr(float(p))) for p in parts))

    # kstwo.sf over n and a dense grid of n*x^2, every branch.
    ns = [1, 2, 3, 4, 5, 7, 10, 20, 50, 100, 139, 140, 141, 200, 500, 1000, 5000, 10000, 30000,
          66666, 99999, 100000, 100001, 109638, 250000, 999999, 1000000, 1000001, 3000000]
    for n in ns:
        xs = set()
        for t in [0.4, 0.5, 0.51, 0.7, 0.9, 1.0, 1.3, 2.0, 3.0]:
            xs.add(t / n)
        for nx2 in np.concatenate([np.linspace(0.01, 0.75, 12), [0.754693, 0.7547], np.linspace(0.76, 4.0, 12), [2.19, 2.2, 2.21],
                                   np.linspace(4.01, 20, 8), np.geomspace(20, 369.9, 10), [370.0, 371.0, 500.0]]):
            xs.add(float(np.sqrt(nx2 / n)))
        for x in [0.3, 0.49, 0.5, 0.51, 0.7, 0.9, 0.99, 1.0 - 1.0 / n, 1.0 - 0.5 / n, 1.0]:
            xs.add(x)
        for x in sorted(xs):
            if 0 < x <= 1:
                line("kstwo", n, x, stats.kstwo.sf(x, n))
    for n in [2, 3, 10, 50, 140, 1000, 20000, 109638, 500000, 1000000, 1000001]:
        for x in [0.5 / n, 1.0 / n, 1.5 / n, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 0.8, 1 - 1.0 / n, 1 - 0.3 / n]:
            if 0 < x < 1:
                line("smirnov", n, x, special.smirnov(n, x))

    # ks_2samp on raw samples, with and without ties.
    def ks_line(a, b):
        d, p, _ = ks(a, b)
        line("ks", len(a), len(b), *a, *b, d, p)

    for n1 in range(1, 13):
        for n2 in range(1, 13):
            a = rng.integers(0, 5, n1).astype(float)
            b = rng.integers(0, 6, n2).astype(float)
            ks_line(a, b)
            ks_line(rng.normal(0, 1, n1).round(4), rng.normal(0.5, 1, n2).round(4))
    for n1, n2 in [(50, 50), (100, 100), (100, 37), (250, 400), (1000, 999), (1000, 1000), (30, 300)]:
        ks_line(rng.normal(0, 1, n1).round(3), rng.normal(0.1, 1, n2).round(3))
        ks_line(expand(rating_counts(rng, n1)), expand(rating_counts(rng, n2, 0.1)))
        ks_line(np.arange(n1, dtype=float), np.arange(n2, dtype=float) + n1)  # separated
        x = rng.normal(0, 1, n1).round(3)
        ks_line(x, x.copy())  # identical

    # ks_2samp via counts on the rating grid, exact and asymptotic regimes.
    def ksc_line(ca, cb):
        d, p, _ = ks(expand(ca), expand(cb))
        line("ksc", *ca, *cb, d, p)

    for n1, n2 in [(40, 30), (700, 300), (2000, 2000), (5000, 3000), (9999, 10000), (10000, 10000), (10001, 500),
                   (50000, 20000), (130000, 130000), (700000, 130000), (1000000, 900000), (3000000, 2500000)]:
        for shift in [0.0, 0.002, 0.01, 0.03, 0.05, 0.1, 0.4, -0.05]:
            ksc_line(rating_counts(rng, n1), rating_counts(rng, n2, shift))
    for k in range(60):  # equal-size pairs that differ by a few ratings: h tiny
        n = int(rng.integers(100, 10001))
        ca = rating_counts(rng, n)
        cb = ca.copy()
        moves = int(rng.integers(0, 4))
        for _ in range(moves):
            i = int(rng.integers(0, 9))
            if cb[i] > 0:
                cb[i] -= 1
                cb[i + 1] += 1
        ksc_line(ca, cb)

    for _ in range(100):
        k = int(rng.integers(2, 12))
        a = rng.integers(0, 50, k) * (rng.random(k) < 0.8)
        b = rng.integers(0, 50, k) * (rng.random(k) < 0.8)
        if (a + b > 0).sum() >= 2 and a.sum() > 0 and b.sum() > 0:
            s, dof, p = chi2_ref(a, b)
            line("chi2", k, *a, *b, s, dof, p)
        pf = rng.random(k) * (rng.random(k) < 0.7)
        qf = rng.random(k) * (rng.random(k) < 0.7)
        if pf.sum() > 0 and qf.sum() > 0:
            line("js", k, *pf, *qf, distance.jensenshannon(pf, qf, base=2))
    for n1, n2 in [(700000, 130000), (5000, 2000), (100, 90)]:
        for shift in [0.0, 0.05, 0.2, 0.4, 1.0]:
            a, b = rating_counts(rng, n1), rating_counts(rng, n2, shift)
            s, dof, p = chi2_ref(a, b)
            line("chi2", 10, *a, *b, s, dof, p)
            line("psi", *a, *b, psi_ref(a, b, 1e-4))
    for n in [2, 3, 10, 1000, 100000]:
        x = rng.normal(3.5, 1.0, n)
        line("meanstd", n, *x, np.mean(x), np.std(x, ddof=1))
    for n in [10, 700000, 130000]:
        c = rating_counts(rng, n, 0.1)
        x = expand(c)
        line("meanstdc", *c, np.mean(x), np.std(x, ddof=1))

    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} cases to {path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sweep":
        sweep(sys.argv[2])
    elif len(sys.argv) == 1:
        main()
    else:
        sys.exit(__doc__)
