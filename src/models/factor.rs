//! The factor model every rating algorithm (and iALS) produces:
//! `r̂(u, i) = μ + b_u + b_i + p_u · q_i`.

use std::collections::HashMap;
use std::fmt;

use super::ials::{FoldedUser, ImplicitSolver};
use super::niche::NicheParams;
use super::signal::Weighting;
use super::{dataset, linalg, Algo, MAX_RATING, MIN_RATING};
use crate::topk::select_top;
use crate::types::Rated;
use crate::{Error, Result};

/// A trained model: `r̂(u, i) = μ + b_u + b_i + p_u · q_i`, clipped to the
/// rating scale.
///
/// Fields are private because the id → index maps and cached norms must
/// stay consistent with the arrays; build one with [`FactorModel::from_parts`]
/// or [`FactorModel::from_bytes`].
#[derive(Clone)]
pub struct FactorModel {
    pub(super) algo: Algo,
    pub(super) global_mean: f32,
    /// Ascending; position = dense user index.
    pub(super) user_ids: Vec<i32>,
    /// Ascending; position = dense movie index.
    pub(super) movie_ids: Vec<i32>,
    pub(super) user_bias: Vec<f32>,
    pub(super) item_bias: Vec<f32>,
    pub(super) k: usize,
    /// `users × k`, row-major.
    pub(super) p: Vec<f32>,
    /// `movies × k`, row-major: scoring every movie streams through it.
    pub(super) q: Vec<f32>,
    pub(super) user_index: HashMap<i32, u32>,
    pub(super) movie_index: HashMap<i32, u32>,
    /// Euclidean norm of each q row, for cosine similarity.
    pub(super) q_norms: Vec<f32>,
    /// For implicit-feedback models: what solving a new user needs.
    pub(super) implicit: Option<ImplicitSolver>,
}

impl fmt::Debug for FactorModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The arrays can hold millions of floats; show the shape only.
        f.debug_struct("FactorModel")
            .field("algo", &self.algo)
            .field("global_mean", &self.global_mean)
            .field("users", &self.user_ids.len())
            .field("movies", &self.movie_ids.len())
            .field("k", &self.k)
            .finish()
    }
}

#[inline]
fn clip(x: f32) -> f32 {
    x.clamp(MIN_RATING, MAX_RATING)
}

impl FactorModel {
    /// Assembles a model from its arrays, checking that every length agrees,
    /// that ids are strictly ascending (which also makes them unique) and
    /// that every number is finite, so that no later lookup can go out of
    /// bounds or produce NaN.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        algo: Algo,
        global_mean: f32,
        user_ids: Vec<i32>,
        movie_ids: Vec<i32>,
        user_bias: Vec<f32>,
        item_bias: Vec<f32>,
        k: usize,
        p: Vec<f32>,
        q: Vec<f32>,
    ) -> Result<FactorModel> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("invalid model: {m}")));
        let (nu, nm) = (user_ids.len(), movie_ids.len());
        if [nu, nm, k].iter().any(|&n| u32::try_from(n).is_err()) {
            return bad("more than 2^32 users, movies or factors".into());
        }
        if user_bias.len() != nu || item_bias.len() != nm {
            return bad(format!(
                "{nu} users / {nm} movies but {} user and {} movie biases",
                user_bias.len(),
                item_bias.len()
            ));
        }
        if nu.checked_mul(k) != Some(p.len()) || nm.checked_mul(k) != Some(q.len()) {
            return bad(format!(
                "factor arrays of {} and {} values do not match {nu} users, {nm} movies, k = {k}",
                p.len(),
                q.len()
            ));
        }
        if let Some(w) = user_ids.windows(2).find(|w| w[0] >= w[1]) {
            return bad(format!(
                "user ids not strictly ascending at {} → {}",
                w[0], w[1]
            ));
        }
        if let Some(w) = movie_ids.windows(2).find(|w| w[0] >= w[1]) {
            return bad(format!(
                "movie ids not strictly ascending at {} → {}",
                w[0], w[1]
            ));
        }
        let finite = global_mean.is_finite()
            && [&user_bias, &item_bias, &p, &q]
                .iter()
                .all(|v| v.iter().all(|x| x.is_finite()));
        if !finite {
            return bad("non-finite parameter".into());
        }
        let q_norms = if k == 0 {
            vec![0.0; nm]
        } else {
            q.chunks_exact(k)
                .map(|r| linalg::dot(r, r).sqrt())
                .collect()
        };
        Ok(FactorModel {
            algo,
            global_mean,
            user_index: dataset::index_map(&user_ids),
            movie_index: dataset::index_map(&movie_ids),
            user_ids,
            movie_ids,
            user_bias,
            item_bias,
            k,
            p,
            q,
            q_norms,
            implicit: None,
        })
    }

    /// Marks the model as implicit-feedback (iALS) with the settings a
    /// fold-in must reuse, precomputing `YᵀY + reg·I`.
    pub(crate) fn set_implicit(
        &mut self,
        reg: f32,
        alpha: f32,
        weighting: Weighting,
        niche: NicheParams,
    ) {
        self.implicit = Some(ImplicitSolver::new(
            reg, alpha, weighting, niche, &self.q, self.k,
        ));
    }

    /// The fold-in solver of an implicit-feedback model.
    pub fn implicit(&self) -> Option<&ImplicitSolver> {
        self.implicit.as_ref()
    }

    /// Sets how fast fold-in histories fade (a serving setting; see
    /// [`crate::models::signal::Weighting::recent`]); no-op without a solver.
    pub fn set_history_half_life(&mut self, h: crate::models::signal::HalfLife) {
        if let Some(s) = self.implicit.as_mut() {
            s.weighting.recent = h;
        }
    }

    pub fn algo(&self) -> Algo {
        self.algo
    }

    pub fn global_mean(&self) -> f32 {
        self.global_mean
    }

    /// Number of latent factors (0 for the baseline).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Known users, ascending; a user's position is its index.
    pub fn user_ids(&self) -> &[i32] {
        &self.user_ids
    }

    /// Known movies, ascending; a movie's position is its index and the
    /// order of [`FactorModel::score_all`]'s output.
    pub fn movie_ids(&self) -> &[i32] {
        &self.movie_ids
    }

    pub fn user_bias(&self) -> &[f32] {
        &self.user_bias
    }

    pub fn item_bias(&self) -> &[f32] {
        &self.item_bias
    }

    /// User factors, `users × k` row-major.
    pub fn p(&self) -> &[f32] {
        &self.p
    }

    /// Movie factors, `movies × k` row-major.
    pub fn q(&self) -> &[f32] {
        &self.q
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_movies(&self) -> usize {
        self.movie_ids.len()
    }

    pub fn knows_user(&self, user: i32) -> bool {
        self.user_index.contains_key(&user)
    }

    pub fn knows_movie(&self, movie: i32) -> bool {
        self.movie_index.contains_key(&movie)
    }

    pub fn user_index(&self, user: i32) -> Option<usize> {
        self.user_index.get(&user).map(|&i| i as usize)
    }

    pub fn movie_index(&self, movie: i32) -> Option<usize> {
        self.movie_index.get(&movie).map(|&i| i as usize)
    }

    fn user_row(&self, u: usize) -> &[f32] {
        &self.p[u * self.k..(u + 1) * self.k]
    }

    fn movie_row(&self, m: usize) -> &[f32] {
        &self.q[m * self.k..(m + 1) * self.k]
    }

    /// The movie's latent vector (empty for a model without factors); `None`
    /// for a movie the model never saw.
    pub fn movie_vector(&self, movie: i32) -> Option<&[f32]> {
        self.movie_index(movie).map(|m| self.movie_row(m))
    }

    /// The user's latent vector (empty for a model without factors).
    pub fn user_vector(&self, user: i32) -> Option<&[f32]> {
        self.user_index(user).map(|u| self.user_row(u))
    }

    /// Predicted rating without clipping: what ranking should compare, since
    /// clipping turns a user's strongest preferences into ties at 5.0.
    ///
    /// A side the model never saw contributes nothing (no bias, no factors),
    /// as in Surprise: an unknown user gets `μ + b_i`, an unknown movie
    /// `μ + b_u`, both unknown `μ`.
    pub fn predict_unclipped(&self, user: i32, movie: i32) -> f32 {
        let u = self.user_index(user);
        let m = self.movie_index(movie);
        let mut s = self.global_mean;
        if let Some(u) = u {
            s += self.user_bias[u];
        }
        if let Some(m) = m {
            s += self.item_bias[m];
        }
        if let (Some(u), Some(m)) = (u, m) {
            s += linalg::dot(self.user_row(u), self.movie_row(m));
        }
        s
    }

    /// Predicted rating on the MovieLens scale (0.5..=5.0), with Surprise's
    /// fallbacks for unknown users and movies (see
    /// [`FactorModel::predict_unclipped`]).
    pub fn predict(&self, user: i32, movie: i32) -> f32 {
        clip(self.predict_unclipped(user, movie))
    }

    /// Unclipped scores of every movie for the user at dense index
    /// `user_idx`, in [`FactorModel::movie_ids`] order, written into `out`
    /// (reused across calls so the serving path does not allocate).
    ///
    /// # Panics
    /// If `user_idx >= n_users()`.
    pub fn score_all(&self, user_idx: usize, out: &mut Vec<f32>) {
        let base = self.global_mean + self.user_bias[user_idx];
        let pu = self.user_row(user_idx);
        self.score_with(pu, base, out);
    }

    /// Scores of every movie for an arbitrary user vector `pu` (a folded-in
    /// user: no user bias), in [`FactorModel::movie_ids`] order.
    pub fn score_vector(&self, pu: &[f32], out: &mut Vec<f32>) {
        self.score_with(pu, self.global_mean, out);
    }

    /// `out[i] = (base + b_i) + pu · q_i` for every movie, the arithmetic
    /// every scoring path shares (so the serving scan's exact re-scoring,
    /// [`FactorModel::score_one`], matches it bit for bit). A `pu` of the
    /// wrong width scores by the biases alone.
    pub fn score_with(&self, pu: &[f32], base: f32, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.n_movies(), 0.0);
        if self.k == 0 || pu.len() != self.k {
            for (o, b) in out.iter_mut().zip(&self.item_bias) {
                *o = base + b;
            }
            return;
        }
        let k = self.k;
        // Large catalogs are split across threads: one core cannot saturate
        // the memory bandwidth the scan needs.
        const PAR_MIN_VALUES: usize = 1 << 20;
        const CHUNK: usize = 4096;
        if self.q.len() >= PAR_MIN_VALUES && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            out.par_chunks_mut(CHUNK)
                .zip(self.q.par_chunks(CHUNK * k))
                .zip(self.item_bias.par_chunks(CHUNK))
                .for_each(|((o, q), b)| linalg::score_rows(pu, q, b, base, o));
        } else {
            linalg::score_rows(pu, &self.q, &self.item_bias, base, out);
        }
    }

    /// One movie's score as [`FactorModel::score_with`] computes it.
    pub fn score_one(&self, pu: &[f32], base: f32, movie_idx: usize) -> f32 {
        if self.k == 0 || pu.len() != self.k {
            return base + self.item_bias[movie_idx];
        }
        base + self.item_bias[movie_idx] + linalg::dot(pu, self.movie_row(movie_idx))
    }

    /// Solves the factors of a user from their ratings `(movie id, stars)`
    /// against the fixed movie factors (implicit-feedback models only;
    /// movies the model does not know are skipped). `None` when the model
    /// cannot fold in or no rating counts.
    pub fn fold_in(&self, history: &[Rated]) -> Option<FoldedUser> {
        let solver = self.implicit.as_ref()?;
        let items: Vec<(u32, f32)> = solver
            .weighting
            .history(history, |m| self.movie_index.get(&m).copied())
            .into_iter()
            .map(|(j, w)| (j, 1.0 + solver.alpha * w))
            .collect();
        solver.fold_in(&self.q, &items)
    }

    /// The `k` best movies for `user` that are not in `exclude` (typically
    /// what the user already rated), best first, as `(movie_id, predicted
    /// rating)`.
    ///
    /// Ranking uses unclipped scores, ties broken by ascending movie id, so
    /// the order is total and reproducible; the reported rating is clipped.
    /// An unknown user gets the non-personalized ranking by `μ + b_i`.
    /// `exclude` may be any collection of ids (`&HashSet<i32>`, `&[i32]`,
    /// ...); it costs one lookup per excluded id, not one per movie.
    pub fn top_k<'a, I>(&self, user: i32, k: usize, exclude: I) -> Vec<(i32, f32)>
    where
        I: IntoIterator<Item = &'a i32>,
    {
        let mut scores = Vec::new();
        match self.user_index(user) {
            Some(u) => self.score_all(u, &mut scores),
            None => scores.extend(self.item_bias.iter().map(|b| self.global_mean + b)),
        }
        for id in exclude {
            if let Some(m) = self.movie_index(*id) {
                scores[m] = f32::NEG_INFINITY;
            }
        }
        select_top(&scores, k)
            .into_iter()
            .map(|m| (self.movie_ids[m], clip(scores[m])))
            .collect()
    }

    /// The `k` movies most similar to `movie` by cosine similarity of their
    /// latent vectors, best first, as `(movie_id, similarity)`; the movie
    /// itself and movies with an all-zero vector are left out. Empty for an
    /// unknown movie or a model without factors.
    pub fn similar_movies(&self, movie: i32, k: usize) -> Vec<(i32, f32)> {
        let Some(a) = self.movie_index(movie) else {
            return Vec::new();
        };
        let na = self.q_norms[a];
        if self.k == 0 || na == 0.0 {
            return Vec::new();
        }
        let qa = self.movie_row(a);
        let sims: Vec<f32> = self
            .q
            .chunks_exact(self.k)
            .zip(&self.q_norms)
            .enumerate()
            .map(|(m, (qm, &nm))| {
                if m == a || nm == 0.0 {
                    f32::NEG_INFINITY
                } else {
                    linalg::dot(qa, qm) / (na * nm)
                }
            })
            .collect();
        select_top(&sims, k)
            .into_iter()
            .map(|m| (self.movie_ids[m], sims[m]))
            .collect()
    }
}
