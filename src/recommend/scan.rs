//! The quantized serving scan of factor models and its exact re-ranking
//! bounds (see the `recommend` module docs).

use crate::models::FactorModel;

/// Models with more factors use `top_k`: the bound's rounding terms
/// assume `(k + 3) · 2⁻²⁴ ≤ 2⁻¹²`.
const MAX_FACTORS: usize = 4000;

/// The movie factors as 8-bit integers with one scale per movie
/// (`q̃_i = s_i · c_i`, `s_i = max|q_i| / 127`): a quarter of the f32
/// bytes, so the scan reads far less memory, and dotted in exact integer
/// arithmetic with the user's factors as 16-bit integers. Laid out in
/// blocks of 8 movies with the factors in pairs (`kp` = k rounded up to
/// even): block b, pair h, movie j, factor 2h + t at
/// `8·kp·b + 16h + 2j + t`, so one `vpmaddwd` multiplies 8 movies by a
/// broadcast pair of user factors. The last block is padded with zero
/// movies. Only built when the CPU has AVX2 and FMA, so holding one
/// proves the kernels below may run.
///
/// **The bound.** With the user's factors `p ≈ p̃ = s_p · ip`,
/// `δ_i = q_i − q̃_i`, `δ_p = p − p̃` and `s_i` what
/// [`FactorModel::score_all`] / [`FactorModel::predict_unclipped`]
/// compute, the approximate score `a_i = (μ + b_u + b_i) + s_i s_p (ip · c_i)`
/// satisfies `|a_i − s_i| ≤ ‖p‖₂ e_i + c`, where
/// `e_i = ‖δ_i‖₂ (1 + 2⁻¹⁰) + 2⁻⁹ ‖q_i‖₂` is fixed per movie and
/// `c = 2⁻²⁰ (‖p‖₁ + |μ + b_u| + max|b_i| + 1) + ‖δ_p‖₂ max‖q̃_i‖₂ (1 + 2⁻¹⁰)`
/// per request:
///
/// * `p · q_i − p̃ · q̃_i = p · δ_i + δ_p · q̃_i`, at most
///   `‖p‖ ‖δ_i‖ + ‖δ_p‖ ‖q̃_i‖` (Cauchy–Schwarz); `‖δ_i‖` is measured
///   exactly when the codes are made, `‖δ_p‖` per request;
/// * the integer dot product is exact (its 32-bit sums cannot overflow,
///   see `quantize_user`); turning it into f32 and scaling it rounds
///   three times, `≤ 2⁻²² |p̃ · q̃_i|`;
/// * the model's own f32 dot product is off the real one by at most
///   `γ_{k+3} Σ|p q| ≤ 2⁻¹² ‖p‖ ‖q_i‖`;
/// * both add their dot product to the same `(μ + b_u) + b_i`, so the
///   last roundings differ by at most `2⁻²³ (|μ + b_u| + |b_i| + |dot|)`;
/// * all of which, and the roundings of the bounds' own arithmetic, fit
///   with room to spare in the `2⁻¹⁰`, `2⁻⁹` and `2⁻²⁰` terms.
///
/// The scan writes the lower bounds `a_i − (‖p‖ e_i + c)`; the k-th
/// largest of them, L, is below the exact scores of k movies, so a
/// movie whose upper bound is under L cannot make the top k, and only
/// the others are re-scored exactly.
pub(crate) struct Quantized {
    n: usize,
    k: usize,
    codes: Vec<i8>,
    /// `s_i`, zero-padded to whole blocks.
    scale: Vec<f32>,
    /// Item biases, zero-padded.
    bias: Vec<f32>,
    /// `e_i` of the bound, zero-padded.
    err: Vec<f32>,
    /// Largest |item bias|.
    bias_max: f64,
    /// Largest ‖q̃_i‖₂.
    approx_norm_max: f64,
}

/// What the collect step needs of one scan: `‖p‖₂` and `c`, rounded up.
#[derive(Clone, Copy)]
pub(crate) struct Slack {
    norm: f32,
    c: f32,
}

impl Quantized {
    /// `None` when the CPU lacks the kernels or the model has no
    /// factors (or too many).
    pub fn new(model: &FactorModel) -> Option<Quantized> {
        let (n, k) = (model.n_movies(), model.k());
        if k == 0 || k > MAX_FACTORS || n == 0 || !cpu_has_kernels() {
            return None;
        }
        let kp = k.div_ceil(2) * 2;
        let padded = n.div_ceil(8) * 8;
        let mut codes = vec![0i8; padded * kp];
        let mut scale = vec![0f32; padded];
        let mut err = vec![0f32; padded];
        let mut approx_norm_max = 0f64;
        for (m, row) in model.q().chunks_exact(k).enumerate() {
            let (b, j) = (m / 8, m % 8);
            let s = row.iter().fold(0f32, |a, x| a.max(x.abs())) / 127.0;
            scale[m] = s;
            // ‖δ‖², ‖q‖², ‖q̃‖² in f64, where each product is exact.
            let (mut d2, mut q2, mut a2) = (0f64, 0f64, 0f64);
            for (f, &x) in row.iter().enumerate() {
                let c = if s > 0.0 {
                    (x / s).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                codes[b * 8 * kp + 16 * (f / 2) + 2 * j + f % 2] = c;
                let v = f64::from(s) * f64::from(c);
                let d = f64::from(x) - v;
                d2 += d * d;
                q2 += f64::from(x) * f64::from(x);
                a2 += v * v;
            }
            approx_norm_max = approx_norm_max.max(a2.sqrt());
            err[m] = f32_at_least(d2.sqrt() * (1.0 + 2f64.powi(-10)) + 2f64.powi(-9) * q2.sqrt());
            if !err[m].is_finite() {
                return None;
            }
        }
        let mut bias = model.item_bias().to_vec();
        bias.resize(padded, 0.0);
        let bias_max = bias.iter().map(|b| f64::from(b.abs())).fold(0.0, f64::max);
        Some(Quantized {
            n,
            k,
            codes,
            scale,
            bias,
            err,
            bias_max,
            approx_norm_max,
        })
    }

    /// Lower bounds of the exact scores `base + b_i + p · q_i` of every
    /// movie for the user factors `p` (a trained user's row, with `base =
    /// μ + b_u`, or a folded-in vector, with `base = μ`), into `scores`
    /// (one per movie; see the type's docs); `pairs` is scratch. Returns
    /// what [`Quantized::collect_candidates`] needs for the upper bounds.
    pub fn lower_bounds(
        &self,
        p: &[f32],
        base: f32,
        scores: &mut Vec<f32>,
        pairs: &mut Vec<i32>,
    ) -> Slack {
        assert_eq!(p.len(), self.k, "user factors of the wrong width");
        let (user_scale, user_err) = quantize_user(p, pairs);
        let l2 = p
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        let l1 = p.iter().map(|&x| f64::from(x.abs())).sum::<f64>();
        let slack = Slack {
            norm: f32_at_least(l2 * (1.0 + 2f64.powi(-20))),
            c: f32_at_least(
                2f64.powi(-20) * (l1 + f64::from(base.abs()) + self.bias_max + 1.0)
                    + user_err * self.approx_norm_max * (1.0 + 2f64.powi(-10)),
            ),
        };
        scores.clear();
        scores.resize(self.bias.len(), 0.0);
        // SAFETY: `self` exists only on CPUs with AVX2 and FMA; the
        // lengths agree by construction (asserted inside).
        unsafe {
            x86::scan(
                pairs,
                &self.codes,
                &self.scale,
                user_scale,
                base,
                &self.bias,
                &self.err,
                slack,
                scores,
            )
        };
        scores.truncate(self.n);
        slack
    }

    /// Appends the index of every movie whose upper bound
    /// `lower + 2 (‖p‖ e_i + c)` reaches `cut` (never one at −∞).
    pub fn collect_candidates(&self, lower: &[f32], slack: Slack, cut: f32, out: &mut Vec<u32>) {
        // SAFETY: as in `lower_bounds`; `err` covers every movie.
        unsafe { x86::collect(lower, &self.err[..lower.len()], slack, cut, out) }
    }
}

/// The user's factors as integers for the kernel, `p ≈ s_p · ip`, with
/// |ip| small enough that no 32-bit sum of k products with int8 codes
/// can overflow (`kp · 127 · limit < 2³¹`), packed in pairs (`ip[2h]`
/// low, `ip[2h + 1]` high, a zero appended for odd k) into `pairs`.
/// Returns `s_p` and `‖p − s_p · ip‖₂`, rounded up.
fn quantize_user(p: &[f32], pairs: &mut Vec<i32>) -> (f32, f64) {
    let kp = p.len().div_ceil(2) * 2;
    let limit = (i32::MAX as usize / (127 * kp)).clamp(1, 32_767) as f32;
    let sp = p.iter().fold(0f32, |a, x| a.max(x.abs())) / limit;
    let mut err2 = 0f64;
    let mut int = |f: usize| -> i32 {
        let Some(&x) = p.get(f) else { return 0 };
        let q = if sp > 0.0 {
            (x / sp).round().clamp(-limit, limit) as i32
        } else {
            0
        };
        let d = f64::from(x) - f64::from(sp) * f64::from(q);
        err2 += d * d;
        q
    };
    pairs.clear();
    for h in 0..kp / 2 {
        let (lo, hi) = (int(2 * h), int(2 * h + 1));
        pairs.push((u32::from(lo as u16) | (u32::from(hi as u16) << 16)) as i32);
    }
    (sp, err2.sqrt() * (1.0 + 2f64.powi(-20)))
}

/// The smallest f32 not below `x`.
fn f32_at_least(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x {
        f.next_up()
    } else {
        f
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_kernels() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_kernels() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Slack;

    /// Lower bounds of all movies: each `vpmaddwd` multiplies 8 movies'
    /// codes for two factors by the user's broadcast pair and adds the
    /// two products, exactly; four blocks (32 movies) at a time, so
    /// every broadcast serves 32 movies. At the end each sum is scaled
    /// by the movie's and the user's scale and the bias and the margin
    /// `‖p‖ e_i + c` are applied.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
    pub unsafe fn scan(
        pairs: &[i32],
        codes: &[i8],
        scale: &[f32],
        user_scale: f32,
        base: f32,
        bias: &[f32],
        err: &[f32],
        slack: Slack,
        out: &mut [f32],
    ) {
        let h = pairs.len();
        let n = out.len();
        assert!(h > 0 && n.is_multiple_of(8) && codes.len() == n * 2 * h);
        assert!(scale.len() == n && bias.len() == n && err.len() == n);
        let (nb, stride) = (n / 8, 16 * h);
        // SAFETY (all pointer arithmetic below): pair i of block b is
        // the 16 codes at b·stride + 16i, with b < nb and i < h; scales,
        // biases, bounds and scores of block b are [8b, 8b + 8) ⊂ [0, n).
        unsafe {
            let code = |b: usize, i: usize| {
                _mm256_cvtepi8_epi16(_mm_loadu_si128(
                    codes.as_ptr().add(b * stride + 16 * i).cast(),
                ))
            };
            let (us, base) = (_mm256_set1_ps(user_scale), _mm256_set1_ps(base));
            let (norm, c) = (_mm256_set1_ps(slack.norm), _mm256_set1_ps(slack.c));
            let o = out.as_mut_ptr();
            let finish = |b: usize, acc: __m256i| {
                let s = _mm256_mul_ps(_mm256_loadu_ps(scale.as_ptr().add(8 * b)), us);
                let dot = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), s);
                let t = _mm256_add_ps(base, _mm256_loadu_ps(bias.as_ptr().add(8 * b)));
                let margin = _mm256_fmadd_ps(norm, _mm256_loadu_ps(err.as_ptr().add(8 * b)), c);
                _mm256_storeu_ps(o.add(8 * b), _mm256_sub_ps(_mm256_add_ps(t, dot), margin));
            };
            let mut b = 0;
            while b + 4 <= nb {
                let mut acc = [_mm256_setzero_si256(); 4];
                for (i, &pair) in pairs.iter().enumerate() {
                    let pv = _mm256_set1_epi32(pair);
                    for r in 0..4 {
                        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(code(b + r, i), pv));
                    }
                }
                for r in 0..4 {
                    finish(b + r, acc[r]);
                }
                b += 4;
            }
            while b < nb {
                let mut acc = _mm256_setzero_si256();
                for (i, &pair) in pairs.iter().enumerate() {
                    let pv = _mm256_set1_epi32(pair);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(code(b, i), pv));
                }
                finish(b, acc);
                b += 1;
            }
        }
    }

    /// Indices whose `lower + 2 (norm · err + c)` is at least `cut`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn collect(lower: &[f32], err: &[f32], slack: Slack, cut: f32, out: &mut Vec<u32>) {
        assert_eq!(lower.len(), err.len());
        // −∞ never passes: the cut is at least f32::MIN.
        let cut = cut.max(f32::MIN);
        let blocks = lower.len() / 8;
        // SAFETY: block blk covers [8·blk, 8·blk + 8) of both slices.
        unsafe {
            let norm2 = _mm256_set1_ps(2.0 * slack.norm);
            let c2 = _mm256_set1_ps(2.0 * slack.c);
            let cutv = _mm256_set1_ps(cut);
            for blk in 0..blocks {
                let lo = _mm256_loadu_ps(lower.as_ptr().add(blk * 8));
                let e = _mm256_loadu_ps(err.as_ptr().add(blk * 8));
                let up = _mm256_add_ps(lo, _mm256_fmadd_ps(norm2, e, c2));
                let mut m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(up, cutv)) as u32;
                while m != 0 {
                    out.push((blk * 8) as u32 + m.trailing_zeros());
                    m &= m - 1;
                }
            }
        }
        for i in blocks * 8..lower.len() {
            let up = lower[i] + 2.0 * (slack.norm * err[i] + slack.c);
            if up >= cut {
                out.push(i as u32);
            }
        }
    }
}

/// Never called: `Quantized` cannot be built off x86_64.
#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    use super::Slack;
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn scan(
        _: &[i32],
        _: &[i8],
        _: &[f32],
        _: f32,
        _: f32,
        _: &[f32],
        _: &[f32],
        _: Slack,
        _: &mut [f32],
    ) {
        unreachable!()
    }
    pub unsafe fn collect(_: &[f32], _: &[f32], _: Slack, _: f32, _: &mut Vec<u32>) {
        unreachable!()
    }
}
