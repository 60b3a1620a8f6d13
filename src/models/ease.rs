//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a ranking
//! model that scores a movie by a weighted sum over the movies a person
//! already chose.
//!
//! With `X` the users × movies matrix of implicit weights ([`Signal`]) and
//! `G = XᵀX`, EASE is the item-item matrix `B` minimizing
//! `‖X − XB‖² + λ‖B‖²` with a zero diagonal (a movie may not explain
//! itself). It has a closed form: with `P = (G + λI)⁻¹`,
//! `B_ij = −P_ij / P_jj` and `B_jj = 0`. A user's scores are `x_u B`: for
//! each movie `i` they chose, row `i` of `B` adds its weights. So the model
//! needs no per-user parameters: a brand-new user with three ratings is
//! scored exactly like a user seen in training, and every score splits
//! into per-movie terms that explain it.
//!
//! **Cost, and the ceiling.** The closed form is dense in the number of
//! movies `n`: the Gram matrix and its inverse take `2 · 4 · n²` bytes (f32:
//! the same lists as f64 on ml-latest-small, at half the memory and time)
//! and the Cholesky factorization and inversion about `n³` floating-point
//! operations (through `faer`, blocked and parallel). ml-latest-small's
//! 8,553 movies take about 7 s on two cores; 10,000 movies need 0.8 GB and
//! about 12 s; 62,000 (all of ML-25M) would need 31 GB and hours. So a
//! catalogue larger than `max_items` is restricted to its `max_items`
//! most-rated movies (the rest are never recommended by this model, and
//! training says so); the default keeps the whole of ml-latest-small.
//!
//! **Pruning.** The full `B` of ml-latest-small is 8,500² floats (290 MB);
//! serving needs only each row's strongest weights, so every row keeps its
//! `neighbors` largest entries by absolute value (sparse rows), which makes
//! the artifact 20 times smaller and scoring a user proportional to their
//! history, not to `n²`, for 0.009 of NDCG@10 on ml-latest-small at the
//! default 200 (measured in the README; `neighbors = 0` keeps every weight).

use std::collections::HashMap;
use std::time::Instant;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::TrainSet;
use super::niche::NicheParams;
use super::signal::{HalfLife, Signal, Weighting};
use crate::progress::Progress;
use crate::types::Rated;
use crate::{Error, Result};

/// EASE hyperparameters, chosen on validation splits carved from
/// ml-latest-small's train split (`cinematch tune --algo ease --folds 3`,
/// see the README): the star-weighted signal wins clearly; NDCG@10 is flat
/// (within 0.003) for lambda from about 270 to 690, and of that plateau the
/// least regularized end is taken, because its lists for users with a few
/// ratings follow their taste rather than the most-rated movies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseParams {
    /// L2 regularization, relative to the signal's scale: the Gram matrix's
    /// diagonal gets `lambda · mean(w²)` (the mean over the counted
    /// ratings' weights `w`), so one value means the same strength for
    /// binary input (`w = 1`) and for stars (`w` up to 5).
    pub lambda: f64,
    /// How ratings become the weights of `X` (see [`Signal`]).
    pub signal: Signal,
    /// How fast a rating's weight fades with age, in training and when
    /// scoring a history (see [`HalfLife`]); `none` by default.
    pub half_life: HalfLife,
    /// What a rating newer than the model's training data weighs (a
    /// fold-in), as a multiple of its weight (see [`Weighting`]).
    pub fresh_weight: f32,
    /// How fast a user's ratings fade, when their history is scored, with
    /// their age before the user's newest rating (see
    /// [`Weighting::recent`]); training is untouched.
    #[serde(default = "crate::models::signal::no_fade")]
    pub history_half_life: HalfLife,
    /// Largest catalogue modelled (memory grows as `8 · max_items²` bytes);
    /// larger ones keep their most-rated movies.
    pub max_items: usize,
    /// Weights kept per row of `B` (its strongest); 0 keeps every weight.
    pub neighbors: usize,
    /// The niche re-ranking of short histories ([`NicheParams`]): the
    /// largest popularity exponent...
    pub debias: f32,
    /// ...the largest calibration weight...
    pub calibrate: f32,
    /// ...and the history length at which both are at half strength.
    pub known: f32,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams {
            lambda: 300.0,
            signal: Signal::Weighted,
            half_life: HalfLife::NONE,
            fresh_weight: 1.0,
            history_half_life: HalfLife::NONE,
            max_items: 10_000,
            neighbors: 200,
            debias: NicheParams::default().debias,
            calibrate: NicheParams::default().calibrate,
            known: NicheParams::default().known,
        }
    }
}

impl EaseParams {
    /// Checked by [`crate::models::fit`]; public so a caller can reject bad
    /// settings before loading ratings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("ease {m}")));
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return bad(format!(
                "lambda must be a finite number > 0, got {}",
                self.lambda
            ));
        }
        // 40,000² f32 twice is 12.8 GB; anything beyond is a typo.
        if !(2..=40_000).contains(&self.max_items) {
            return bad(format!(
                "max_items must be between 2 and 40000 (memory grows with its square: 8 bytes \
                 per pair), got {}",
                self.max_items
            ));
        }
        self.half_life.validate("ease")?;
        self.history_half_life.validate("ease history")?;
        if !(self.fresh_weight.is_finite() && (0.01..=1000.0).contains(&self.fresh_weight)) {
            return Err(Error::InvalidArgument(format!(
                "ease fresh_weight must be between 0.01 and 1000, got {}",
                self.fresh_weight
            )));
        }
        self.niche().validate("ease")?;
        self.signal.validate("ease")
    }

    /// The niche re-ranking these parameters ask for.
    pub fn niche(&self) -> NicheParams {
        NicheParams {
            debias: self.debias,
            calibrate: self.calibrate,
            known: self.known,
        }
    }
}

/// A trained EASE model: the pruned rows of `B` over the movies it covers.
#[derive(Clone)]
pub struct EaseModel {
    params: EaseParams,
    /// The newest training rating's time, from which the half-life
    /// measures ages.
    reference: i64,
    /// Covered movies, ascending; position = dense index.
    movie_ids: Vec<i32>,
    movie_index: HashMap<i32, u32>,
    /// Movies in the training data, covered or not.
    catalogue: u32,
    /// Row `i` of `B`: `cols[offsets[i]..offsets[i+1]]` ascending, `vals`
    /// the weights.
    offsets: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl std::fmt::Debug for EaseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EaseModel")
            .field("movies", &self.movie_ids.len())
            .field("catalogue", &self.catalogue)
            .field("weights", &self.vals.len())
            .finish()
    }
}

impl EaseModel {
    /// Assembles a model from its parts, checking every invariant the
    /// scoring code relies on (so a corrupted artifact cannot index out of
    /// bounds).
    pub(crate) fn from_parts(
        params: EaseParams,
        reference: i64,
        movie_ids: Vec<i32>,
        catalogue: u32,
        offsets: Vec<u32>,
        cols: Vec<u32>,
        vals: Vec<f32>,
    ) -> Result<EaseModel> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("invalid ease model: {m}")));
        let n = movie_ids.len();
        if offsets.len() != n + 1 || offsets.first() != Some(&0) {
            return bad(format!("{} row offsets for {n} movies", offsets.len()));
        }
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets[n] as usize != cols.len() {
            return bad("row offsets are not ascending or do not match the weights".into());
        }
        if cols.len() != vals.len() {
            return bad(format!("{} columns but {} weights", cols.len(), vals.len()));
        }
        if let Some(w) = movie_ids.windows(2).find(|w| w[0] >= w[1]) {
            return bad(format!(
                "movie ids not strictly ascending at {} → {}",
                w[0], w[1]
            ));
        }
        for r in 0..n {
            let row = &cols[offsets[r] as usize..offsets[r + 1] as usize];
            if row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= n)
            {
                return bad(format!("row {r} has unsorted or out-of-range columns"));
            }
        }
        if vals.iter().any(|v| !v.is_finite()) {
            return bad("non-finite weight".into());
        }
        if (catalogue as usize) < n {
            return bad(format!(
                "catalogue of {catalogue} is smaller than {n} movies"
            ));
        }
        let movie_index = movie_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        Ok(EaseModel {
            params,
            reference,
            movie_ids,
            movie_index,
            catalogue,
            offsets,
            cols,
            vals,
        })
    }

    pub fn params(&self) -> &EaseParams {
        &self.params
    }

    /// See [`crate::models::Model::set_history_half_life`].
    pub fn set_history_half_life(&mut self, h: HalfLife) {
        self.params.history_half_life = h;
    }

    /// How this model turns a rating into a weight (training's rule).
    pub fn weighting(&self) -> Weighting {
        Weighting {
            signal: self.params.signal,
            half_life: self.params.half_life,
            reference: self.reference,
            fresh: self.params.fresh_weight,
            recent: self.params.history_half_life,
        }
    }

    /// The newest training rating's time (unix seconds).
    pub fn reference_time(&self) -> i64 {
        self.reference
    }

    /// Covered movies, ascending; the order of [`EaseModel::score`]'s output.
    pub fn movie_ids(&self) -> &[i32] {
        &self.movie_ids
    }

    pub fn movie_index(&self, movie: i32) -> Option<usize> {
        self.movie_index.get(&movie).map(|&i| i as usize)
    }

    /// Movies in the training data; more than [`EaseModel::movie_ids`] when
    /// the catalogue was restricted to `max_items`.
    pub fn catalogue(&self) -> usize {
        self.catalogue as usize
    }

    /// Stored weights (after pruning).
    pub fn weights(&self) -> usize {
        self.vals.len()
    }

    pub(crate) fn parts(&self) -> (&[u32], &[u32], &[f32]) {
        (&self.offsets, &self.cols, &self.vals)
    }

    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.cols[a..b], &self.vals[a..b])
    }

    /// A user's history as `(movie index, weight)`: the ratings the signal
    /// counts, for movies the model covers, weighted as training weighed
    /// them (stars and age).
    pub fn history(&self, ratings: &[Rated]) -> Vec<(u32, f32)> {
        self.weighting()
            .history(ratings, |m| self.movie_index.get(&m).copied())
    }

    /// Scores `x_u B` of every covered movie for the history `hist`, into
    /// `out` (resized to the covered movies, in [`EaseModel::movie_ids`]
    /// order).
    pub fn score(&self, hist: &[(u32, f32)], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.movie_ids.len(), 0.0);
        for &(i, w) in hist {
            let (cols, vals) = self.row(i as usize);
            for (&j, &v) in cols.iter().zip(vals) {
                // SAFETY-free: `from_parts` checked every column < n.
                out[j as usize] += w * v;
            }
        }
    }

    /// The weight of history movie `i` towards movie `j`, `B_ij` (0 when
    /// pruned).
    pub fn weight(&self, i: usize, j: usize) -> f32 {
        let (cols, vals) = self.row(i);
        match cols.binary_search(&(j as u32)) {
            Ok(p) => vals[p],
            Err(_) => 0.0,
        }
    }

    /// Each history movie's term `w_i · B_ij` of movie `j`'s score, in
    /// `hist` order; they sum to the score.
    pub fn contributions(&self, hist: &[(u32, f32)], j: usize) -> Vec<f32> {
        hist.iter()
            .map(|&(i, w)| w * self.weight(i as usize, j))
            .collect()
    }

    /// The movies `movie` points to most strongly (largest positive `B`
    /// weights of its row), best first, as `(movie id, weight)`.
    pub fn related(&self, movie: i32, k: usize) -> Vec<(i32, f32)> {
        let Some(i) = self.movie_index(movie) else {
            return Vec::new();
        };
        let (cols, vals) = self.row(i);
        let mut pairs: Vec<(i32, f32)> = cols
            .iter()
            .zip(vals)
            .filter(|(_, &v)| v > 0.0)
            .map(|(&j, &v)| (self.movie_ids[j as usize], v))
            .collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs.truncate(k);
        pairs
    }
}

/// Movies covered: all of them, or the `max_items` with the most counted
/// ratings (ties to the lower id), as ascending dense indices of `data`.
fn covered_movies(counts: &[u32], max_items: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..counts.len() as u32)
        .filter(|&m| counts[m as usize] > 0)
        .collect();
    if order.len() > max_items {
        order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        order.truncate(max_items);
        order.sort_unstable();
    }
    order
}

/// `G = XᵀX + λI` over the covered movies, in f64, built row by row in
/// parallel: row `a` sums `w_ua · x_u` over the users of movie `a`, so no
/// two threads write the same memory and the sums run in a fixed order.
fn gram(by_user: &[Vec<(u32, f32)>], by_movie: &[Vec<(u32, f32)>], lambda: f64) -> Mat<f32> {
    let n = by_movie.len();
    let mut g = Mat::<f32>::zeros(n, n);
    // Column-major: column `a` is contiguous; G is symmetric, so filling
    // column a with row a's values is the same matrix.
    g.par_col_iter_mut().enumerate().for_each(|(a, col)| {
        let col = col
            .try_as_col_major_mut()
            .expect("columns of an owned Mat are contiguous")
            .as_slice_mut();
        // Products of half-star weights are multiples of 1/4, so these sums
        // are exact in f32 up to 2^22 (4 million), far above any co-count.
        for &(u, wa) in &by_movie[a] {
            for &(b, wb) in &by_user[u as usize] {
                col[b as usize] += wa * wb;
            }
        }
        col[a] += lambda as f32;
    });
    g
}

pub(crate) fn fit(
    params: &EaseParams,
    data: &TrainSet,
    progress: &dyn Progress,
) -> Result<EaseModel> {
    let started = Instant::now();
    let signal = params.signal;
    let reference = data.reference_time();
    let weighting = Weighting {
        signal,
        half_life: params.half_life,
        reference,
        fresh: params.fresh_weight,
        recent: params.history_half_life,
    };
    let implicit = data.map_weights(|r, t| weighting.weight(r, t));
    let mut counts = vec![0u32; data.n_movies()];
    for e in &implicit.entries {
        counts[e.i as usize] += 1;
    }
    let covered = covered_movies(&counts, params.max_items);
    let n = covered.len();
    if n < 2 {
        return Err(Error::InvalidArgument(format!(
            "ease needs at least two movies with ratings counted under the signal {signal}; \
             got {n}"
        )));
    }
    let mut dense = vec![u32::MAX; data.n_movies()];
    for (d, &m) in covered.iter().enumerate() {
        dense[m as usize] = d as u32;
    }
    let mut by_user: Vec<Vec<(u32, f32)>> = vec![Vec::new(); data.n_users()];
    let mut by_movie: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for e in &implicit.entries {
        let d = dense[e.i as usize];
        if d != u32::MAX {
            by_user[e.u as usize].push((d, e.r));
            by_movie[d as usize].push((e.u, e.r));
        }
    }
    progress.stage("ease", Some(4));
    progress.message(&format!(
        "ease: {n} movies{} , lambda {}",
        if n < data.n_movies() {
            format!(
                " (the {n} most-rated of {}: max_items = {})",
                data.n_movies(),
                params.max_items
            )
        } else {
            String::new()
        },
        params.lambda
    ));
    let mean_sq = {
        let (sum, n) = by_movie
            .iter()
            .flatten()
            .fold((0.0f64, 0usize), |(s, n), &(_, w)| {
                (s + (w as f64) * (w as f64), n + 1)
            });
        if n == 0 {
            1.0
        } else {
            sum / n as f64
        }
    };
    let mut g = gram(&by_user, &by_movie, params.lambda * mean_sq);
    drop(by_user);
    drop(by_movie);
    progress.advance(1);
    let t_gram = started.elapsed().as_secs_f64();

    let par = Par::rayon(0);
    {
        let mut buf = MemBuffer::new(cholesky_in_place_scratch::<f32>(n, par, Default::default()));
        cholesky_in_place(
            g.as_mut(),
            Default::default(),
            par,
            MemStack::new(&mut buf),
            Default::default(),
        )
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "ease: the regularized Gram matrix is not positive definite ({e}); raise lambda"
            ))
        })?;
    }
    progress.advance(1);
    let t_chol = started.elapsed().as_secs_f64();
    // P = L⁻ᵀ L⁻¹, written over L (no longer needed) to keep two n² buffers.
    let mut l_inv = Mat::<f32>::zeros(n, n);
    faer::linalg::triangular_inverse::invert_lower_triangular(l_inv.as_mut(), g.as_ref(), par);
    triangular::matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        l_inv.as_ref().transpose(),
        BlockStructure::TriangularUpper,
        l_inv.as_ref(),
        BlockStructure::TriangularLower,
        1.0,
        par,
    );
    drop(l_inv);
    // Mirror the lower triangle so column i holds all of row i of P.
    for j in 0..n {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    progress.advance(1);
    let t_inv = started.elapsed().as_secs_f64();

    let diag: Vec<f32> = (0..n).map(|j| g[(j, j)]).collect();
    if diag.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(Error::InvalidArgument(
            "ease: the inverse has a non-positive diagonal (numerical breakdown); raise lambda"
                .into(),
        ));
    }
    let keep = if params.neighbors == 0 {
        n - 1
    } else {
        params.neighbors.min(n - 1)
    };
    let g = &g;
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let col = g.col(i);
            let mut w: Vec<(u32, f32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (j as u32, -col[j] / diag[j]))
                .collect();
            if keep < w.len() {
                w.select_nth_unstable_by(keep, |a, b| {
                    b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
                });
                w.truncate(keep);
            }
            w.sort_unstable_by_key(|&(j, _)| j);
            w.into_iter().unzip()
        })
        .collect();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u32);
    let total: usize = rows.iter().map(|r| r.0.len()).sum();
    if u32::try_from(total).is_err() {
        return Err(Error::InvalidArgument(format!(
            "ease: {total} weights exceed 2^32; lower neighbors or max_items"
        )));
    }
    let mut cols = Vec::with_capacity(total);
    let mut vals = Vec::with_capacity(total);
    for (c, v) in rows {
        cols.extend_from_slice(&c);
        vals.extend_from_slice(&v);
        offsets.push(cols.len() as u32);
    }
    progress.advance(1);
    let t_all = started.elapsed().as_secs_f64();
    progress.message(&format!(
        "ease: {} weights kept; {t_all:.2}s (Gram {t_gram:.2}s, Cholesky {:.2}s, inverse {:.2}s, \
         pruning {:.2}s)",
        vals.len(),
        t_chol - t_gram,
        t_inv - t_chol,
        t_all - t_inv
    ));
    progress.finish();
    let movie_ids = covered
        .iter()
        .map(|&m| data.movie_ids[m as usize])
        .collect();
    EaseModel::from_parts(
        params.clone(),
        reference,
        movie_ids,
        data.n_movies() as u32,
        offsets,
        cols,
        vals,
    )
}

#[cfg(test)]
mod tests {
    use nalgebra::DMatrix;

    use super::*;
    use crate::progress::Silent;
    use crate::types::Rating;

    fn r(user: i32, movie: i32, rating: f32) -> Rating {
        Rating {
            user_id: user,
            movie_id: movie,
            rating,
            timestamp: 0,
        }
    }

    fn toy() -> Vec<Rating> {
        // Six users over five movies with a clear two-cluster structure.
        vec![
            r(1, 10, 5.0),
            r(1, 20, 4.0),
            r(1, 30, 1.0),
            r(2, 10, 4.0),
            r(2, 20, 5.0),
            r(3, 20, 3.0),
            r(3, 30, 4.5),
            r(4, 40, 5.0),
            r(4, 50, 4.0),
            r(5, 40, 3.0),
            r(5, 50, 2.0),
            r(5, 10, 1.0),
            r(6, 30, 5.0),
            r(6, 50, 3.5),
        ]
    }

    /// The closed form computed independently with nalgebra: a dense
    /// inverse of `XᵀX + λ·mean(x²)·I` (the mean over the nonzero entries
    /// of X), then `B = I − P diag(1/diag P)`.
    fn reference_b(
        ratings: &[Rating],
        weight: impl Fn(&Rating) -> Option<f64>,
        lambda: f64,
    ) -> (Vec<i32>, DMatrix<f64>) {
        let mut movies: Vec<i32> = ratings.iter().map(|r| r.movie_id).collect();
        movies.sort();
        movies.dedup();
        let mut users: Vec<i32> = ratings.iter().map(|r| r.user_id).collect();
        users.sort();
        users.dedup();
        let mut x = DMatrix::<f64>::zeros(users.len(), movies.len());
        for r in ratings {
            let u = users.binary_search(&r.user_id).unwrap();
            let m = movies.binary_search(&r.movie_id).unwrap();
            if let Some(w) = weight(r) {
                x[(u, m)] = w;
            }
        }
        let n = movies.len();
        let nonzero: Vec<f64> = x.iter().copied().filter(|v| *v != 0.0).collect();
        let mean_sq = nonzero.iter().map(|v| v * v).sum::<f64>() / nonzero.len() as f64;
        let g = x.transpose() * &x + DMatrix::identity(n, n) * (lambda * mean_sq);
        let p = g.try_inverse().unwrap();
        let b = DMatrix::from_fn(
            n,
            n,
            |i, j| {
                if i == j {
                    0.0
                } else {
                    -p[(i, j)] / p[(j, j)]
                }
            },
        );
        (movies, b)
    }

    fn stars(signal: Signal) -> impl Fn(&Rating) -> Option<f64> {
        move |r| signal.weight(r.rating).map(f64::from)
    }

    /// With a half-life, `X` holds `stars · 0.5^(age / half-life)`, ages
    /// from the newest rating (computed here by hand, not by the model's
    /// weighting), and a history is scored with the same weights.
    #[test]
    fn half_life_weights_match_the_closed_form() {
        let day = 86_400;
        let mut ratings = toy();
        for (i, r) in ratings.iter_mut().enumerate() {
            r.timestamp = (i as i64 % 5) * 10 * day;
        }
        let newest = 40 * day;
        let params = EaseParams {
            lambda: 0.7,
            signal: Signal::Weighted,
            half_life: HalfLife::days(10.0),
            neighbors: 0,
            ..EaseParams::default()
        };
        let model = fit(&params, &TrainSet::new(&ratings).unwrap(), &Silent).unwrap();
        let by_hand = |r: &Rating| {
            Some(
                f64::from(r.rating)
                    * 0.5f64.powf((newest - r.timestamp) as f64 / (10 * day) as f64),
            )
        };
        let (movies, b) = reference_b(&ratings, by_hand, 0.7);
        assert_eq!(model.reference_time(), newest);
        for i in 0..movies.len() {
            for j in 0..movies.len() {
                let got = model.weight(i, j) as f64;
                assert!(
                    (got - b[(i, j)]).abs() < 1e-5 * b.amax().max(1.0),
                    "B[{i},{j}]"
                );
            }
        }
        // Movie 10 rated 5 stars 20 days before the newest rating weighs a
        // quarter of 5; movie 30 rated 2 stars at the newest time weighs 2.
        let hist = model.history(&[Rated::new(10, 5.0, 20 * day), Rated::new(30, 2.0, newest)]);
        assert_eq!(hist, vec![(0, 1.25), (2, 2.0)]);
    }

    #[test]
    fn weights_match_the_closed_form_computed_with_nalgebra() {
        for signal in [Signal::All, Signal::Weighted, Signal::AtLeast(3.5)] {
            let ratings = toy();
            let params = EaseParams {
                lambda: 0.7,
                signal,
                neighbors: 0,
                ..EaseParams::default()
            };
            let model = fit(&params, &TrainSet::new(&ratings).unwrap(), &Silent).unwrap();
            let (movies, b) = reference_b(&ratings, stars(signal), 0.7);
            assert_eq!(model.movie_ids(), &movies[..]);
            for i in 0..movies.len() {
                for j in 0..movies.len() {
                    let got = model.weight(i, j) as f64;
                    // f32 arithmetic against an f64 reference.
                    assert!(
                        (got - b[(i, j)]).abs() < 1e-5 * b.amax().max(1.0),
                        "{signal}: B[{i},{j}] {got} vs {}",
                        b[(i, j)]
                    );
                }
            }
        }
    }

    #[test]
    fn scores_are_history_times_b_and_explanations_sum_to_them() {
        let ratings = toy();
        let params = EaseParams {
            lambda: 0.5,
            neighbors: 0,
            signal: Signal::All,
            ..EaseParams::default()
        };
        let model = fit(&params, &TrainSet::new(&ratings).unwrap(), &Silent).unwrap();
        let (_, b) = reference_b(&ratings, stars(Signal::All), 0.5);
        let hist = model.history(&crate::types::rated(&[(10, 4.0), (30, 2.0)]));
        let mut scores = Vec::new();
        model.score(&hist, &mut scores);
        for j in 0..5 {
            let want = b[(0, j)] + b[(2, j)];
            assert!((scores[j] as f64 - want).abs() < 1e-5);
            let parts = model.contributions(&hist, j);
            assert!((parts.iter().sum::<f32>() - scores[j]).abs() < 1e-6);
        }
    }

    #[test]
    fn pruning_keeps_each_rows_strongest_weights() {
        let ratings = toy();
        let full = EaseParams {
            lambda: 0.5,
            neighbors: 0,
            ..EaseParams::default()
        };
        let pruned = EaseParams {
            neighbors: 2,
            ..full.clone()
        };
        let data = TrainSet::new(&ratings).unwrap();
        let a = fit(&full, &data, &Silent).unwrap();
        let b = fit(&pruned, &data, &Silent).unwrap();
        assert_eq!(b.weights(), 5 * 2);
        for i in 0..5 {
            let mut mags: Vec<f32> = (0..5)
                .filter(|&j| j != i)
                .map(|j| a.weight(i, j).abs())
                .collect();
            mags.sort_by(|x, y| y.total_cmp(x));
            for j in 0..5 {
                let w = b.weight(i, j);
                if w != 0.0 {
                    assert_eq!(w, a.weight(i, j));
                    assert!(w.abs() >= mags[1]);
                }
            }
        }
    }

    #[test]
    fn large_catalogues_keep_their_most_rated_movies() {
        let ratings = toy();
        let params = EaseParams {
            lambda: 0.5,
            max_items: 3,
            ..EaseParams::default()
        };
        let model = fit(&params, &TrainSet::new(&ratings).unwrap(), &Silent).unwrap();
        // Counts: 10 → 3, 20 → 3, 30 → 3, 40 → 2, 50 → 3: ties go to the lower id.
        assert_eq!(model.movie_ids(), &[10, 20, 30]);
        assert_eq!(model.catalogue(), 5);
    }

    #[test]
    fn rejects_bad_parameters_with_their_names() {
        let e = EaseParams {
            lambda: -1.0,
            ..EaseParams::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("lambda"), "{e}");
        let e = EaseParams {
            max_items: 1_000_000,
            ..EaseParams::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_items"), "{e}");
    }
}
