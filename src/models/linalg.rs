//! Small numeric kernels shared by the algorithms and the serving path.
//!
//! **Reproducibility.** An f32 dot product's value depends on the order of
//! its additions, so it is pinned down here: eight lanes, lane `l` summing
//! `a[8c + l] · b[8c + l]` over chunks `c` in order, the lanes reduced by
//! halving (`(l0+l4, l1+l5, l2+l6, l3+l7)`, then pairs), plus the leftover
//! `k mod 8` products summed sequentially. The AVX2 kernel (one 256-bit
//! register), the SSE2 kernel (two 128-bit registers) and the portable
//! fallback all compute exactly this, without fused multiply-adds, so a
//! model's numbers are bit-identical whichever kernel a CPU gets.
//!
//! Intrinsics rather than auto-vectorization: LLVM's SLP vectorizer turns the
//! portable version into 64-bit pairs, several times slower.

/// Width of the accumulator in the dot-product kernels.
const LANES: usize = 8;

/// Dot product of two equally long f32 slices with the reproducible lane
/// order described in the module docs.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        x86::dot_sse2(a, b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dot_portable(a, b)
    }
}

/// The reference implementation every kernel must match bit for bit.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let chunks = n / LANES;
    let mut acc = [0.0f32; LANES];
    for (x, y) in a[..chunks * LANES]
        .chunks_exact(LANES)
        .zip(b[..chunks * LANES].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let h = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    ((h[0] + h[2]) + (h[1] + h[3])) + tail_dot(&a[chunks * LANES..n], &b[chunks * LANES..n])
}

#[inline(always)]
fn tail_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut t = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        t += x * y;
    }
    t
}

/// `out[j] = base + bias[j] + pu · q_j` for every row `q_j` of `q`
/// (row-major, `pu.len()` wide): the serving hot path. Rows are processed
/// four at a time so the additions of four independent dot products overlap
/// instead of waiting on one another; each dot product still follows the
/// reference lane order, so scores equal [`dot`]-based predictions exactly.
pub(crate) fn score_rows(pu: &[f32], q: &[f32], bias: &[f32], base: f32, out: &mut [f32]) {
    let k = pu.len();
    assert!(k > 0 && q.len() == out.len() * k && bias.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just checked; lengths were asserted.
            unsafe { x86::score_rows_avx2(pu, q, bias, base, out) };
        } else {
            x86::score_rows_sse2(pu, q, bias, base, out);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for ((o, qj), b) in out.iter_mut().zip(q.chunks_exact(k)).zip(bias) {
        *o = base + b + dot_portable(pu, qj);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::dot_avx2;

/// Asks the CPU to start loading `row` into cache. SGD visits rows in random
/// order, so without this every update waits on a cache miss for the
/// factor rows it is about to touch.
#[inline(always)]
pub(crate) fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // One prefetch per 64-byte line (16 floats).
        for line in row.chunks(16) {
            // SAFETY: prefetching is a hint that never faults, and the
            // pointer is derived from a live slice anyway.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>())
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{tail_dot, LANES};

    /// `(h0 + h2) + (h1 + h3)` of a 4-lane vector.
    #[inline(always)]
    fn reduce4(h: __m128) -> f32 {
        // SAFETY: SSE is part of the x86_64 baseline.
        unsafe {
            let q = _mm_add_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps::<1>(q, q)))
        }
    }

    /// SSE2 is part of x86_64, so this kernel needs no runtime check.
    #[inline(always)]
    pub fn dot_sse2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let chunks = n / LANES;
        // SAFETY: loads read floats [8c, 8c + 8) with c < chunks, inside both
        // slices; SSE2 is always available on x86_64.
        let h = unsafe {
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut lo = _mm_setzero_ps();
            let mut hi = _mm_setzero_ps();
            for c in 0..chunks {
                let o = c * LANES;
                lo = _mm_add_ps(
                    lo,
                    _mm_mul_ps(_mm_loadu_ps(pa.add(o)), _mm_loadu_ps(pb.add(o))),
                );
                hi = _mm_add_ps(
                    hi,
                    _mm_mul_ps(_mm_loadu_ps(pa.add(o + 4)), _mm_loadu_ps(pb.add(o + 4))),
                );
            }
            _mm_add_ps(lo, hi)
        };
        reduce4(h) + tail_dot(&a[chunks * LANES..n], &b[chunks * LANES..n])
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let chunks = n / LANES;
        // SAFETY: loads read floats [8c, 8c + 8) with c < chunks.
        let h = unsafe {
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = _mm256_setzero_ps();
            for c in 0..chunks {
                let o = c * LANES;
                acc = _mm256_add_ps(
                    acc,
                    _mm256_mul_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o))),
                );
            }
            _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc))
        };
        reduce4(h) + tail_dot(&a[chunks * LANES..n], &b[chunks * LANES..n])
    }

    /// # Safety
    /// The CPU must support AVX2; `q.len() == out.len() * pu.len()` and
    /// `bias.len() == out.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn score_rows_avx2(pu: &[f32], q: &[f32], bias: &[f32], base: f32, out: &mut [f32]) {
        let k = pu.len();
        let chunks = k / LANES;
        let m = out.len();
        let mut j = 0;
        while j + 4 <= m {
            // SAFETY: rows j..j+4 exist (j + 4 ≤ m), each k floats long, and
            // loads stay below 8·chunks ≤ k within each row.
            let h = unsafe {
                let pp = pu.as_ptr();
                let q0 = q.as_ptr().add(j * k);
                let (q1, q2, q3) = (q0.add(k), q0.add(2 * k), q0.add(3 * k));
                let mut a0 = _mm256_setzero_ps();
                let mut a1 = _mm256_setzero_ps();
                let mut a2 = _mm256_setzero_ps();
                let mut a3 = _mm256_setzero_ps();
                for c in 0..chunks {
                    let o = c * LANES;
                    let x = _mm256_loadu_ps(pp.add(o));
                    a0 = _mm256_add_ps(a0, _mm256_mul_ps(x, _mm256_loadu_ps(q0.add(o))));
                    a1 = _mm256_add_ps(a1, _mm256_mul_ps(x, _mm256_loadu_ps(q1.add(o))));
                    a2 = _mm256_add_ps(a2, _mm256_mul_ps(x, _mm256_loadu_ps(q2.add(o))));
                    a3 = _mm256_add_ps(a3, _mm256_mul_ps(x, _mm256_loadu_ps(q3.add(o))));
                }
                let fold = |a: __m256| {
                    _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a))
                };
                [fold(a0), fold(a1), fold(a2), fold(a3)]
            };
            for (r, hr) in h.into_iter().enumerate() {
                let row = &q[(j + r) * k..(j + r + 1) * k];
                let d = reduce4(hr) + tail_dot(&pu[chunks * LANES..], &row[chunks * LANES..]);
                out[j + r] = base + bias[j + r] + d;
            }
            j += 4;
        }
        for jj in j..m {
            // SAFETY: AVX2 is enabled in this function.
            out[jj] = base + bias[jj] + unsafe { dot_avx2(pu, &q[jj * k..(jj + 1) * k]) };
        }
    }

    /// The SSE2 (x86_64 baseline) version of [`score_rows_avx2`].
    pub fn score_rows_sse2(pu: &[f32], q: &[f32], bias: &[f32], base: f32, out: &mut [f32]) {
        let k = pu.len();
        assert!(q.len() == out.len() * k && bias.len() == out.len());
        let chunks = k / LANES;
        let m = out.len();
        let mut j = 0;
        while j + 4 <= m {
            // SAFETY: as in `score_rows_avx2`; SSE2 is always available.
            let h = unsafe {
                let pp = pu.as_ptr();
                let q0 = q.as_ptr().add(j * k);
                let rows = [q0, q0.add(k), q0.add(2 * k), q0.add(3 * k)];
                let mut lo = [_mm_setzero_ps(); 4];
                let mut hi = [_mm_setzero_ps(); 4];
                for c in 0..chunks {
                    let o = c * LANES;
                    let (xl, xh) = (_mm_loadu_ps(pp.add(o)), _mm_loadu_ps(pp.add(o + 4)));
                    for r in 0..4 {
                        lo[r] = _mm_add_ps(lo[r], _mm_mul_ps(xl, _mm_loadu_ps(rows[r].add(o))));
                        hi[r] = _mm_add_ps(hi[r], _mm_mul_ps(xh, _mm_loadu_ps(rows[r].add(o + 4))));
                    }
                }
                [
                    _mm_add_ps(lo[0], hi[0]),
                    _mm_add_ps(lo[1], hi[1]),
                    _mm_add_ps(lo[2], hi[2]),
                    _mm_add_ps(lo[3], hi[3]),
                ]
            };
            for (r, hr) in h.into_iter().enumerate() {
                let row = &q[(j + r) * k..(j + r + 1) * k];
                let d = reduce4(hr) + tail_dot(&pu[chunks * LANES..], &row[chunks * LANES..]);
                out[j + r] = base + bias[j + r] + d;
            }
            j += 4;
        }
        for jj in j..m {
            out[jj] = base + bias[jj] + dot_sse2(pu, &q[jj * k..(jj + 1) * k]);
        }
    }
}

/// Solves `a x = b` in place for a symmetric positive-definite `d × d`
/// row-major `a` (only the lower triangle is read; it is overwritten by the
/// Cholesky factor) and returns `false` if `a` is not positive definite.
///
/// Hand-written rather than nalgebra because ALS solves tens of thousands of
/// tiny systems per sweep and allocating matrices for each would dominate.
#[inline(always)]
pub(crate) fn cholesky_solve(a: &mut [f64], d: usize, b: &mut [f64]) -> bool {
    debug_assert_eq!(a.len(), d * d);
    debug_assert_eq!(b.len(), d);
    // Factor: a = L Lᵀ, L stored in the lower triangle of `a`.
    for j in 0..d {
        let row_j = &a[j * d..j * d + j];
        let s = a[j * d + j] - dot64(row_j, row_j);
        if s.is_nan() || s <= 0.0 {
            return false;
        }
        let ljj = s.sqrt();
        a[j * d + j] = ljj;
        for i in (j + 1)..d {
            let (head, tail) = a.split_at_mut(i * d);
            let lj = &head[j * d..j * d + j];
            let row_i = &mut tail[..d];
            row_i[j] = (row_i[j] - dot64(&row_i[..j], lj)) / ljj;
        }
    }
    // Forward substitution: L y = b.
    for i in 0..d {
        let row = &a[i * d..i * d + i];
        let mut s = b[i];
        for (l, y) in row.iter().zip(&b[..i]) {
            s -= l * y;
        }
        b[i] = s / a[i * d + i];
    }
    // Back substitution: Lᵀ x = y.
    for i in (0..d).rev() {
        let mut s = b[i];
        for k in (i + 1)..d {
            s -= a[k * d + i] * b[k];
        }
        b[i] = s / a[i * d + i];
    }
    true
}

/// f64 dot product with eight explicit partial sums (reduced like [`dot`]):
/// independent chains keep the adder busy, and source order fixes the result
/// on every instruction set.
#[inline(always)]
pub(crate) fn dot64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let c = n / 8 * 8;
    let mut acc = [0.0f64; 8];
    for (x, y) in a[..c].chunks_exact(8).zip(b[..c].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let h = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    let mut t = (h[0] + h[2]) + (h[1] + h[3]);
    for (x, y) in a[c..n].iter().zip(&b[c..n]) {
        t += x * y;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum() {
        for n in [0usize, 1, 7, 8, 9, 31, 100, 128] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
        }
    }

    /// Random cases: (k, pu, q, bias, the portable reference's scores).
    #[allow(clippy::type_complexity)]
    fn kernel_cases() -> Vec<(usize, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)> {
        let mut seed = 12345u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        [1usize, 3, 8, 13, 16, 64, 100, 128]
            .into_iter()
            .map(|k| {
                let m = 11; // not a multiple of 4: exercises the leftover rows
                let pu: Vec<f32> = (0..k).map(|_| rnd()).collect();
                let q: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                let bias: Vec<f32> = (0..m).map(|_| rnd()).collect();
                let want: Vec<f32> = (0..m)
                    .map(|j| 3.5 + bias[j] + dot_portable(&pu, &q[j * k..(j + 1) * k]))
                    .collect();
                (k, pu, q, bias, want)
            })
            .collect()
    }

    /// The kernels every machine runs: whatever `dot` and `score_rows`
    /// dispatch to here, and the SSE2 fallback.
    #[test]
    fn every_kernel_matches_the_portable_reference_bit_for_bit() {
        for (k, pu, q, bias, want) in kernel_cases() {
            for (j, row) in q.chunks_exact(k).enumerate() {
                assert_eq!(
                    dot(&pu, row).to_bits(),
                    dot_portable(&pu, row).to_bits(),
                    "k={k} row {j}"
                );
            }
            let mut out = vec![0.0; want.len()];
            score_rows(&pu, &q, &bias, 3.5, &mut out);
            assert_eq!(out, want, "k={k}");
            #[cfg(target_arch = "x86_64")]
            {
                x86::score_rows_sse2(&pu, &q, &bias, 3.5, &mut out);
                assert_eq!(out, want, "sse2 k={k}");
            }
        }
    }

    /// The AVX2 kernels, called directly. On a CPU without AVX2 this test
    /// is reported as ignored (`build.rs` tells), not passed unrun.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[cfg_attr(
        not(cpu_avx2),
        ignore = "this CPU has no AVX2: the AVX2 kernels cannot run here"
    )]
    fn avx2_kernels_match_the_portable_reference_bit_for_bit() {
        assert!(
            std::arch::is_x86_feature_detected!("avx2"),
            "this CPU has no AVX2"
        );
        for (k, pu, q, bias, want) in kernel_cases() {
            for (j, row) in q.chunks_exact(k).enumerate() {
                // SAFETY: AVX2 support checked above.
                let d = unsafe { dot_avx2(&pu, row) };
                assert_eq!(
                    d.to_bits(),
                    dot_portable(&pu, row).to_bits(),
                    "avx2 k={k} row {j}"
                );
            }
            let mut out = vec![0.0; want.len()];
            // SAFETY: AVX2 support checked above.
            unsafe { x86::score_rows_avx2(&pu, &q, &bias, 3.5, &mut out) };
            assert_eq!(out, want, "avx2 k={k}");
        }
    }

    #[test]
    fn cholesky_solves_spd_system() {
        // a = m mᵀ + I is SPD.
        let d = 5;
        let m: Vec<f64> = (0..d * d)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let mut s = if i == j { 1.0 } else { 0.0 };
                for k in 0..d {
                    s += m[i * d + k] * m[j * d + k];
                }
                a[i * d + j] = s;
            }
        }
        let x_true: Vec<f64> = (0..d).map(|i| i as f64 - 2.0).collect();
        let mut b: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| a[i * d + j] * x_true[j]).sum())
            .collect();
        let mut work = a.clone();
        assert!(cholesky_solve(&mut work, d, &mut b));
        for (x, t) in b.iter().zip(&x_true) {
            assert!((x - t).abs() < 1e-10);
        }
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_solve(&mut bad, 2, &mut [1.0, 1.0]));
    }
}
