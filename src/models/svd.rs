//! Biased matrix factorization by stochastic gradient descent ("Funk-SVD"),
//! with exactly Surprise's `SVD` update rules so results are comparable:
//!
//! ```text
//! e   = r − (μ + b_u + b_i + p_u · q_i)
//! b_u += lr_b (e − reg_b b_u)          b_i += lr_b (e − reg_b b_i)
//! p_u += lr (e q_i − reg p_u)          q_i += lr (e p_u − reg q_i)   (simultaneously)
//! ```
//!
//! Unlike Surprise, ratings are visited in a freshly shuffled order every
//! epoch (Surprise walks them user by user), which converges a little better
//! and removes any dependence on the input order.
//!
//! **Determinism.** With `threads = 1` the model is a function of the data
//! and the seed: factors are drawn from a ChaCha8 stream and the epoch
//! orders from the same stream. With `threads = n > 1` training uses a
//! DSGD/LIBMF-style block schedule: users and movies are randomly split into
//! `2n` blocks each, and an epoch is `2n` rounds; round `s` processes the
//! `2n` blocks `(b, b + s mod 2n)`, which share no user and no movie, in
//! parallel (twice as many blocks as threads keeps both cores busy when
//! blocks differ in size). The split, the round order and the order inside
//! each block all come from the seed, and blocks in a round touch disjoint
//! parameters, so the result is again bit-identical for a given
//! (seed, threads) — but differs between thread counts, because the block
//! grid does. LIBMF's dynamic scheduler would balance load a little better
//! at the price of this reproducibility.
//!
//! Reproducibility assumes the pinned `rand`/`rand_distr` versions
//! (`Cargo.lock`): their shuffle and normal sampler define the streams.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::{Entry, TrainSet};
#[cfg(target_arch = "x86_64")]
use super::linalg::dot_avx2;
use super::linalg::{dot, prefetch};
use super::{trained_model, Algo, FactorModel};
use crate::progress::Progress;
use crate::{Error, Result};

/// SGD hyperparameters.
///
/// The defaults are tuned on ml-latest-small (70/30 random split): more
/// epochs with a larger learning rate and 5× Surprise's regularization,
/// RMSE ≈ 0.856 against 0.879 for Surprise's own defaults, which
/// [`SvdParams::surprise`] reproduces for like-for-like comparisons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SvdParams {
    /// Latent dimensions.
    pub factors: usize,
    /// Passes over the training ratings.
    pub epochs: usize,
    /// Learning rate of the factors (and of the biases unless `lr_bias`).
    pub lr: f32,
    /// L2 regularization of the factors (and of the biases unless `reg_bias`).
    pub reg: f32,
    /// Learning rate of the biases, if different from `lr`.
    pub lr_bias: Option<f32>,
    /// Regularization of the biases, if different from `reg`.
    pub reg_bias: Option<f32>,
    /// Mean of the normal distribution factors start from.
    pub init_mean: f32,
    /// Standard deviation of that distribution.
    pub init_std: f32,
    /// Whether to learn μ, b_u and b_i; without them the model is plain
    /// `p_u · q_i` (and μ is 0), as Surprise's `biased=False`.
    pub biased: bool,
    /// 1 trains serially; more uses the parallel block schedule (see the
    /// module docs on determinism).
    pub threads: usize,
}

impl Default for SvdParams {
    fn default() -> Self {
        SvdParams {
            factors: 100,
            epochs: 60,
            lr: 0.01,
            reg: 0.1,
            lr_bias: None,
            reg_bias: None,
            init_mean: 0.0,
            init_std: 0.1,
            biased: true,
            threads: 1,
        }
    }
}

impl SvdParams {
    /// Surprise's `SVD()` defaults: 100 factors, 20 epochs, lr 0.005,
    /// reg 0.02, init N(0, 0.1²), biased — the reference configuration for
    /// comparing against Surprise's published numbers.
    pub fn surprise() -> SvdParams {
        SvdParams {
            factors: 100,
            epochs: 20,
            lr: 0.005,
            reg: 0.02,
            lr_bias: None,
            reg_bias: None,
            init_mean: 0.0,
            init_std: 0.1,
            biased: true,
            threads: 1,
        }
    }

    /// Checked by [`crate::models::fit`]; public so a caller can reject bad
    /// flags before spending time loading ratings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("svd {m}")));
        super::check_count("svd", "factors", self.factors, 1..=4096)?;
        super::check_count("svd", "epochs", self.epochs, 1..=100_000)?;
        for (name, v) in [("lr", Some(self.lr)), ("lr_bias", self.lr_bias)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                    return bad(format!("{name} must be in (0, 1], got {v}"));
                }
            }
        }
        for (name, v) in [("reg", Some(self.reg)), ("reg_bias", self.reg_bias)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(format!("{name} must be a finite number ≥ 0, got {v}"));
                }
            }
        }
        if !self.init_mean.is_finite() {
            return bad(format!("init_mean must be finite, got {}", self.init_mean));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return bad(format!(
                "init_std must be a finite number ≥ 0, got {}",
                self.init_std
            ));
        }
        super::check_count("svd", "threads", self.threads, 1..=256)?;
        Ok(())
    }
}

/// Per-step constants of the update rule.
#[derive(Clone, Copy)]
struct Step {
    mu: f32,
    lr: f32,
    reg: f32,
    lr_b: f32,
    reg_b: f32,
    biased: bool,
}

pub(crate) fn fit(
    params: &SvdParams,
    data: &TrainSet,
    seed: u64,
    progress: &dyn Progress,
) -> Result<FactorModel> {
    let started = Instant::now();
    let k = params.factors;
    let (nu, nm) = (data.n_users(), data.n_movies());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(params.init_mean, params.init_std)
        .map_err(|e| Error::InvalidArgument(format!("svd init distribution: {e}")))?;
    let mut p: Vec<f32> = (0..nu * k).map(|_| normal.sample(&mut rng)).collect();
    let mut q: Vec<f32> = (0..nm * k).map(|_| normal.sample(&mut rng)).collect();
    let mut bu = vec![0.0f32; nu];
    let mut bi = vec![0.0f32; nm];
    let step = Step {
        mu: if params.biased {
            data.global_mean as f32
        } else {
            0.0
        },
        lr: params.lr,
        reg: params.reg,
        lr_b: params.lr_bias.unwrap_or(params.lr),
        reg_b: params.reg_bias.unwrap_or(params.reg),
        biased: params.biased,
    };
    let n = data.entries.len() as f64;
    progress.stage("svd", Some(params.epochs as u64));
    let report = |epoch: usize, sse: f64| {
        progress.advance(1);
        progress.message(&format!(
            "svd epoch {}/{}: train RMSE {:.4}, {:.2}s",
            epoch + 1,
            params.epochs,
            (sse / n).sqrt(),
            started.elapsed().as_secs_f64()
        ));
    };
    let mut factors = Factors {
        p: &mut p,
        q: &mut q,
        bu: &mut bu,
        bi: &mut bi,
    };
    if params.threads <= 1 {
        let mut entries = data.entries.clone();
        let mut spare = Vec::with_capacity(entries.len());
        for epoch in 0..params.epochs {
            shuffle_into(&entries, &mut spare, &mut rng);
            std::mem::swap(&mut entries, &mut spare);
            let sse = run(&entries, &mut factors, k, step);
            report(epoch, sse);
        }
    } else {
        train_blocks(data, &mut factors, k, step, params, &mut rng, report)?;
    }
    progress.finish();
    trained_model(Algo::Svd, data, step.mu, bu, bi, k, p, q)
}

/// Writes a uniformly random permutation of `src` into `dst`.
///
/// A plain Fisher–Yates over millions of entries spends most of its time
/// waiting on cache misses of its random swaps. This is the Rao–Sandelius
/// method instead: scatter every entry into a uniformly chosen bucket small
/// enough to stay in cache (sequential streams), then Fisher–Yates each
/// bucket. Independent uniform buckets followed by uniform in-bucket
/// permutations give a uniform permutation overall.
fn shuffle_into(src: &[Entry], dst: &mut Vec<Entry>, rng: &mut ChaCha8Rng) {
    /// ~32k entries × 12 bytes: comfortably inside a 512 KiB L2.
    const BUCKET: usize = 32 * 1024;
    let buckets = src.len().div_ceil(BUCKET).max(1);
    if buckets == 1 {
        dst.clear();
        dst.extend_from_slice(src);
        dst.shuffle(rng);
        return;
    }
    let which: Vec<u32> = (0..src.len())
        .map(|_| rng.random_range(0..buckets as u32))
        .collect();
    let mut start = vec![0usize; buckets + 1];
    for &b in &which {
        start[b as usize + 1] += 1;
    }
    for b in 0..buckets {
        start[b + 1] += start[b];
    }
    dst.clear();
    dst.resize(src.len(), Entry { u: 0, i: 0, r: 0.0 });
    let mut fill = start.clone();
    for (e, &b) in src.iter().zip(&which) {
        let slot = &mut fill[b as usize];
        dst[*slot] = *e;
        *slot += 1;
    }
    for w in start.windows(2) {
        dst[w[0]..w[1]].shuffle(rng);
    }
}

/// The trainable arrays, or one block's view of them.
struct Factors<'a> {
    p: &'a mut [f32],
    q: &'a mut [f32],
    bu: &'a mut [f32],
    bi: &'a mut [f32],
}

/// One SGD pass over `entries` (indices relative to `m`); returns the sum of
/// squared pre-update errors, which gives the epoch's training RMSE for free.
fn run(entries: &[Entry], m: &mut Factors<'_>, k: usize, s: Step) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { run_avx2(entries, m, k, s) };
        }
    }
    run_generic(entries, m, k, s)
}

/// The same loop compiled with 256-bit vectors. Only the vector width
/// changes (no FMA contraction, and the dot product's lane order is fixed),
/// so the result is bit-identical to [`run_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2(entries: &[Entry], m: &mut Factors<'_>, k: usize, s: Step) -> f64 {
    // SAFETY: this function only runs on CPUs with AVX2.
    run_with(entries, m, k, s, |a, b| unsafe { dot_avx2(a, b) })
}

fn run_generic(entries: &[Entry], m: &mut Factors<'_>, k: usize, s: Step) -> f64 {
    run_with(entries, m, k, s, dot)
}

#[inline(always)]
fn run_with(
    entries: &[Entry],
    m: &mut Factors<'_>,
    k: usize,
    s: Step,
    dot: impl Fn(&[f32], &[f32]) -> f32,
) -> f64 {
    /// How many ratings ahead to prefetch factor rows.
    const AHEAD: usize = 4;
    let mut sse = 0.0f64;
    for (n, e) in entries.iter().enumerate() {
        if let Some(f) = entries.get(n + AHEAD) {
            let (u, i) = (f.u as usize, f.i as usize);
            prefetch(&m.p[u * k..(u + 1) * k]);
            prefetch(&m.q[i * k..(i + 1) * k]);
        }
        let (u, i) = (e.u as usize, e.i as usize);
        let pu = &mut m.p[u * k..(u + 1) * k];
        let qi = &mut m.q[i * k..(i + 1) * k];
        let err = e.r - (s.mu + m.bu[u] + m.bi[i] + dot(pu, qi));
        sse += (err as f64) * (err as f64);
        if s.biased {
            m.bu[u] += s.lr_b * (err - s.reg_b * m.bu[u]);
            m.bi[i] += s.lr_b * (err - s.reg_b * m.bi[i]);
        }
        for (x, y) in pu.iter_mut().zip(qi.iter_mut()) {
            let (pf, qf) = (*x, *y);
            *x = pf + s.lr * (err * qf - s.reg * pf);
            *y = qf + s.lr * (err * pf - s.reg * qf);
        }
    }
    sse
}

/// Start offsets of `blocks` near-equal contiguous ranges of `0..n`, plus `n`.
fn bounds(n: usize, blocks: usize) -> Vec<usize> {
    (0..=blocks).map(|b| b * n / blocks).collect()
}

/// Splits `v` (rows of `width` values) at the row `bounds`.
fn split_rows<'a>(mut v: &'a mut [f32], bounds: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(bounds.len() - 1);
    for w in bounds.windows(2) {
        let (head, tail) = v.split_at_mut((w[1] - w[0]) * width);
        out.push(head);
        v = tail;
    }
    out
}

/// Reorders rows: `out[new] = v[old]` where `order[new] = old`.
fn gather(v: &[f32], order: &[u32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for &old in order {
        let o = old as usize * width;
        out.extend_from_slice(&v[o..o + width]);
    }
    out
}

/// Inverse of [`gather`]: `v[old] = t[new]`.
fn scatter(t: &[f32], order: &[u32], width: usize, v: &mut [f32]) {
    for (new, &old) in order.iter().enumerate() {
        let o = old as usize * width;
        v[o..o + width].copy_from_slice(&t[new * width..(new + 1) * width]);
    }
}

/// The parallel block schedule (see the module docs).
fn train_blocks(
    data: &TrainSet,
    m: &mut Factors<'_>,
    k: usize,
    step: Step,
    params: &SvdParams,
    rng: &mut ChaCha8Rng,
    report: impl Fn(usize, f64) + Sync,
) -> Result<()> {
    let (nu, nm) = (data.n_users(), data.n_movies());
    let nb = 2 * params.threads;
    // Random relabeling balances the blocks; `*_order[new] = old`.
    let mut u_order: Vec<u32> = (0..nu as u32).collect();
    u_order.shuffle(rng);
    let mut i_order: Vec<u32> = (0..nm as u32).collect();
    i_order.shuffle(rng);
    let (ub, ib) = (bounds(nu, nb), bounds(nm, nb));
    // old index → (block, index within block)
    let locate = |order: &[u32], b: &[usize]| {
        let mut loc = vec![(0u32, 0u32); order.len()];
        for blk in 0..nb {
            for new in b[blk]..b[blk + 1] {
                loc[order[new] as usize] = (blk as u32, (new - b[blk]) as u32);
            }
        }
        loc
    };
    let (uloc, iloc) = (locate(&u_order, &ub), locate(&i_order, &ib));
    let mut cells: Vec<Vec<Entry>> = vec![Vec::new(); nb * nb];
    for e in &data.entries {
        let (bu_, lu) = uloc[e.u as usize];
        let (bi_, li) = iloc[e.i as usize];
        cells[bu_ as usize * nb + bi_ as usize].push(Entry {
            u: lu,
            i: li,
            r: e.r,
        });
    }
    let mut pt = gather(m.p, &u_order, k);
    let mut qt = gather(m.q, &i_order, k);
    let mut but = gather(m.bu, &u_order, 1);
    let mut bit = gather(m.bi, &i_order, 1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(params.threads)
        .build()
        .map_err(|e| {
            Error::InvalidArgument(format!("svd: cannot start {} threads: {e}", params.threads))
        })?;
    pool.install(|| {
        for epoch in 0..params.epochs {
            let mut shifts: Vec<usize> = (0..nb).collect();
            shifts.shuffle(rng);
            let cell_seeds: Vec<u64> = (0..nb * nb).map(|_| rng.random()).collect();
            let mut sse = 0.0f64;
            for &shift in &shifts {
                let mut qs: Vec<Option<&mut [f32]>> =
                    split_rows(&mut qt, &ib, k).into_iter().map(Some).collect();
                let mut bis: Vec<Option<&mut [f32]>> =
                    split_rows(&mut bit, &ib, 1).into_iter().map(Some).collect();
                let mut cs: Vec<Option<&mut Vec<Entry>>> = cells.iter_mut().map(Some).collect();
                let tasks: Vec<_> = split_rows(&mut pt, &ub, k)
                    .into_iter()
                    .zip(split_rows(&mut but, &ub, 1))
                    .enumerate()
                    .map(|(b, (p, bu))| {
                        let j = (b + shift) % nb;
                        let cell = b * nb + j;
                        let block = Factors {
                            p,
                            q: qs[j].take().expect("each item block once per round"),
                            bu,
                            bi: bis[j].take().expect("each item block once per round"),
                        };
                        let entries = cs[cell].take().expect("each cell once per round");
                        (block, entries, cell_seeds[cell])
                    })
                    .collect();
                let sses: Vec<f64> = tasks
                    .into_par_iter()
                    .map(|(mut block, entries, seed)| {
                        entries.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                        run(entries, &mut block, k, step)
                    })
                    .collect();
                sse += sses.iter().sum::<f64>();
            }
            report(epoch, sse);
        }
    });
    scatter(&pt, &u_order, k, m.p);
    scatter(&qt, &i_order, k, m.q);
    scatter(&but, &u_order, 1, m.bu);
    scatter(&bit, &i_order, 1, m.bi);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::fit_factor as fit_model;
    use crate::models::testutil::{low_rank, rmse, split};
    use crate::models::Hyperparams as AnyParams;

    fn small() -> SvdParams {
        SvdParams {
            factors: 8,
            epochs: 30,
            lr: 0.01,
            reg: 0.02,
            ..SvdParams::default()
        }
    }

    #[test]
    fn learns_low_rank_matrix() {
        let all = low_rank(300, 200, 3, 0.3, 11);
        let (train, test) = split(&all, 0.8, 2);
        for threads in [1, 2] {
            let p = AnyParams::Svd(SvdParams { threads, ..small() });
            let m = fit_model(&p, &train, 5).unwrap();
            let base = rmse(&test, |_, _| m.global_mean());
            let got = rmse(&test, |u, i| m.predict(u, i));
            assert!(
                got < 0.5 * base,
                "threads {threads}: svd {got} vs global mean {base}"
            );
        }
    }

    #[test]
    fn deterministic_per_seed_and_thread_count() {
        let all = low_rank(80, 60, 2, 0.3, 3);
        for threads in [1, 3] {
            let p = AnyParams::Svd(SvdParams {
                epochs: 5,
                threads,
                ..small()
            });
            let a = fit_model(&p, &all, 9).unwrap().to_bytes();
            let b = fit_model(&p, &all, 9).unwrap().to_bytes();
            let c = fit_model(&p, &all, 10).unwrap().to_bytes();
            assert_eq!(a, b, "threads {threads}");
            assert_ne!(a, c, "threads {threads}");
        }
    }

    /// On a CPU without AVX2 this test is reported as ignored (`build.rs`
    /// tells), not passed unrun.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[cfg_attr(
        not(cpu_avx2),
        ignore = "this CPU has no AVX2: the AVX2 kernel cannot run here"
    )]
    fn avx2_kernel_is_bit_identical_to_generic() {
        assert!(
            std::arch::is_x86_feature_detected!("avx2"),
            "this CPU has no AVX2"
        );
        let all = low_rank(50, 40, 2, 0.5, 4);
        let data = TrainSet::new(&all).unwrap();
        let k = 13; // exercises the dot product's remainder lanes
        let init = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|x| ((x * 37 % 101) as f32 - 50.0) / 500.0)
                .collect()
        };
        let step = Step {
            mu: 3.5,
            lr: 0.01,
            reg: 0.05,
            lr_b: 0.01,
            reg_b: 0.05,
            biased: true,
        };
        let mut out = Vec::new();
        for avx in [false, true] {
            let (mut p, mut q) = (init(data.n_users() * k), init(data.n_movies() * k));
            let (mut bu, mut bi) = (vec![0.0; data.n_users()], vec![0.0; data.n_movies()]);
            let mut m = Factors {
                p: &mut p,
                q: &mut q,
                bu: &mut bu,
                bi: &mut bi,
            };
            let sse = if avx {
                // SAFETY: AVX2 support checked at the top of the test.
                unsafe { run_avx2(&data.entries, &mut m, k, step) }
            } else {
                run_generic(&data.entries, &mut m, k, step)
            };
            out.push((sse.to_bits(), p, q, bu, bi));
        }
        assert!(out[0] == out[1]);
    }

    #[test]
    fn rejects_bad_params() {
        let cases = [
            SvdParams {
                factors: 0,
                ..Default::default()
            },
            SvdParams {
                epochs: 0,
                ..Default::default()
            },
            SvdParams {
                lr: 0.0,
                ..Default::default()
            },
            SvdParams {
                lr: f32::NAN,
                ..Default::default()
            },
            SvdParams {
                reg: -0.1,
                ..Default::default()
            },
            SvdParams {
                reg_bias: Some(f32::INFINITY),
                ..Default::default()
            },
            SvdParams {
                init_std: -1.0,
                ..Default::default()
            },
            SvdParams {
                threads: 0,
                ..Default::default()
            },
        ];
        for p in cases {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.starts_with("svd "), "{e}");
        }
    }

    #[test]
    fn unbiased_mode_has_no_biases() {
        let all = low_rank(40, 30, 2, 0.5, 8);
        let p = AnyParams::Svd(SvdParams {
            biased: false,
            epochs: 3,
            ..small()
        });
        let m = fit_model(&p, &all, 1).unwrap();
        assert_eq!(m.global_mean(), 0.0);
        assert!(m.user_bias().iter().chain(m.item_bias()).all(|&b| b == 0.0));
    }
}
