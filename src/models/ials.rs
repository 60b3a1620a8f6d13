//! Implicit-feedback ALS (Hu, Koren and Volinsky 2008): a ranking model.
//!
//! Rating models learn to predict stars on the movies people rated, which
//! says little about which movies they will pick out of the whole
//! catalogue. iALS learns the choice itself: every (user, movie) cell is an
//! observation, `1` where the user rated the movie and `0` everywhere else,
//! weighted by a confidence `c = 1 + alpha · w` where `w` is the rating's
//! implicit weight ([`Signal`]) and `c = 1` for the unrated cells:
//!
//! ```text
//! Σ_{u,i} c_ui (p_ui − x_u · y_i)² + reg (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)
//! ```
//!
//! With the movie factors `Y` fixed, each user's factors solve
//! `(YᵀY + reg·I + Σ_{i∈R(u)} (c_ui − 1) y_i y_iᵀ) x_u = Σ_{i∈R(u)} c_ui y_i`:
//! the dense `YᵀY` is shared by every user, so a user costs only their own
//! ratings (the trick that makes iALS practical). The solve is either exact
//! (Cholesky, `O(n_u k² + k³)`) or a few conjugate-gradient steps warm-started
//! from the previous sweep (`O(steps · (k² + n_u k))`, `implicit`'s default),
//! and movies are solved the same way against the users.
//!
//! Rows are solved in parallel; each depends only on the other side's fixed
//! factors, so the result is bit-identical whatever the thread count.
//!
//! The trained model is a [`FactorModel`] without biases whose score
//! `x_u · y_i` ranks movies; it predicts no ratings. It keeps what a fold-in
//! needs ([`ImplicitSolver`]) so a user with new ratings can be solved
//! against the fixed movie factors at request time with the same equation.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::{Csr, TrainSet};
use super::linalg::{cholesky_solve, dot, dot64};
use super::niche::NicheParams;
use super::signal::{HalfLife, Signal, Weighting};
use super::{Algo, FactorModel};
use crate::progress::Progress;
use crate::{Error, Result};

/// How each row's least-squares problem is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IalsSolver {
    /// A few conjugate-gradient steps from the previous sweep's solution.
    Cg,
    /// The exact solution by Cholesky factorization.
    Cholesky,
}

/// iALS hyperparameters; the defaults are chosen by `cinematch tune` on a
/// validation split of ml-latest-small's train split (see the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IalsParams {
    /// Latent dimensions.
    pub factors: usize,
    /// Sweeps, each solving all users then all movies.
    pub iterations: usize,
    /// L2 regularization of every factor vector.
    pub reg: f64,
    /// Confidence slope: an observed cell weighs `1 + alpha · w`.
    pub alpha: f64,
    /// How ratings become the weights `w` (see [`Signal`]).
    pub signal: Signal,
    /// How fast a rating's weight fades with age, in training and in a
    /// fold-in (see [`HalfLife`]); `none` by default.
    pub half_life: HalfLife,
    /// What a rating newer than the model's training data weighs in a
    /// fold-in, as a multiple of its weight (see [`Weighting`]).
    pub fresh_weight: f32,
    /// How fast a user's ratings fade, when a fold-in solves their factors
    /// from their history, with their age before the user's newest rating
    /// (see [`Weighting::recent`]); training is untouched.
    #[serde(default = "crate::models::signal::no_fade")]
    pub history_half_life: HalfLife,
    pub solver: IalsSolver,
    /// Conjugate-gradient steps per row and sweep (`solver = cg`).
    pub cg_steps: usize,
    /// Standard deviation of the initial movie factors.
    pub init_std: f64,
    /// The niche re-ranking of short histories ([`NicheParams`]): the
    /// largest popularity exponent...
    pub debias: f32,
    /// ...the largest calibration weight...
    pub calibrate: f32,
    /// ...and the history length at which both are at half strength.
    pub known: f32,
}

impl Default for IalsParams {
    fn default() -> Self {
        IalsParams {
            factors: 128,
            iterations: 15,
            reg: 50.0,
            alpha: 1.7,
            signal: Signal::Weighted,
            half_life: HalfLife::NONE,
            fresh_weight: 1.0,
            history_half_life: HalfLife::NONE,
            solver: IalsSolver::Cg,
            cg_steps: 3,
            init_std: 0.01,
            debias: NicheParams::default().debias,
            calibrate: NicheParams::default().calibrate,
            known: NicheParams::default().known,
        }
    }
}

impl IalsParams {
    /// The niche re-ranking these parameters ask for.
    pub fn niche(&self) -> NicheParams {
        NicheParams {
            debias: self.debias,
            calibrate: self.calibrate,
            known: self.known,
        }
    }

    /// Checked by [`crate::models::fit`]; public so a caller can reject bad
    /// settings before loading ratings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("ials {m}")));
        super::check_count("ials", "factors", self.factors, 1..=1024)?;
        super::check_count("ials", "iterations", self.iterations, 1..=10_000)?;
        super::check_count("ials", "cg_steps", self.cg_steps, 1..=100)?;
        // reg > 0 keeps every system positive definite; alpha >= 0 keeps the
        // confidences >= 1.
        if !(self.reg.is_finite() && self.reg > 0.0) {
            return bad(format!("reg must be a finite number > 0, got {}", self.reg));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(format!(
                "alpha must be a finite number >= 0, got {}",
                self.alpha
            ));
        }
        if !(self.init_std.is_finite() && self.init_std > 0.0) {
            return bad(format!(
                "init_std must be a finite number > 0, got {}",
                self.init_std
            ));
        }
        self.half_life.validate("ials")?;
        self.history_half_life.validate("ials history")?;
        if !(self.fresh_weight.is_finite() && (0.01..=1000.0).contains(&self.fresh_weight)) {
            return Err(Error::InvalidArgument(format!(
                "ials fresh_weight must be between 0.01 and 1000, got {}",
                self.fresh_weight
            )));
        }
        self.niche().validate("ials")?;
        self.signal.validate("ials")
    }
}

/// What solving one user against fixed movie factors needs: the model's
/// regularization and confidence, and `YᵀY + reg·I`, which is the same for
/// every user and so computed once per model.
#[derive(Clone, Debug)]
pub struct ImplicitSolver {
    pub reg: f32,
    pub alpha: f32,
    /// How a rating becomes the `w` of its confidence `1 + alpha · w`,
    /// exactly as in training.
    pub weighting: Weighting,
    /// How the lists of short histories are re-ranked (a serving setting
    /// kept with the model).
    pub niche: NicheParams,
    k: usize,
    /// `YᵀY + reg·I`, `k × k` row-major, in f64 for the exact solve.
    gram: Vec<f64>,
}

impl ImplicitSolver {
    /// Precomputes `YᵀY + reg·I` of the movie factors `q` (`k` wide).
    pub fn new(
        reg: f32,
        alpha: f32,
        weighting: Weighting,
        niche: NicheParams,
        q: &[f32],
        k: usize,
    ) -> ImplicitSolver {
        let mut gram = gramian(q, k);
        for a in 0..k {
            gram[a * k + a] += reg as f64;
        }
        ImplicitSolver {
            reg,
            alpha,
            weighting,
            niche,
            k,
            gram,
        }
    }

    /// The confidence of a rating of `stars` given at `timestamp`, or
    /// `None` if the signal ignores it.
    pub fn confidence(&self, stars: f32, timestamp: i64) -> Option<f32> {
        self.weighting
            .weight(stars, timestamp)
            .map(|w| 1.0 + self.alpha * w)
    }

    /// The exact least-squares factors of a user whose rated movies have
    /// the confidences `items` (`(movie index, confidence)`, see
    /// [`ImplicitSolver::confidence`]) against the movie factors `q`: the
    /// equation training solves, so a training user solved again from the
    /// same ratings gets (nearly) the vector training gave them. Returns
    /// the Cholesky factor too, for [`ImplicitSolver::explain`]. `None`
    /// when `items` is empty.
    pub fn fold_in(&self, q: &[f32], items: &[(u32, f32)]) -> Option<FoldedUser> {
        let k = self.k;
        // The history's part of the system, `Σ (c_i − 1) y_i y_iᵀ`, in f32
        // (lower triangle) where it vectorizes: this is most of a request's
        // work. Added to the f64 `YᵀY + reg·I` for the exact solve.
        let mut delta = vec![0.0f32; k * k];
        let mut b = vec![0.0f64; k];
        let mut used = Vec::with_capacity(items.len());
        for &(j, c) in items {
            let y = &q[j as usize * k..(j as usize + 1) * k];
            rank1_lower(&mut delta, y, c - 1.0, k);
            for (br, &yr) in b.iter_mut().zip(y) {
                *br += c as f64 * yr as f64;
            }
            used.push((j, c));
        }
        if used.is_empty() {
            return None;
        }
        let mut a = self.gram.clone();
        for r in 0..k {
            for (x, &d) in a[r * k..r * k + r + 1].iter_mut().zip(&delta[r * k..]) {
                *x += d as f64;
            }
        }
        if !cholesky_solve(&mut a, k, &mut b) {
            return None;
        }
        // Lᵀ row-major as well, so both triangular solves of `explain` read
        // contiguous rows.
        let mut upper = vec![0.0f64; k * k];
        for i in 0..k {
            for j in 0..=i {
                upper[j * k + i] = a[i * k + j];
            }
        }
        Some(FoldedUser {
            vector: b.iter().map(|&x| x as f32).collect(),
            chol: a,
            chol_t: upper,
            items: used,
        })
    }

    /// How much each of the user's rated movies contributes to the score of
    /// movie `target` (as `implicit`'s `explain`): the score is
    /// `y_tᵀ W⁻¹ Σ_i c_i y_i` with `W` the user's system matrix, so movie
    /// `i` contributes `c_i · (W⁻¹ y_t) · y_i`. Returned in `user.items`
    /// order; they sum to the folded-in score.
    pub fn explain(&self, q: &[f32], user: &FoldedUser, target: u32) -> Vec<f32> {
        let k = self.k;
        let yt = &q[target as usize * k..(target as usize + 1) * k];
        let mut z: Vec<f64> = yt.iter().map(|&x| x as f64).collect();
        cholesky_apply_inverse(&user.chol, &user.chol_t, k, &mut z);
        let z: Vec<f32> = z.iter().map(|&x| x as f32).collect();
        user.items
            .iter()
            .map(|&(j, c)| c * dot(&q[j as usize * k..(j as usize + 1) * k], &z))
            .collect()
    }
}

/// `delta += w · y yᵀ`, lower triangle of the row-major `k × k` `delta`;
/// compiled for AVX2 and FMA where the CPU has them.
fn rank1_lower(delta: &mut [f32], y: &[f32], w: f32, k: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA support were checked just above.
        unsafe { rank1_lower_avx2(delta, y, w, k) };
        return;
    }
    rank1_lower_portable(delta, y, w, k);
}

#[inline(always)]
fn rank1_lower_portable(delta: &mut [f32], y: &[f32], w: f32, k: usize) {
    for r in 0..k {
        let s = w * y[r];
        for (d, &ys) in delta[r * k..r * k + r + 1].iter_mut().zip(&y[..=r]) {
            *d += s * ys;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rank1_lower_avx2(delta: &mut [f32], y: &[f32], w: f32, k: usize) {
    rank1_lower_portable(delta, y, w, k)
}

/// A user solved at request time.
pub struct FoldedUser {
    /// The user's factors.
    pub vector: Vec<f32>,
    /// Cholesky factor of the user's system matrix (lower triangle).
    chol: Vec<f64>,
    /// Its transpose (upper triangle).
    chol_t: Vec<f64>,
    /// The rated movies that counted, with their confidence.
    pub items: Vec<(u32, f32)>,
}

/// `Σ_j y_j y_jᵀ` of the rows of `y` (`k` wide), summed in f64 in a fixed
/// order of fixed-size chunks so it does not depend on the thread count.
fn gramian(y: &[f32], k: usize) -> Vec<f64> {
    const ROWS: usize = 1024;
    let partial: Vec<Vec<f64>> = y
        .par_chunks(ROWS * k)
        .map(|chunk| {
            let mut g = vec![0.0f64; k * k];
            for row in chunk.chunks_exact(k) {
                for a in 0..k {
                    let ya = row[a] as f64;
                    for (gb, &yb) in g[a * k..a * k + a + 1].iter_mut().zip(&row[..=a]) {
                        *gb += ya * yb as f64;
                    }
                }
            }
            g
        })
        .collect();
    let mut g = vec![0.0f64; k * k];
    for p in partial {
        for (a, b) in g.iter_mut().zip(p) {
            *a += b;
        }
    }
    for a in 0..k {
        for b in 0..a {
            g[b * k + a] = g[a * k + b];
        }
    }
    g
}

/// `z ← (L Lᵀ)⁻¹ z` for the Cholesky factor `L` in the lower triangle of `l`
/// and its transpose in the upper triangle of `lt` (both row-major).
fn cholesky_apply_inverse(l: &[f64], lt: &[f64], k: usize, z: &mut [f64]) {
    for i in 0..k {
        let s = z[i] - dot64(&l[i * k..i * k + i], &z[..i]);
        z[i] = s / l[i * k + i];
    }
    for i in (0..k).rev() {
        let s = z[i] - dot64(&lt[i * k + i + 1..(i + 1) * k], &z[i + 1..]);
        z[i] = s / l[i * k + i];
    }
}

/// Per-thread scratch of the row solves.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Scratch {
    fn new(k: usize) -> Scratch {
        Scratch {
            r: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            a: vec![0.0; k * k],
            b: vec![0.0; k],
        }
    }
}

#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `out = g · v` for the symmetric `k × k` matrix `g`.
#[inline(always)]
fn symv(g: &[f32], v: &[f32], out: &mut [f32]) {
    let k = v.len();
    for (o, row) in out.iter_mut().zip(g.chunks_exact(k)) {
        *o = dot(row, v);
    }
}

/// Conjugate-gradient steps on one row's system, starting from `x`.
#[inline(always)]
fn cg_row(
    gram: &[f32],
    other: &[f32],
    cols: &[u32],
    conf: &[f32],
    steps: usize,
    x: &mut [f32],
    s: &mut Scratch,
) {
    let k = x.len();
    let y = |j: u32| &other[j as usize * k..(j as usize + 1) * k];
    // r = b − A x, with b = Σ c y and A = G + Σ (c − 1) y yᵀ.
    symv(gram, x, &mut s.r);
    s.r.iter_mut().for_each(|v| *v = -*v);
    for (&j, &c) in cols.iter().zip(conf) {
        let yj = y(j);
        axpy(&mut s.r, c - (c - 1.0) * dot(yj, x), yj);
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    if rs_old < 1e-20 {
        return;
    }
    for _ in 0..steps {
        symv(gram, &s.p, &mut s.ap);
        for (&j, &c) in cols.iter().zip(conf) {
            let yj = y(j);
            axpy(&mut s.ap, (c - 1.0) * dot(yj, &s.p), yj);
        }
        let pap = dot(&s.p, &s.ap);
        if pap <= 0.0 || !pap.is_finite() {
            return;
        }
        let a = rs_old / pap;
        axpy(x, a, &s.p);
        axpy(&mut s.r, -a, &s.ap);
        let rs_new = dot(&s.r, &s.r);
        if rs_new < 1e-20 {
            return;
        }
        let beta = rs_new / rs_old;
        for (p, r) in s.p.iter_mut().zip(&s.r) {
            *p = r + beta * *p;
        }
        rs_old = rs_new;
    }
}

/// The exact solution of one row's system; `false` if not positive definite.
#[inline(always)]
fn exact_row(
    gram: &[f64],
    other: &[f32],
    cols: &[u32],
    conf: &[f32],
    x: &mut [f32],
    s: &mut Scratch,
) -> bool {
    let k = x.len();
    s.a.copy_from_slice(gram);
    s.b.iter_mut().for_each(|v| *v = 0.0);
    for (&j, &c) in cols.iter().zip(conf) {
        let yj = &other[j as usize * k..(j as usize + 1) * k];
        let w = (c - 1.0) as f64;
        for r in 0..k {
            let yr = yj[r] as f64;
            for (g, &ys) in s.a[r * k..r * k + r + 1].iter_mut().zip(&yj[..=r]) {
                *g += w * yr * ys as f64;
            }
            s.b[r] += c as f64 * yr;
        }
    }
    if !cholesky_solve(&mut s.a, k, &mut s.b) {
        return false;
    }
    for (x, b) in x.iter_mut().zip(&s.b) {
        *x = *b as f32;
    }
    true
}

/// Solves every row of `own` against `other`; returns how many exact solves
/// failed.
fn solve_side(
    params: &IalsParams,
    csr: &Csr,
    other: &[f32],
    own: &mut [f32],
    exact: bool,
) -> usize {
    let k = params.factors;
    let mut gram = gramian(other, k);
    for a in 0..k {
        gram[a * k + a] += params.reg;
    }
    let gram32: Vec<f32> = gram.iter().map(|&x| x as f32).collect();
    #[cfg(target_arch = "x86_64")]
    let avx2 =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    own.par_chunks_mut(k)
        .enumerate()
        .map_init(
            || Scratch::new(k),
            |s, (r, x)| {
                let (cols, conf) = csr.row(r);
                if exact {
                    return usize::from(!exact_row(&gram, other, cols, conf, x, s));
                }
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: AVX2 and FMA support were checked above.
                    unsafe { cg_row_avx2(&gram32, other, cols, conf, params.cg_steps, x, s) };
                    return 0;
                }
                cg_row(&gram32, other, cols, conf, params.cg_steps, x, s);
                0
            },
        )
        .sum()
}

/// [`cg_row`] compiled for 256-bit vectors (the axpy loops vectorize).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cg_row_avx2(
    gram: &[f32],
    other: &[f32],
    cols: &[u32],
    conf: &[f32],
    steps: usize,
    x: &mut [f32],
    s: &mut Scratch,
) {
    cg_row(gram, other, cols, conf, steps, x, s)
}

/// The rating matrix as confidences `1 + alpha · w`, grouped by user and by
/// movie.
fn confidences(weighting: &Weighting, alpha: f64, data: &TrainSet) -> (Csr, Csr) {
    let alpha = alpha as f32;
    let implicit = data.map_weights(|r, t| weighting.weight(r, t).map(|w| 1.0 + alpha * w));
    (implicit.csr(true), implicit.csr(false))
}

pub(crate) fn fit(
    params: &IalsParams,
    data: &TrainSet,
    seed: u64,
    progress: &dyn Progress,
) -> Result<FactorModel> {
    let started = Instant::now();
    let k = params.factors;
    let weighting = Weighting {
        signal: params.signal,
        half_life: params.half_life,
        reference: data.reference_time(),
        fresh: params.fresh_weight,
        recent: params.history_half_life,
    };
    let (by_user, by_movie) = confidences(&weighting, params.alpha, data);
    if by_user.cols.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "ials: no rating counts under the signal {}; choose a lower threshold",
            params.signal
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, params.init_std)
        .map_err(|e| Error::InvalidArgument(format!("ials init distribution: {e}")))?;
    let mut users = vec![0.0f32; data.n_users() * k];
    let mut movies: Vec<f32> = (0..data.n_movies() * k)
        .map(|_| normal.sample(&mut rng) as f32)
        .collect();
    let exact = params.solver == IalsSolver::Cholesky;
    progress.stage("ials", Some(params.iterations as u64));
    for it in 0..params.iterations {
        let failed = solve_side(params, &by_user, &movies, &mut users, exact)
            + solve_side(params, &by_movie, &users, &mut movies, exact);
        if failed > 0 {
            return Err(Error::InvalidArgument(format!(
                "ials: {failed} least-squares systems were not positive definite in iteration \
                 {}; raise reg",
                it + 1
            )));
        }
        if users.iter().chain(&movies).any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "ials diverged in iteration {} (non-finite factors); raise reg or lower alpha",
                it + 1
            )));
        }
        progress.advance(1);
        progress.message(&format!(
            "ials iteration {}/{}: {:.2}s",
            it + 1,
            params.iterations,
            started.elapsed().as_secs_f64()
        ));
    }
    // One last user sweep against the final movie factors, so a user's
    // stored factors are the solution a fold-in computes from the same
    // ratings (exactly, with the Cholesky solver).
    if solve_side(params, &by_user, &movies, &mut users, exact) > 0 {
        return Err(Error::InvalidArgument(
            "ials: a least-squares system was not positive definite; raise reg".into(),
        ));
    }
    progress.finish();
    let n_users = data.n_users();
    let n_movies = data.n_movies();
    let mut model = FactorModel::from_parts(
        Algo::Ials,
        0.0,
        data.user_ids.clone(),
        data.movie_ids.clone(),
        vec![0.0; n_users],
        vec![0.0; n_movies],
        k,
        users,
        movies,
    )?;
    model.set_implicit(
        params.reg as f32,
        params.alpha as f32,
        weighting,
        params.niche(),
    );
    Ok(model)
}

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector};

    use super::*;
    use crate::models::testutil::low_rank;
    use crate::progress::Silent;
    use crate::types::{Rated, Rating};

    /// Builds the dense normal equations of one user from scratch with
    /// nalgebra: `(YᵀCY + reg I) x = YᵀCp` over *every* movie, with
    /// `c = 1` and `p = 0` for unrated ones: the textbook form, without the
    /// `YᵀY` trick the solver relies on.
    fn dense_user_solution(q: &[f32], k: usize, items: &[(u32, f32)], reg: f64) -> DVector<f64> {
        let n = q.len() / k;
        let y = DMatrix::from_fn(n, k, |i, j| q[i * k + j] as f64);
        let mut c = DVector::from_element(n, 1.0);
        let mut p = DVector::zeros(n);
        for &(j, conf) in items {
            c[j as usize] = conf as f64;
            p[j as usize] = 1.0;
        }
        let cy = DMatrix::from_fn(n, k, |i, j| c[i] * y[(i, j)]);
        let a = y.transpose() * &cy + DMatrix::identity(k, k) * reg;
        let b = cy.transpose() * p;
        a.cholesky().unwrap().solve(&b)
    }

    fn untimed(signal: Signal) -> Weighting {
        Weighting {
            signal,
            half_life: HalfLife::NONE,
            reference: 0,
            fresh: 1.0,
            recent: HalfLife::NONE,
        }
    }

    fn random_q(n: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nd = Normal::new(0.0, 0.3).unwrap();
        (0..n * k).map(|_| nd.sample(&mut rng) as f32).collect()
    }

    #[test]
    fn fold_in_solves_the_textbook_normal_equations() {
        let (n, k) = (40, 6);
        let q = random_q(n, k, 3);
        let solver =
            ImplicitSolver::new(0.5, 4.0, untimed(Signal::Weighted), NicheParams::OFF, &q, k);
        let stars = [(3u32, 5.0f32), (7, 2.0), (11, 4.5), (30, 1.0)];
        let given: Vec<(u32, f32)> = stars
            .iter()
            .map(|&(j, s)| (j, solver.confidence(s, 0).unwrap()))
            .collect();
        let folded = solver.fold_in(&q, &given).unwrap();
        let conf: Vec<(u32, f32)> = stars.iter().map(|&(j, s)| (j, 1.0 + 4.0 * s)).collect();
        let want = dense_user_solution(&q, k, &conf, 0.5);
        for (a, b) in folded.vector.iter().zip(want.iter()) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn explanations_sum_to_the_score() {
        let (n, k) = (30, 5);
        let q = random_q(n, k, 9);
        let solver = ImplicitSolver::new(0.2, 10.0, untimed(Signal::All), NicheParams::OFF, &q, k);
        let folded = solver
            .fold_in(&q, &[(1, 11.0), (2, 11.0), (17, 11.0)])
            .unwrap();
        for target in [0u32, 5, 29] {
            let parts = solver.explain(&q, &folded, target);
            assert_eq!(parts.len(), 3);
            let y = &q[target as usize * k..(target as usize + 1) * k];
            let score: f32 = y.iter().zip(&folded.vector).map(|(a, b)| a * b).sum();
            let sum: f32 = parts.iter().sum();
            assert!((sum - score).abs() < 1e-4, "{sum} vs {score}");
        }
    }

    #[test]
    fn cg_converges_to_the_exact_solution() {
        let (n, k) = (50, 8);
        let q = random_q(n, k, 5);
        let mut gram = gramian(&q, k);
        for a in 0..k {
            gram[a * k + a] += 0.3;
        }
        let g32: Vec<f32> = gram.iter().map(|&x| x as f32).collect();
        let cols = [0u32, 4, 9, 22, 41];
        let conf = [5.0f32, 2.0, 11.0, 3.0, 7.0];
        let mut s = Scratch::new(k);
        let mut exact = vec![0.0f32; k];
        assert!(exact_row(&gram, &q, &cols, &conf, &mut exact, &mut s));
        let mut x = vec![0.0f32; k];
        cg_row(&g32, &q, &cols, &conf, k, &mut x, &mut s);
        for (a, b) in x.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        let want = dense_user_solution(
            &q,
            k,
            &cols.iter().copied().zip(conf).collect::<Vec<_>>(),
            0.3,
        );
        for (a, b) in exact.iter().zip(want.iter()) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    fn fit_with(ratings: &[Rating], params: &IalsParams) -> FactorModel {
        let data = TrainSet::new(ratings).unwrap();
        fit(params, &data, 7, &Silent).unwrap()
    }

    #[test]
    fn training_is_deterministic_across_thread_counts() {
        let ratings = low_rank(60, 40, 3, 0.3, 1);
        let params = IalsParams {
            factors: 8,
            iterations: 4,
            ..IalsParams::default()
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| fit_with(&ratings, &params));
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| fit_with(&ratings, &params));
        assert_eq!(one.p(), three.p());
        assert_eq!(one.q(), three.q());
    }

    /// Training ends with a user sweep against the final movie factors, so
    /// folding a training user in again from the same ratings gives the
    /// trained vector (up to rounding, with exact solves), which is what
    /// lets the server fold in users consistently.
    #[test]
    fn folding_in_a_training_user_recovers_their_vector() {
        // Ratings spread over ~100 days, so a half-life weighs them apart.
        let mut ratings = low_rank(80, 50, 3, 0.3, 2);
        for (i, r) in ratings.iter_mut().enumerate() {
            r.timestamp = (i as i64 * 7_919) % (100 * 86_400);
        }
        for half_life in [HalfLife::NONE, HalfLife::days(20.0)] {
            let params = IalsParams {
                factors: 6,
                iterations: 12,
                solver: IalsSolver::Cholesky,
                half_life,
                ..IalsParams::default()
            };
            let model = fit_with(&ratings, &params);
            let k = model.k();
            let mut worst = 0.0f32;
            for &user in model.user_ids().iter().take(20) {
                let history: Vec<Rated> = ratings
                    .iter()
                    .filter(|r| r.user_id == user)
                    .map(Rated::from)
                    .collect();
                let folded = model.fold_in(&history).unwrap();
                let trained = model.user_vector(user).unwrap();
                let norm: f32 = trained.iter().map(|x| x * x).sum::<f32>().sqrt();
                let diff: f32 = folded
                    .vector
                    .iter()
                    .zip(trained)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                worst = worst.max(diff / norm);
                assert_eq!(folded.vector.len(), k);
            }
            assert!(
                worst < 1e-4,
                "{half_life}: relative difference up to {worst}"
            );
        }
    }

    #[test]
    fn rejects_bad_parameters_with_their_names() {
        for (p, needle) in [
            (
                IalsParams {
                    reg: 0.0,
                    ..IalsParams::default()
                },
                "reg",
            ),
            (
                IalsParams {
                    alpha: -1.0,
                    ..IalsParams::default()
                },
                "alpha",
            ),
            (
                IalsParams {
                    factors: 0,
                    ..IalsParams::default()
                },
                "factors",
            ),
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
