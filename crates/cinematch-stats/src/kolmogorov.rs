//! The distribution of the Kolmogorov–Smirnov statistic, ported from scipy so
//! that drift p-values are the ones a data scientist gets from
//! `scipy.stats.ks_2samp` on the same data.
//!
//! * [`kstwo_sf`] is `scipy.stats.kstwo.sf(d, n)`: the support checks of
//!   `rv_continuous.sf` and then `_kolmogn(n, d, cdf=False)` from
//!   `scipy/stats/_ksstats.py`, which picks, following Simard and L'Ecuyer
//!   (2011), between the Ruben–Gambino closed forms, the Durbin matrix
//!   algorithm (Marsaglia–Tsang–Wang), Pomeranz's recursion, the Pelz–Good
//!   expansion and twice the one-sided Smirnov tail.
//! * [`smirnov`] is `scipy.special.smirnov(n, d)` (`xsf/cephes/kolmogorov.h`),
//!   the one-sided tail summed in double-double arithmetic.
//! * [`prob_outside_square`] and [`outer_prob_inside`] are the exact
//!   two-sample lattice-path counts of `scipy.stats._stats_py` and
//!   `_stats_pythran.py` that `ks_2samp` uses for samples up to 10 000.
//!
//! Branch boundaries, loop orders and constants are scipy's; where scipy sums
//! with numpy the sum is numpy's pairwise sum, and where numpy promotes to
//! x87 extended precision (the `n!/n^n` scaling after a rescale by the
//! `np.longdouble` constants) double-double takes its place. What remains
//! different, measured with `drift_stats.py --sweep` (see `tests.rs`):
//!
//! * Dot products: numpy's `convolve` (Pomeranz) and `matmul` (Durbin) go
//!   through BLAS, whose summation order is not reproduced; in the Pomeranz
//!   branch (n <= 140, 0.75 < n d^2 <= 4) the survival function is
//!   `1 - cdf` with the CDF near 1, which turns that ulp-level noise into up
//!   to 1.6e-12 relative (scipy's own rounding error there is of the same
//!   size). Everywhere else the differences are below 1e-14.
//! * `smirnov` obtains most terms of its sum from the previous one by their
//!   ratio instead of from scratch (10-20x faster for n ~ 1e5, where scipy
//!   takes 0.3 s); terms are re-anchored to scipy's evaluation every
//!   `SMIRNOV_ANCHOR` terms, and the results agree with scipy to 2e-15.

use super::ddouble::{frexp, ldexp, DD};
use super::np_sum;

const PI: f64 = std::f64::consts::PI;
const LN2: f64 = std::f64::consts::LN_2;
/// `_E128`, `_EP128`, `_EM128` of `_ksstats.py`: rescaling step and factors.
const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128
/// cephes `MINLOG`: `exp` of anything below underflows.
const MINLOG: f64 = -7.083_964_185_322_641e2;

fn clip01(p: f64) -> f64 {
    // np.clip(p, 0, 1); NaN passes through, but callers never produce one
    // from finite input.
    p.clamp(0.0, 1.0)
}

/// `scipy.stats.kstwo.sf(d, n)`: P(D_n >= d) for the two-sided one-sample
/// statistic with `n` observations (`n` a whole number >= 1, as `ks_2samp`
/// passes `round(m*n/(m+n))`).
pub(crate) fn kstwo_sf(d: f64, n: f64) -> f64 {
    if d.is_nan() || n.is_nan() || n < 1.0 || n != n.round() {
        return f64::NAN;
    }
    // rv_continuous.sf: 1 at or below the support's lower end 0.5/n, 0 at or
    // above the upper end 1 (the support is open there).
    if d <= 0.5 / n {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    kolmogn_sf(n as u64, d)
}

/// `_kolmogn(n, x, cdf=False)`.
fn kolmogn_sf(n: u64, x: f64) -> f64 {
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: 1/2n <= x <= 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            // np.prod(np.arange(1, n+1) * (1.0/n) * (2*t - 1))
            let inv = 1.0 / nf;
            let c = 2.0 * t - 1.0;
            (1..=n)
                .map(|i| i as f64 * inv * c)
                .fold(1.0, |acc, v| acc * v)
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip01(1.0 - prob);
    }
    if t >= nf - 1.0 {
        // Ruben–Gambino: 1 - 1/n <= x.
        return clip01(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip01(2.0 * smirnov(n, x));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            return sf_from_cdf(kolmogn_dmtw_cdf(n, x));
        }
        if nxsquared <= 4.0 {
            return sf_from_cdf(kolmogn_pomeranz_cdf(n, x));
        }
        return clip01(2.0 * smirnov(n, x));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip01(2.0 * smirnov(n, x));
    }
    // Below 2.2 the SF is computed as 1 - CDF (nxsquared < 18 here, so the
    // CDF is never short-circuited to 1).
    if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        sf_from_cdf(kolmogn_dmtw_cdf(n, x))
    } else {
        clip01(1.0 - kolmogn_pelz_good_cdf(nf, x))
    }
}

/// log(n!/n^n) by Stirling's series with `n log n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // _STIRLING_COEFFS, B_2j / (2j (2j-1)) for j = 8..1, rounded to f64.
    const STIRLING: [f64; 8] = [
        -0.029550653594771242,
        0.00641025641025641,
        -0.0019175269175269176,
        0.0008417508417508417,
        -0.0005952380952380953,
        0.0007936507936507937,
        -0.002777777777777778,
        0.08333333333333333,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    // np.polyval: Horner from the highest coefficient, starting at 0.
    let poly = STIRLING.iter().fold(0.0, |y, &c| y * x + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// Product of square matrices stored row-major, for the Durbin algorithm.
/// Four rows of the result are built per pass over `b`, so each row of `b`
/// is loaded once per four uses (the matrices reach 115 x 115 for n = 1e5,
/// more than L1 holds). Each entry is still summed over k in order.
fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    let mut i = 0;
    while i + 4 <= m {
        let (c0, rest) = c[i * m..(i + 4) * m].split_at_mut(m);
        let (c1, rest) = rest.split_at_mut(m);
        let (c2, c3) = rest.split_at_mut(m);
        for k in 0..m {
            let (a0, a1, a2, a3) = (
                a[i * m + k],
                a[(i + 1) * m + k],
                a[(i + 2) * m + k],
                a[(i + 3) * m + k],
            );
            let bk = &b[k * m..(k + 1) * m];
            for (j, &bkj) in bk.iter().enumerate() {
                c0[j] += a0 * bkj;
                c1[j] += a1 * bkj;
                c2[j] += a2 * bkj;
                c3[j] += a3 * bkj;
            }
        }
        i += 4;
    }
    for i in i..m {
        let ci = &mut c[i * m..(i + 1) * m];
        for k in 0..m {
            let aik = a[i * m + k];
            let bk = &b[k * m..(k + 1) * m];
            for (cij, &bkj) in ci.iter_mut().zip(bk) {
                *cij += aik * bkj;
            }
        }
    }
    c
}

/// `_kolmogn_DMTW(n, d, cdf=True)`: Durbin's matrix algorithm as Marsaglia,
/// Tsang and Wang evaluate it; exact up to rounding, O(k^3 log n) for
/// k = ceil(n d).
fn kolmogn_dmtw_cdf(n: u64, d: f64) -> DD {
    if d >= 1.0 {
        return DD::ONE;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return DD::ZERO;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let base = 2.0 * h - 1.0;
    let first = if base > 0.0 { base.powf(m as f64) } else { 0.0 };
    let tt = first - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }

    let mut hpwr = vec![0.0; m * m];
    for i in 0..m {
        hpwr[i * m + i] = 1.0;
    }
    let mut nn = n;
    let mut expnt: i32 = 0;
    let mut hexpnt: i32 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = matmul(&hpwr, &hm, m);
            expnt += hexpnt;
        }
        nn /= 2;
        if nn == 0 {
            break; // scipy squares once more here; the result is unused
        }
        hm = matmul(&hm, &hm, m);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for x in hm.iter_mut() {
                *x /= EP128;
            }
            hexpnt += E128;
        }
    }

    // Multiply by n!/n^n. scipy does this in f64 until the first rescaling,
    // which multiplies by its `longdouble` constant and so continues in x87
    // extended precision; double-double stands in for that (see `Tail`).
    let mut p = Tail::new(hpwr[(k - 1) * m + (k - 1)]);
    for i in 1..=n {
        p.mul_div(i as f64, nf);
        if p.abs() < EM128 {
            p.scale(EP128);
            expnt -= E128;
        }
    }
    p.ldexp(expnt);
    p.clipped()
}

/// A probability that scipy computes in `f64` until it is rescaled by one of
/// `_ksstats.py`'s `np.longdouble` powers of two, after which numpy promotes
/// it (and the final `1 - p`) to x87 80-bit precision. Double-double is used
/// from that point on: it is more precise than 80-bit, so the remaining
/// difference from scipy is scipy's own extended-precision rounding, not
/// `f64`'s, which matters where `1 - p` cancels (p close to 1).
#[derive(Clone, Copy)]
struct Tail {
    v: DD,
    extended: bool,
}

impl Tail {
    fn new(p: f64) -> Self {
        Tail {
            v: DD::new(p),
            extended: false,
        }
    }

    fn abs(&self) -> f64 {
        self.v.hi.abs()
    }

    /// `p = i * p / n`
    fn mul_div(&mut self, i: f64, n: f64) {
        self.v = if self.extended {
            self.v * i / n
        } else {
            DD::new(i * self.v.hi / n)
        };
    }

    /// `p *= m`
    fn mul(&mut self, m: f64) {
        self.v = if self.extended {
            self.v * m
        } else {
            DD::new(self.v.hi * m)
        };
    }

    /// Multiplication by a power of two (exact) that switches to extended.
    fn scale(&mut self, factor: f64) {
        self.v = DD {
            hi: self.v.hi * factor,
            lo: self.v.lo * factor,
        };
        self.extended = true;
    }

    fn ldexp(&mut self, e: i32) {
        if e != 0 {
            self.v = self.v.ldexp(e);
        }
    }

    /// `np.clip(p, 0, 1)`, keeping the low word.
    fn clipped(self) -> DD {
        if self.v.hi < 0.0 {
            DD::ZERO
        } else if self.v.hi > 1.0 || (self.v.hi == 1.0 && self.v.lo > 0.0) {
            DD::ONE
        } else {
            self.v
        }
    }
}

/// `clip(1 - cdf)` rounded to `f64` once, as scipy stores its (possibly
/// extended-precision) survival probability.
fn sf_from_cdf(cdf: DD) -> f64 {
    clip01((DD::ONE - cdf).hi)
}

/// Row endpoints of Pomeranz's recursion (`_pomeranz_compute_j1j2`).
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let ip1div2 = (i + 1) / 2;
        let ip1mod2 = (i + 1) % 2;
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `_kolmogn_Pomeranz(n, x, cdf=True)`: Pomeranz's (1974) exact recursion.
fn kolmogn_pomeranz_cdf(n: u64, x: f64) -> DD {
    let nf = n as f64;
    let ni = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![0.0; npwrs];
    let mut twogpower = vec![0.0; npwrs];
    let mut onem2gpower = vec![0.0; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i32 = 0;
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) =
        (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gpower[m] = gpower[m - 1] * g_over_n / m as f64;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m as f64;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m as f64;
    }

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let (mut j1, _) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    let mut conv = Vec::with_capacity(2 * npwrs);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (nj1, nj2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = nj2 - k1 + 1;
        if ln2 > 0 {
            // np.convolve(V0[k1 - V0s : k1 - V0s + ln2], pwrs[:ln2]), full mode.
            let start = (k1 - v0s).max(0) as usize;
            let end = ((k1 - v0s + ln2).max(0) as usize).min(npwrs);
            let a = &v0[start.min(end)..end];
            let b = &pwrs[..(ln2 as usize).min(npwrs)];
            conv.clear();
            if !a.is_empty() && !b.is_empty() {
                conv.resize(a.len() + b.len() - 1, 0.0);
                for (p, &av) in a.iter().enumerate() {
                    for (q, &bv) in b.iter().enumerate() {
                        conv[p + q] += av * bv;
                    }
                }
            }
            let conv_start = (nj1 - k1).max(0) as usize;
            let conv_len = (nj2 - nj1 + 1).max(0) as usize;
            let avail = conv
                .len()
                .saturating_sub(conv_start)
                .min(conv_len)
                .min(npwrs);
            if avail > 0 {
                v1[..avail].copy_from_slice(&conv[conv_start..conv_start + avail]);
            }
            let vmax = v1.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                v1.iter_mut().for_each(|x| *x *= EP128);
                expnt -= E128;
            }
            v1s = v0s + nj1 - k1;
        }
    }
    let idx = ni - v1s;
    let mut ans = Tail::new(if idx >= 0 && (idx as usize) < npwrs {
        v1[idx as usize]
    } else {
        0.0
    });
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans.scale(EM128);
            expnt += E128;
        }
        ans.mul(m as f64);
    }
    ans.ldexp(expnt);
    ans.clipped()
}

/// `_kolmogn_PelzGood(n, x, cdf=True)`: the Li-Chien/Korolyuk expansion in
/// Pelz and Good's small-z form, accurate for large n.
fn kolmogn_pelz_good_cdf(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi_squared = PI.powf(2.0);
    let pi_four = PI.powf(4.0);
    let pi_six = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();
    let sqrt3 = 3f64.sqrt();

    let z = n.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z.powf(2.0), z.powf(3.0), z.powf(4.0), z.powf(6.0));
    let qlog = -pi_squared / 8.0 / zsquared;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();

    let k1a = -zsquared;
    let k1b = pi_squared / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi_squared / 4.0;
    let k2c = pi_four * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi_six * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi_four * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi_squared * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powf(8.0);

    let mut kk = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = 2 * k - 1;
        let (msq, mfour, msix) = (
            (m * m) as f64,
            (m * m * m * m) as f64,
            (m * m * m * m * m * m) as f64,
        );
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msq,
            k2a + k2b * msq + k2c * mfour,
            k3a + k3b * msq + k3c * mfour + k3d * msix,
        ];
        for (a, c) in kk.iter_mut().zip(coeffs) {
            *a *= qpower;
            *a += c;
        }
    }
    let div = [z, 6.0 * zfour, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (a, d) in kk.iter_mut().zip(div) {
        *a *= q;
        *a *= sqrt2pi;
        *a /= d;
    }

    let q = (-pi_squared / 2.0 / zsquared).exp();
    let ks: Vec<i64> = (1..=maxk).rev().collect();
    let qpwers: Vec<f64> = ks.iter().map(|&k| q.powf((k * k) as f64)).collect();
    let t2: Vec<f64> = ks
        .iter()
        .zip(&qpwers)
        .map(|(&k, &qp)| (k * k) as f64 * qp)
        .collect();
    let mut k2extra = np_sum(&t2);
    k2extra *= pi_squared * sqrt2pi / (-36.0 * zthree);
    kk[2] += k2extra;
    let sqrt3z = sqrt3 * z;
    let t3: Vec<f64> = ks
        .iter()
        .zip(&qpwers)
        .map(|(&k, &qp)| {
            let kspi = PI * k as f64;
            (sqrt3z + kspi) * (sqrt3z - kspi) * (k * k) as f64 * qp
        })
        .collect();
    let mut k3extra = np_sum(&t3);
    k3extra *= pi_squared * sqrt2pi / (216.0 * zsix);
    kk[3] += k3extra;
    for (i, a) in kk.iter_mut().enumerate() {
        *a /= n.powf(i as f64 / 2.0);
    }
    0.0 + kk[0] + kk[1] + kk[2] + kk[3]
}

// ---------------------------------------------------------------------------
// One-sided Smirnov distribution (xsf/cephes/kolmogorov.h)
// ---------------------------------------------------------------------------

/// `n` above which `smirnov` switches to the closed-form approximation.
const SMIRNOV_MAX_COMPUTE_N: u64 = 1_000_000;
const SM_UPPER_MAX_TERMS: i64 = 3;
const SM_UPPERSUM_MIN_N: i64 = 10;
/// Keeps both words of a scaled double-double normalised.
const SM_MAX_EXPONENT: i32 = 960;
/// Terms between exact (scipy-style) evaluations of a Smirnov term; the ones
/// in between come from the term ratio (see `smirnov`).
const SMIRNOV_ANCHOR: i64 = 64;

/// `nextPowerOf2` of kolmogorov.h (which rounds up by an ulp rather than to a
/// power of two; kept as is because it sets where powers are split).
fn next_power_of_2(x: f64) -> f64 {
    let q = ldexp(x, 1 - 53);
    let l = (q + x).abs();
    if l == 0.0 {
        x.abs()
    } else {
        let lint = l as i32;
        if lint as f64 == l {
            lint as f64
        } else {
            l
        }
    }
}

/// `floor(n*x)` and the fractional part, exactly.
fn mod_nx(n: u64, x: f64) -> (f64, i64, f64) {
    let nx_d = (n as f64) * DD::new(x);
    let nxfloor_d = nx_d.floor();
    let alpha_d = nx_d - nxfloor_d;
    let mut alpha = alpha_d.hi;
    let mut nxfloor = nxfloor_d.hi as i64;
    if alpha == 1.0 {
        nxfloor += 1;
        alpha = 0.0;
    }
    (alpha, nxfloor, nx_d.hi)
}

/// Binomial coefficient kept as a double-double mantissa and an exponent:
/// C(n, j+1) from C(n, j).
fn update_binomial(cman: &mut DD, cexpt: &mut i64, n: i64, j: i64) {
    let rat = DD::new((n - j) as f64) / (j as f64 + 1.0);
    let (man2, e) = (*cman * rat).frexp();
    *cexpt += e as i64;
    *cman = man2;
}

/// The product of binomial update factors (n-j)/(j+1) not yet applied to
/// the running coefficient, kept as a numerator and a denominator so that
/// between exact term evaluations there is no double-double division (which
/// dominated the run time). The coefficient then differs from scipy's chain
/// by ~1e-30 relative, far below what reaches an `f64` result.
struct PendingBinomial {
    num: DD,
    den: DD,
    expt: i64,
}

impl PendingBinomial {
    fn new() -> Self {
        PendingBinomial {
            num: DD::ONE,
            den: DD::ONE,
            expt: 0,
        }
    }

    fn push(&mut self, n: i64, j: i64) {
        self.num = self.num * (n - j) as f64;
        self.den = self.den * (j + 1) as f64;
        if self.num.hi > 1e250 || self.den.hi > 1e250 {
            let (nm, ne) = self.num.frexp();
            let (dm, de) = self.den.frexp();
            self.num = nm;
            self.den = dm;
            self.expt += ne as i64 - de as i64;
        }
    }

    fn apply(&mut self, cman: &mut DD, cexpt: &mut i64) {
        let (man, e) = (*cman * (self.num / self.den)).frexp();
        *cman = man;
        *cexpt += e as i64 + self.expt;
        *self = PendingBinomial::new();
    }
}

/// `a^m` trading a little accuracy for speed: `pow` on the high word and a
/// first-order correction for the low word.
fn pow_d(a: DD, m: i64) -> DD {
    if m <= 0 {
        if m == 0 {
            return DD::ONE;
        }
        return DD::ONE / pow_d(a, -m);
    }
    if a.is_zero() {
        return DD::ZERO;
    }
    let ans = a.hi.powf(m as f64);
    let r = a.lo / a.hi;
    let mf = m as f64;
    let mut adj = mf * r;
    if adj.abs() > 1e-8 {
        if adj.abs() < 1e-4 {
            adj += (mf * r) * ((mf - 1.0) / 2.0 * r);
        } else {
            // Unreachable for n <= 1e6 (|r| <= 2^-53); scipy uses cephes expm1.
            adj = (mf * r.ln_1p()).exp_m1();
        }
    }
    DD::new(ans) + ans * adj
}

fn pow2(a: f64, b: f64, m: i64) -> f64 {
    pow_d(DD::new(a) + b, m).hi
}

/// `a^m` as (mantissa, binary exponent), splitting the power so no
/// intermediate underflows.
fn pow2_scaled_d(a: DD, m: i64) -> (DD, i64) {
    if m <= 0 {
        if m == 0 {
            return (DD::ONE, 0);
        }
        let (ans, ae1) = pow2_scaled_d(a, -m);
        let (ans, ae2) = (DD::ONE / ans).frexp();
        return (ans, -ae1 + ae2 as i64);
    }
    let (y, ye) = a.frexp();
    let ye = ye as i64;
    if m == 1 {
        return (y, ye);
    }
    let mut max_expt = SM_MAX_EXPONENT as i64;
    if (m as f64) * (y.hi - 1.0) / y.hi < -(SM_MAX_EXPONENT as f64) * LN2 {
        let lg2y = y.hi.ln() / LN2;
        let lg_ans = m as f64 * lg2y;
        if lg_ans <= -(SM_MAX_EXPONENT as f64) {
            max_expt =
                (next_power_of_2(-(SM_MAX_EXPONENT as f64) / lg2y + 1.0) / 2.0) as i32 as i64;
        }
    }
    if m <= max_expt {
        let ans1 = pow_d(y, m);
        let (ans, ans_e) = ans1.frexp();
        return (ans, ans_e as i64 + m * ye);
    }
    let q = m / max_expt;
    let r = m % max_expt;
    let (y2r, y2r_e) = pow2_scaled_d(y, r);
    let (y2m, y2m_e) = pow2_scaled_d(y, max_expt);
    let (y2mq, mut y2mq_e) = pow2_scaled_d(y2m, q);
    let (ans, ans_e) = (y2r * y2mq).frexp();
    y2mq_e += y2m_e * q;
    let mut ans_e = ans_e as i64 + y2mq_e + y2r_e;
    ans_e += m * ye;
    (ans, ans_e)
}

/// `((a+b)/(c+d))^m` in double-double.
fn pow4_d(a: f64, b: f64, c: f64, d: f64, m: i64) -> DD {
    if m <= 0 {
        if m == 0 {
            return DD::ONE;
        }
        return pow4_d(c, d, a, b, -m);
    }
    let aa = DD::new(a) + b;
    let cc = DD::new(c) + d;
    if aa.is_zero() {
        return if cc.is_zero() {
            DD {
                hi: f64::NAN,
                lo: f64::NAN,
            }
        } else {
            DD::ZERO
        };
    }
    if cc.is_zero() {
        let inf = if aa.hi < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return DD { hi: inf, lo: inf };
    }
    pow_d(aa / cc, m)
}

fn ldexp_i64(x: DD, e: i64) -> DD {
    x.ldexp(e.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
}

/// One term of the Birnbaum–Tingey sum,
/// `A_v = C(n,v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1)`, as a double-double
/// mantissa and a binary exponent (scipy's `computeAv` before its `ldexp`).
fn compute_av_scaled(n: i64, x: f64, v: i64, cman: DD, cexpt: i64) -> (DD, i64) {
    let nf = n as f64;
    let t2x = DD::new((n - v) as f64) / nf - x;
    let (t2, t2e) = pow2_scaled_d(t2x, n - v);
    let t1x = DD::new(v as f64) / nf + x;
    let (t1, t1e) = pow2_scaled_d(t1x, v - 1);
    let ans = t1 * t2 * cman;
    (ans, cexpt + t1e + t2e)
}

/// `scipy.special.smirnov(n, x)`: P(D_n^+ >= x), the one-sided
/// Kolmogorov–Smirnov tail for `n` observations.
pub(crate) fn smirnov(n: u64, x: f64) -> f64 {
    smirnov_impl(n, x, true)
}

/// [`smirnov`], optionally (`allow_ratio = false`, for tests) evaluating
/// every term from scratch exactly as scipy does.
pub(crate) fn smirnov_impl(n: u64, x: f64, allow_ratio: bool) -> f64 {
    if x.is_nan() || n == 0 || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let ni = n as i64;
    let nf = n as f64;
    let (alpha, nxfl, _nx) = mod_nx(n, x);
    let mut n1mxfl = ni - nxfl - if alpha == 0.0 { 0 } else { 1 };
    let mut n1mxceil = ni - nxfl;
    if alpha == 0.0 {
        n1mxfl -= 1;
        n1mxceil += 1;
    }

    // x <= 1/n
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = pow2(1.0, x, ni - 1);
        return 1.0 - x * t;
    }
    // The tail underflows.
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    // x >= 1 - 1/n
    if nxfl >= ni - 1 {
        return pow2(1.0, -x, ni);
    }
    if n > SMIRNOV_MAX_COMPUTE_N {
        // p ~ e^(-(6nx+1)^2 / 18n)
        let logp = -(6.0 * nf * x + 1.0).powf(2.0) / 18.0 / nf;
        return if logp < -LN2 {
            logp.exp()
        } else {
            1.0 - (-logp.exp_m1())
        };
    }

    let n_upper_terms = ni - n1mxceil + 1;
    let use_upper = (n_upper_terms <= 1 && x < 0.5)
        || (ni >= SM_UPPERSUM_MIN_N && n_upper_terms <= SM_UPPER_MAX_TERMS && x <= 0.5 / nf.sqrt());

    let (start, step, n_terms, first_aj) = if use_upper {
        let t1 = pow4_d(1.0, x, 1.0, 0.0, ni - 1);
        (ni, -1i64, ni - n1mxceil + 1, t1)
    } else {
        let t2 = pow4_d(1.0, -x, 1.0, 0.0, ni);
        (0, 1i64, n1mxfl + 1, t2 / x)
    };
    let vmid = ni / 2;
    let mut cman = DD::ONE;
    let mut cexpt: i64 = 0;
    let mut aj_sum = DD::ZERO + first_aj;
    update_binomial(&mut cman, &mut cexpt, ni, 0);

    // scipy evaluates every term from scratch (two scaled double-double
    // powers, ~1 us), which for n ~ 1e5 takes over 100 ms. Here a term is
    // mostly obtained from the previous one by the ratio A_{v+1}/A_v, which
    // needs only exp and log1p, and recomputed scipy's way every
    // SMIRNOV_ANCHOR terms so that rounding cannot accumulate: measured
    // against the exact evaluation the sum moves by < 1e-14 relative.
    let use_ratio = allow_ratio && step > 0 && n_terms > 2 * SMIRNOV_ANCHOR;
    let alpha_f = alpha;
    // The current term as mant * 2^expo (kept apart so tiny terms do not
    // underflow before they are added, exactly as scipy's ldexp does last).
    let mut mant = 0.0f64;
    let mut expo: i64 = 0;
    let mut pending = PendingBinomial::new();

    let mut j = 1;
    while j < n_terms {
        let v = start + j * step;
        let aj = if !use_ratio || (j - 1) % SMIRNOV_ANCHOR == 0 {
            if use_ratio {
                pending.apply(&mut cman, &mut cexpt);
            }
            let (m, e) = compute_av_scaled(ni, x, v, cman, cexpt);
            let (fm, fe) = frexp(m.hi);
            mant = fm;
            expo = e + fe as i64;
            ldexp_i64(m, e)
        } else {
            // A_v / A_{v-1} with u = v - 1, P_u = n x + u, Q_u = n - n x - u:
            // (n-u)/(u+1) * P_{u+1}/Q_{u+1}
            //   * exp((u-1) log1p(1/P_u) + (n-u) log1p(-1/Q_u))
            let u = v - 1;
            let p_u = (nxfl + u) as f64 + alpha_f;
            let p_u1 = (nxfl + u + 1) as f64 + alpha_f;
            let q_u = (ni - nxfl - u) as f64 - alpha_f;
            let q_u1 = (ni - nxfl - u - 1) as f64 - alpha_f;
            let e = (u - 1) as f64 * (1.0 / p_u).ln_1p() + (ni - u) as f64 * (-1.0 / q_u).ln_1p();
            let ratio = (ni - u) as f64 / (u + 1) as f64 * (p_u1 / q_u1) * e.exp();
            mant *= ratio;
            if !(2f64.powi(-500)..=2f64.powi(500)).contains(&mant.abs()) {
                let (fm, fe) = frexp(mant);
                mant = fm;
                expo += fe as i64;
            }
            DD::new(ldexp(
                mant,
                expo.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            ))
        };
        if aj.is_finite() && !aj.is_zero() {
            aj_sum = aj_sum + aj;
        }
        if !aj.is_zero() {
            if (4 * (n_terms - j)) as f64 * aj.hi.abs() < f64::EPSILON * aj_sum.hi
                && j != n_terms - 1
            {
                break;
            }
        } else if j > vmid {
            break;
        }
        if use_ratio {
            pending.push(ni, j);
        } else {
            update_binomial(&mut cman, &mut cexpt, ni, j);
        }
        j += 1;
    }
    let prob = (x * aj_sum).hi;
    let sf = if step < 0 { 1.0 - prob } else { prob };
    clip01(sf)
}

// ---------------------------------------------------------------------------
// Exact two-sample null distribution (scipy.stats._stats_py / _stats_pythran)
// ---------------------------------------------------------------------------

/// `_compute_prob_outside_square(n, h)`: P(D_{n,n} >= h/n) for two samples of
/// equal size n, as an alternating sum evaluated Horner-style.
pub(crate) fn prob_outside_square(n: i64, h: i64) -> f64 {
    let mut p = 0.0;
    let mut k = (n as f64 / h as f64).floor() as i64;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// `_compute_outer_prob_inside_method(m, n, g, h)`: the proportion of lattice
/// paths from (0,0) to (m,n) that leave the band |x/m - y/n| < h/lcm(m,n),
/// by Viehmann's recursion for 1 - p (Hodges' inside method).
pub(crate) fn outer_prob_inside(m: i64, n: i64, g: i64, h: i64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    let clamp = |i: i64| (i.max(0) as usize).min(len_a);
    a[clamp(minj)..clamp(maxj)]
        .iter_mut()
        .for_each(|x| *x = 0.0);
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let src = (jj + minj - lastminj) as usize;
            val = (a[src] * fi + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let lo = clamp(maxj - minj);
            let hi = clamp(maxj - minj + (lastlen - curlen));
            a[lo..hi].iter_mut().for_each(|x| *x = 1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}
