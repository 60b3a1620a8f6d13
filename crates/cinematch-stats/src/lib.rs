//! Pure statistics for data-drift detection: two-sample tests and divergences
//! between a reference and a current sample of ratings.
//!
//! A crate of its own, with no I/O and one dependency (statrs), so that its
//! tests build and run in seconds: `scripts/mutants.sh stats` changes every
//! operator here one at a time and reruns them. CineMatch re-exports it as
//! `cinematch::drift::stats`.
//!
//! Every function reproduces a reference implementation a data scientist
//! would reach for, so that a number in a drift alert can be checked in a
//! notebook: `scipy.stats.ks_2samp`, `scipy.stats.chi2_contingency`,
//! `scipy.spatial.distance.jensenshannon`, numpy's mean/std, and Evidently's
//! PSI convention. `scripts/reference/drift_stats.py` prints the numbers the
//! tests in `tests.rs` pin, and with `--sweep` writes ~2600 more cases
//! for the ignored test `scipy_sweep`. Largest relative differences measured
//! there (scipy 1.17.1, numpy 2.4.6):
//!
//! | function | worst relative difference |
//! |---|---|
//! | `ks_2samp` / `ks_2samp_counts` D | 0 (bit-identical) |
//! | `ks_2samp` p (exact regime, n <= 10 000) | 0 |
//! | `ks_2samp_counts` p (asymptotic regime, up to 3M vs 2.5M) | 1.3e-15 |
//! | KS distribution `kstwo.sf` alone, all branches | 1.6e-12 (Pomeranz branch, n <= 140; elsewhere < 2e-15) |
//! | `chi2_homogeneity` statistic / p | 0 / 2.2e-14 (statrs vs cephes `igamc`) |
//! | `jensen_shannon` | 0 |
//! | `psi` | 0 |
//! | `mean_std` / `mean_std_counts` | 5e-15 / 2e-16 |
//!
//! Ratings take ten values, so after one counting pass
//! ([`rating_level_counts`], ~1-2 ms for 830k ratings) every statistic here
//! costs O(levels), not O(ratings): the `*_counts` variants are what the
//! drift job should call. For 700k vs 130k ratings, KS + PSI + chi-square +
//! mean/std from counts take ~6 ms in a release build, nearly all of it the
//! KS p-value (scipy's one-sided Smirnov sum, O(n) terms for
//! n = n_a n_b / (n_a + n_b); ~70-150 ms when that n reaches 1e6, and a
//! closed form beyond). Two scipy costs are kept as they are because they
//! are scipy's algorithms: the exact p-value for samples <= 10 000 is
//! O(n_a * D n_b) (up to ~1 s for 10 000 vs 9 999 with D near 1), and the
//! Durbin matrix branch for n <= 100 000 with a tiny D takes up to ~30-50 ms.
//!
//! Nothing here panics or returns NaN: inputs that scipy rejects (empty
//! samples, zero totals, NaN data) give `None`.

mod ddouble;
mod kolmogorov;
#[cfg(test)]
mod tests;

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The half-star grid MovieLens ratings live on, in the order
/// [`rating_level_counts`] counts them.
pub const RATING_LEVELS: [f64; 10] = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0];

/// `scipy.stats.ks_2samp` chooses its exact method only up to this sample
/// size (`MAX_AUTO_N`); beyond it the asymptotic distribution is used.
const KS_MAX_EXACT_N: u64 = 10_000;

/// Result of a two-sample Kolmogorov–Smirnov test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// D = sup |F_a - F_b|; in scipy's exact regime (both samples <= 10 000)
    /// it is snapped to the lattice value h/lcm(n_a, n_b), as scipy returns it.
    pub statistic: f64,
    /// Two-sided; 0.0 where scipy's value underflows (very large shifts in
    /// large samples), so rank alerts by `statistic` rather than by p.
    pub pvalue: f64,
}

/// Result of a chi-square test of homogeneity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquareResult {
    pub statistic: f64,
    /// Categories non-empty in at least one sample, minus one.
    pub dof: usize,
    pub pvalue: f64,
}

/// numpy's pairwise summation (`np.sum` of a contiguous float64 array),
/// reproduced so that sums match scipy bit for bit rather than to an ulp.
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            // numpy starts from -0.0 here, but its reduction then adds the
            // identity 0.0 (below), so the sign of a zero never shows.
            let mut res = 0.0;
            for &x in a {
                res += x;
            }
            res
        } else if n <= 128 {
            let mut r = [0.0f64; 8];
            r.copy_from_slice(&a[..8]);
            let mut i = 8;
            while i < n - n % 8 {
                for (j, rj) in r.iter_mut().enumerate() {
                    *rj += a[i + j];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res += a[i];
                i += 1;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    0.0 + pairwise(a)
}

/// Two-sample Kolmogorov–Smirnov test, two-sided, exactly as
/// `scipy.stats.ks_2samp(a, b)` (method `'auto'`) computes D and the p-value.
///
/// KS is the drift test that needs no binning decision and is what most
/// monitoring tools report, so its p-value has to agree with scipy's for
/// alerts to be explainable. Ties are handled as scipy does (ECDFs compared
/// at every data point, right-continuous), which matters because ratings
/// take only ten values. For samples above 10 000 the p-value is scipy's
/// asymptotic `kstwo.sf(D, round(n_a n_b / (n_a + n_b)))`.
///
/// `None` if either sample is empty or contains NaN (scipy would return NaN).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Option<KsResult> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|x| x.is_nan()) {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (n1, n2) = (a.len(), b.len());
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    // scipy evaluates cdf1 - cdf2 at every pooled data point with
    // searchsorted(side='right'); walking the distinct pooled values in order
    // visits the same differences.
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    loop {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) | (None, Some(&x)) => x,
            (None, None) => break,
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / n1f - j as f64 / n2f;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    Some(ks_finish(n1 as u64, n2 as u64, max_diff, min_diff))
}

/// [`ks_2samp`] from counts over a shared sorted grid of values (for ratings,
/// [`RATING_LEVELS`] via [`rating_level_counts`]): `counts_a[i]` is how many
/// of sample a equal the i-th grid value.
///
/// This is the form the drift job should use: after counting, the test is
/// O(levels) instead of a sort of a million ratings, and D and the p-value
/// are bit-for-bit those of [`ks_2samp`] on the expanded samples.
///
/// `None` if the slices differ in length or either sample is empty.
pub fn ks_2samp_counts(counts_a: &[u64], counts_b: &[u64]) -> Option<KsResult> {
    if counts_a.len() != counts_b.len() {
        return None;
    }
    let n1: u64 = counts_a.iter().sum();
    let n2: u64 = counts_b.iter().sum();
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (mut ca, mut cb) = (0u64, 0u64);
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    // Only grid values that occur are data points in scipy's evaluation, but
    // a value that does not occur repeats the previous difference (or 0
    // before the first, and the last is always 0), so every level can count.
    for (&x, &y) in counts_a.iter().zip(counts_b) {
        ca += x;
        cb += y;
        let diff = ca as f64 / n1f - cb as f64 / n2f;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    Some(ks_finish(n1, n2, max_diff, min_diff))
}

/// The tail of `scipy.stats.ks_2samp` after the ECDF differences: choose D,
/// then the exact or asymptotic p-value (`_attempt_exact_2kssamp`, with its
/// fallback to the asymptotic one when the exact value is not a probability).
fn ks_finish(n1: u64, n2: u64, max_s: f64, min_diff: f64) -> KsResult {
    let min_s = (-min_diff).clamp(0.0, 1.0);
    let mut d = min_s.max(max_s);
    let g = gcd(n1, n2);
    let mut prob = f64::NAN;
    let mut exact_ok = false;
    if n1.max(n2) <= KS_MAX_EXACT_N {
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even() as i64;
        d = h as f64 / lcm as f64;
        if h == 0 {
            prob = 1.0;
            exact_ok = true;
        } else {
            let p = if n1 == n2 {
                kolmogorov::prob_outside_square(n1 as i64, h)
            } else {
                kolmogorov::outer_prob_inside(n1 as i64, n2 as i64, g as i64, h)
            };
            if (0.0..=1.0).contains(&p) {
                prob = p;
                exact_ok = true;
            }
        }
    }
    if !exact_ok {
        // scipy sorts (m, n) first; IEEE products and sums commute, so the
        // order cannot change en.
        let (m, n) = (n1 as f64, n2 as f64);
        let en = m * n / (m + n);
        prob = kolmogorov::kstwo_sf(d, en.round_ties_even());
    }
    // np.clip; a NaN could only come from a bug, and the contract is no NaN.
    let pvalue = if prob.is_nan() {
        1.0
    } else {
        prob.clamp(0.0, 1.0)
    };
    KsResult {
        statistic: d,
        pvalue,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Population stability index between two binned distributions given as
/// counts over the same bins: `sum((a_i - e_i) * ln(a_i / e_i))` over the bin
/// proportions `e_i = expected_i / sum(expected)` and `a_i` likewise.
///
/// PSI is the drift score risk teams read against fixed thresholds (0.1
/// "moderate", 0.25 "significant"), so the convention must be the common
/// one: a zero proportion is replaced by `eps` *without* renormalising, as
/// Evidently does with `eps = 0.0001` (recent Evidently versions lower the
/// floor to `min_nonzero / 1e6` when the smallest non-zero proportion is
/// itself <= 0.0001; pass such an `eps` to reproduce that). A bin empty in
/// both samples contributes 0. Terms are summed in bin order, like
/// Evidently's loop.
///
/// `None` if the slices differ in length or are empty, either total is zero,
/// or `eps` is not a positive finite number.
pub fn psi(expected_counts: &[u64], actual_counts: &[u64], eps: f64) -> Option<f64> {
    if expected_counts.len() != actual_counts.len()
        || expected_counts.is_empty()
        || !(eps > 0.0 && eps.is_finite())
    {
        return None;
    }
    let te: u64 = expected_counts.iter().sum();
    let ta: u64 = actual_counts.iter().sum();
    if te == 0 || ta == 0 {
        return None;
    }
    let (te, ta) = (te as f64, ta as f64);
    let floor = |p: f64| if p == 0.0 { eps } else { p };
    let mut total = 0.0;
    for (&e, &a) in expected_counts.iter().zip(actual_counts) {
        let e = floor(e as f64 / te);
        let a = floor(a as f64 / ta);
        total += (a - e) * (a / e).ln();
    }
    Some(total)
}

/// Chi-square test of homogeneity of two count vectors over the same
/// categories (rating levels), as `scipy.stats.chi2_contingency([a, b],
/// correction=False)` computes it; categories empty in both samples are
/// dropped first (scipy would refuse the table).
///
/// Where KS looks at the largest CDF gap, chi-square weighs every level, so
/// it catches a shift of mass between levels that leaves the CDF close
/// (e.g. whole stars giving way to half stars).
///
/// With a single non-empty category there is nothing to compare: scipy
/// returns statistic 0, dof 0, p = 1 for that degenerate table, and so does
/// this. `None` if the slices differ in length, or either sample is empty
/// (scipy raises: a zero expected frequency).
pub fn chi2_homogeneity(a: &[u64], b: &[u64]) -> Option<ChiSquareResult> {
    if a.len() != b.len() {
        return None;
    }
    let cols: Vec<(u64, u64)> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x, y))
        .filter(|&(x, y)| x > 0 || y > 0)
        .collect();
    let ra: u64 = cols.iter().map(|c| c.0).sum();
    let rb: u64 = cols.iter().map(|c| c.1).sum();
    if cols.is_empty() || ra == 0 || rb == 0 {
        return None;
    }
    let dof = cols.len() - 1;
    if dof == 0 {
        return Some(ChiSquareResult {
            statistic: 0.0,
            dof: 0,
            pvalue: 1.0,
        });
    }
    let total = (ra + rb) as f64;
    // expected = outer(row sums, column sums) / total, then Pearson's terms
    // (obs - exp)^2 / exp flattened row by row and summed the numpy way.
    let mut terms = Vec::with_capacity(2 * cols.len());
    for (row, rsum) in [(0usize, ra as f64), (1, rb as f64)] {
        for &(x, y) in &cols {
            let obs = if row == 0 { x } else { y } as f64;
            let expected = rsum * (x + y) as f64 / total;
            let diff = obs - expected;
            terms.push(diff * diff / expected);
        }
    }
    let statistic = np_sum(&terms);
    let pvalue = ChiSquared::new(dof as f64).ok()?.sf(statistic);
    Some(ChiSquareResult {
        statistic,
        dof,
        pvalue: pvalue.clamp(0.0, 1.0),
    })
}

/// Jensen–Shannon distance (base 2, so in [0, 1]) between two discrete
/// distributions given as non-negative weights over the same bins, each
/// normalised to sum 1, as `scipy.spatial.distance.jensenshannon(p, q,
/// base=2)`.
///
/// Unlike KL divergence or PSI it is symmetric, bounded and finite when a
/// bin is empty on one side, so it needs no epsilon convention and gives a
/// drift score comparable across features.
///
/// One deliberate difference: rounding can make the divergence a hair below
/// zero for (nearly) identical inputs, where scipy returns NaN from the
/// square root; this returns 0. `None` if the slices differ in length or are
/// empty, a weight is negative or not finite, or a side sums to 0.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len()
        || p.is_empty()
        || p.iter().chain(q).any(|&x| !(x >= 0.0 && x.is_finite()))
    {
        return None;
    }
    let sp = np_sum(p);
    let sq = np_sum(q);
    if !(sp > 0.0 && sq > 0.0 && sp.is_finite() && sq.is_finite()) {
        return None;
    }
    let mut left = Vec::with_capacity(p.len());
    let mut right = Vec::with_capacity(p.len());
    for (&pi, &qi) in p.iter().zip(q) {
        let (pi, qi) = (pi / sp, qi / sq);
        let m = (pi + qi) / 2.0;
        left.push(rel_entr(pi, m));
        right.push(rel_entr(qi, m));
    }
    let mut js = np_sum(&left) + np_sum(&right);
    js /= std::f64::consts::LN_2;
    Some((js / 2.0).max(0.0).sqrt())
}

/// `scipy.special.rel_entr(x, y)` for x >= 0, y > 0 (xsf's current
/// formulation: three algebraically equal forms, each where it rounds best),
/// so that [`jensen_shannon`] matches scipy bit for bit; 0 for x == 0. The
/// divergence calls it only with y = (x + q) / 2, so y > 0 whenever x > 0.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let ratio = x / y;
    if 0.5 < ratio && ratio < 2.0 {
        x * ((x - y) / y).ln_1p()
    } else if f64::MIN_POSITIVE < ratio && ratio < f64::INFINITY {
        x * ratio.ln()
    } else {
        x * (x.ln() - y.ln())
    }
}

/// Mean and sample standard deviation (ddof = 1) in one pass (Welford), as
/// `np.mean(x), np.std(x, ddof=1)` up to rounding.
///
/// One pass so the drift job can stream ratings from the store; Welford
/// rather than sum-of-squares because the naive formula cancels badly when
/// the spread is small next to the mean (ratings cluster around 3.5).
/// A single observation has standard deviation 0 here (numpy gives NaN).
/// `None` for no observations or any non-finite value.
pub fn mean_std(xs: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    // Welford on deviations from the first value: the shift keeps a large
    // common offset (timestamps, 1e9 + small spread) out of the running mean,
    // whose rounding would otherwise leak into every later deviation.
    let mut n: u64 = 0;
    let mut shift = 0.0;
    let mut mean = 0.0;
    let mut m2 = 0.0;
    for x in xs {
        if !x.is_finite() {
            return None;
        }
        if n == 0 {
            shift = x;
        }
        let y = x - shift;
        n += 1;
        let delta = y - mean;
        mean += delta / n as f64;
        m2 += delta * (y - mean);
    }
    let (mean, std) = match n {
        0 => return None,
        1 => (shift, 0.0),
        _ => (shift + mean, (m2 / (n - 1) as f64).sqrt()),
    };
    // Only an overflow (values near f64::MAX) can get here non-finite.
    (mean.is_finite() && std.is_finite()).then_some((mean, std))
}

/// [`mean_std`] of a sample given as counts over values (e.g.
/// [`RATING_LEVELS`] and [`rating_level_counts`]), in O(levels): exact sum for
/// the mean, then the two-pass sum of squared deviations.
///
/// `None` if the slices differ in length, the total count is 0, or a value
/// with a non-zero count is not finite. One observation gives std 0.
pub fn mean_std_counts(values: &[f64], counts: &[u64]) -> Option<(f64, f64)> {
    if values.len() != counts.len() {
        return None;
    }
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return None;
    }
    // A non-finite value with a non-zero count makes the mean non-finite,
    // which the checks below turn into None.
    let used = || values.iter().zip(counts).filter(|(_, &c)| c > 0);
    let mean = used().map(|(v, &c)| v * c as f64).sum::<f64>() / n as f64;
    if n == 1 {
        return mean.is_finite().then_some((mean, 0.0));
    }
    let ss: f64 = used()
        .map(|(v, &c)| (v - mean) * (v - mean) * c as f64)
        .sum();
    let std = (ss / (n - 1) as f64).sqrt();
    (mean.is_finite() && std.is_finite()).then_some((mean, std))
}

/// Counts ratings per half-star level 0.5, 1.0, ..., 5.0 ([`RATING_LEVELS`]),
/// the one O(ratings) pass after which every drift statistic is O(levels).
///
/// Values off the grid go to the nearest level, halves rounding up (1.25 ->
/// 1.5); values below 0.5 count as 0.5 and above 5.0 as 5.0, so a corrupt
/// rating shows up as mass at the edge rather than vanishing. NaN is
/// skipped.
pub fn rating_level_counts(ratings: impl Iterator<Item = f32>) -> [u64; 10] {
    // Four interleaved histograms: consecutive ratings often hit the same
    // level, and a single counter array would serialise on that one slot.
    let mut h = [[0u64; 10]; 4];
    let mut k = 0usize;
    for r in ratings {
        if r.is_nan() {
            continue;
        }
        // floor(2r + 0.5) - 1, clamped to the grid; after the clamp the value
        // is positive, where `as` truncation is floor.
        let idx = (2.0 * r + 0.5).clamp(1.0, 10.0) as usize - 1;
        h[k & 3][idx] += 1;
        k = k.wrapping_add(1);
    }
    let mut out = [0u64; 10];
    for (i, o) in out.iter_mut().enumerate() {
        *o = h[0][i] + h[1][i] + h[2][i] + h[3][i];
    }
    out
}
