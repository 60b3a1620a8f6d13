//! Double-double arithmetic (an unevaluated sum `hi + lo` of two `f64`s, about
//! 106 significant bits) and exact `ldexp`/`frexp`.
//!
//! scipy's one-sided Smirnov distribution (`xsf/cephes/kolmogorov.h`) sums
//! binomial terms whose logarithms cancel to far below `f64` resolution; it
//! does so in the double-double type of the QD library (`dd_real.h`). The
//! operations here follow that code operation for operation, so the port in
//! `kolmogorov.rs` rounds the way scipy rounds.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// `hi + lo` with `|lo| <= ulp(hi)/2`; converting back to `f64` takes `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DD {
    pub hi: f64,
    pub lo: f64,
}

/// `fl(a + b)` and its error, assuming `|a| >= |b|`.
#[inline]
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let c = s - a;
    (s, b - c)
}

/// `fl(a + b)` and its error, for any `a`, `b` (Knuth).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let c = s - a;
    let d = b - c;
    let e = s - c;
    (s, (a - e) + d)
}

/// Veltkamp's split of `a` into two 26-bit halves with `a = hi + lo`.
#[inline]
fn split(a: f64) -> (f64, f64) {
    const SPLITTER: f64 = 134_217_729.0; // 2^27 + 1
    const SPLIT_THRESH: f64 = 6.696_928_794_914_17e299; // 2^996
    if a.abs() > SPLIT_THRESH {
        let a = a * 3.725_290_298_461_914e-9; // 2^-28
        let t = SPLITTER * a;
        let hi = t - (t - a);
        let lo = a - hi;
        (hi * 268_435_456.0, lo * 268_435_456.0) // 2^28
    } else {
        let t = SPLITTER * a;
        let hi = t - (t - a);
        (hi, a - hi)
    }
}

/// `fl(a * b)` and its exact error. QD uses a fused multiply-add; Dekker's
/// product gives the same (exact) error term without one, which matters
/// because without the `fma` target feature `f64::mul_add` is a slow
/// library call and this sits in the innermost loop of `smirnov`.
#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if !p.is_finite() {
        return (p, a.mul_add(b, -p));
    }
    let (a_hi, a_lo) = split(a);
    let (b_hi, b_lo) = split(b);
    let err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
    (p, err)
}

impl DD {
    pub const ZERO: DD = DD { hi: 0.0, lo: 0.0 };
    pub const ONE: DD = DD { hi: 1.0, lo: 0.0 };

    #[inline]
    pub fn new(hi: f64) -> DD {
        DD { hi, lo: 0.0 }
    }

    #[inline]
    pub fn is_finite(self) -> bool {
        self.hi.is_finite()
    }

    /// `dd == 0.0` in QD's sense: both words zero.
    #[inline]
    pub fn is_zero(self) -> bool {
        self.hi == 0.0 && self.lo == 0.0
    }

    pub fn floor(self) -> DD {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (h, l) = quick_two_sum(hi, self.lo.floor());
            DD { hi: h, lo: l }
        } else {
            DD { hi, lo: 0.0 }
        }
    }

    pub fn ldexp(self, e: i32) -> DD {
        DD {
            hi: ldexp(self.hi, e),
            lo: ldexp(self.lo, e),
        }
    }

    /// Mantissa with `0.5 <= |hi| < 1` (or `|hi| == 1` with a `lo` of the
    /// opposite sign) and the binary exponent, as QD's `frexp`.
    pub fn frexp(self) -> (DD, i32) {
        let (mut man, mut e) = frexp(self.hi);
        let mut b1 = ldexp(self.lo, -e);
        if man.abs() == 0.5 && man * b1 < 0.0 {
            man *= 2.0;
            b1 *= 2.0;
            e -= 1;
        }
        (DD { hi: man, lo: b1 }, e)
    }
}

impl Neg for DD {
    type Output = DD;
    #[inline]
    fn neg(self) -> DD {
        DD {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Add for DD {
    type Output = DD;
    /// The IEEE-style bound variant (Briggs and Kahan).
    #[inline]
    fn add(self, rhs: DD) -> DD {
        let (s1, s2) = two_sum(self.hi, rhs.hi);
        let (t1, t2) = two_sum(self.lo, rhs.lo);
        let s2 = s2 + t1;
        let (s1, s2) = quick_two_sum(s1, s2);
        let s2 = s2 + t2;
        let (s1, s2) = quick_two_sum(s1, s2);
        DD { hi: s1, lo: s2 }
    }
}

impl Add<f64> for DD {
    type Output = DD;
    #[inline]
    fn add(self, rhs: f64) -> DD {
        let (s1, s2) = two_sum(self.hi, rhs);
        let s2 = s2 + self.lo;
        let (s1, s2) = quick_two_sum(s1, s2);
        DD { hi: s1, lo: s2 }
    }
}

impl Sub for DD {
    type Output = DD;
    #[inline]
    fn sub(self, rhs: DD) -> DD {
        self + (-rhs)
    }
}

impl Sub<f64> for DD {
    type Output = DD;
    #[inline]
    fn sub(self, rhs: f64) -> DD {
        let (s1, s2) = two_sum(self.hi, -rhs);
        let s2 = s2 + self.lo;
        let (s1, s2) = quick_two_sum(s1, s2);
        DD { hi: s1, lo: s2 }
    }
}

impl Mul for DD {
    type Output = DD;
    #[inline]
    fn mul(self, rhs: DD) -> DD {
        let (p1, p2) = two_prod(self.hi, rhs.hi);
        let p2 = p2 + (self.hi * rhs.lo + self.lo * rhs.hi);
        let (p1, p2) = quick_two_sum(p1, p2);
        DD { hi: p1, lo: p2 }
    }
}

impl Mul<f64> for DD {
    type Output = DD;
    #[inline]
    fn mul(self, rhs: f64) -> DD {
        let (p1, e1) = two_prod(self.hi, rhs);
        let (p2, e2) = two_prod(self.lo, rhs);
        let (p1, e1) = quick_two_sum(p1, e2 + p2 + e1);
        DD { hi: p1, lo: e1 }
    }
}

impl Mul<DD> for f64 {
    type Output = DD;
    #[inline]
    fn mul(self, rhs: DD) -> DD {
        let (p1, e1) = two_prod(self, rhs.hi);
        let (p2, e2) = two_prod(self, rhs.lo);
        let (p1, e1) = quick_two_sum(p1, e2 + p2 + e1);
        DD { hi: p1, lo: e1 }
    }
}

impl Div for DD {
    type Output = DD;
    /// QD's accurate division: three quotient digits.
    #[inline]
    fn div(self, rhs: DD) -> DD {
        let q1 = self.hi / rhs.hi;
        let r = self - rhs * q1;
        let q2 = r.hi / rhs.hi;
        let r = r - rhs * q2;
        let q3 = r.hi / rhs.hi;
        let (q1, q2) = quick_two_sum(q1, q2);
        DD { hi: q1, lo: q2 } + q3
    }
}

impl Div<f64> for DD {
    type Output = DD;
    #[inline]
    fn div(self, rhs: f64) -> DD {
        self / DD::new(rhs)
    }
}

/// `x * 2^n` with a single rounding, also into the subnormal range
/// (musl's `scalbn`); Rust's standard library has no `ldexp`.
pub(crate) fn ldexp(x: f64, n: i32) -> f64 {
    let two_1023 = f64::from_bits(0x7fe0_0000_0000_0000); // 2^1023
    let two_m1022_53 = f64::from_bits(0x0360_0000_0000_0000); // 2^-1022 * 2^53 = 2^-969
    let mut y = x;
    let mut n = n;
    if n > 1023 {
        y *= two_1023;
        n -= 1023;
        if n > 1023 {
            y *= two_1023;
            n -= 1023;
            if n > 1023 {
                n = 1023;
            }
        }
    } else if n < -1022 {
        // Scale by 2^-969 rather than 2^-1022 so that the last multiplication
        // is the only one that can round into the subnormal range.
        y *= two_m1022_53;
        n += 1022 - 53;
        if n < -1022 {
            y *= two_m1022_53;
            n += 1022 - 53;
            if n < -1022 {
                n = -1022;
            }
        }
    }
    y * f64::from_bits(((0x3ff + n as i64) as u64) << 52)
}

/// `(m, e)` with `x = m * 2^e` and `0.5 <= |m| < 1`; zero, infinities and NaN
/// come back unchanged with `e = 0`, as C's `frexp`.
pub(crate) fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: normalise first.
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & 0x800f_ffff_ffff_ffff) | 0x3fe0_0000_0000_0000);
    (m, exp - 0x3fe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldexp_frexp_round_trip_and_edges() {
        for &x in &[1.0, -3.5, 0.1, 1e-310, 5e-324, 1.7e308, 123456.789] {
            let (m, e) = frexp(x);
            assert!((0.5..1.0).contains(&m.abs()), "{x}: {m}");
            assert_eq!(ldexp(m, e), x);
        }
        assert_eq!(frexp(0.0), (0.0, 0));
        assert_eq!(ldexp(1.0, -1074), 5e-324);
        assert_eq!(ldexp(1.0, -1075), 0.0); // ties to even
        assert_eq!(ldexp(1.5, -1075), 5e-324);
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(0.75, -200_000), 0.0);
        assert_eq!(ldexp(1.0, 1023), 2f64.powi(1023));
        assert_eq!(ldexp(3.0, -1060), 3.0 * f64::from_bits(1 << 14)); // 3 * 2^-1060, subnormal
    }

    #[test]
    fn dekker_product_error_is_exact() {
        // The error term must be the exact residual a*b - fl(a*b), i.e. what
        // a fused multiply-add returns.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = f64::from_bits((x >> 12) | 0x3ff0_0000_0000_0000)
                * 2f64.powi((x % 200) as i32 - 100);
            let b = f64::from_bits((x.rotate_left(29) >> 12) | 0x3ff0_0000_0000_0000) * 1e-3;
            let (p, e) = two_prod(a, b);
            assert_eq!(p, a * b);
            assert_eq!(e, a.mul_add(b, -p), "{a} * {b}");
        }
    }

    #[test]
    fn double_double_carries_the_low_word() {
        let third = DD::ONE / 3.0;
        // 3 * (1/3) in double-double is 1 to ~1e-32.
        let back = third * 3.0 - 1.0;
        assert!(back.hi.abs() < 1e-31, "{back:?}");
        let x = DD::new(1.0) + 1e-20;
        assert_eq!(x.hi, 1.0);
        assert_eq!(x.lo, 1e-20);
        assert_eq!((x - 1.0).hi, 1e-20);
    }
}
