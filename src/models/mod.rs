//! Collaborative filtering: one fit/predict interface for every algorithm.
//!
//! In the spirit of Surprise, every algorithm ([`Algo`]) is trained through
//! [`fit`] and yields the same [`FactorModel`]: a global mean, user and movie
//! biases and (optionally) latent factors. Evaluation, serving and the model
//! registry therefore never need to know which algorithm produced a model;
//! the baseline is simply a factor model with zero factors.
//!
//! * [`baseline`]: Surprise's BaselineOnly (biases fitted by ALS).
//! * [`svd`]: Funk-SVD by SGD with Surprise's update rules, optionally
//!   parallel with a deterministic LIBMF/DSGD-style block schedule.
//! * [`als`]: biased matrix factorization by alternating least squares with
//!   weighted-λ regularization, parallel and thread-count independent.
//!
//! Models persist as a compact checksummed binary artifact
//! ([`FactorModel::to_bytes`] / [`FactorModel::from_bytes`]).

pub mod als;
mod artifact;
pub mod baseline;
mod dataset;
mod linalg;
pub mod svd;

#[cfg(test)]
mod quality;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use als::AlsParams;
pub use artifact::{ARTIFACT_MAGIC, ARTIFACT_VERSION};
pub use baseline::BaselineParams;
pub use svd::SvdParams;

use crate::progress::Progress;
use crate::types::Rating;
use crate::{Error, Result};

pub use crate::types::{MAX_RATING, MIN_RATING};

/// The training algorithms. The lowercase name is what the CLI accepts, what
/// JSON notes record and what the artifact's tag maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Baseline,
    Svd,
    Als,
}

impl Algo {
    /// Every algorithm, for help texts and exhaustive tests.
    pub const ALL: [Algo; 3] = [Algo::Baseline, Algo::Svd, Algo::Als];

    /// The stable lowercase name used on the command line and in JSON notes.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Baseline => "baseline",
            Algo::Svd => "svd",
            Algo::Als => "als",
        }
    }

    /// Accepts the names [`Algo::as_str`] produces, case-insensitively,
    /// because they are typed on command lines.
    pub fn parse(s: &str) -> Option<Algo> {
        Algo::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Stable one-byte tag used in the binary artifact; never renumber.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Algo::Baseline => 0,
            Algo::Svd => 1,
            Algo::Als => 2,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.tag() == tag)
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algo {
    type Err = Error;

    fn from_str(s: &str) -> Result<Algo> {
        Algo::parse(s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown algorithm {s:?}; expected one of: baseline, svd, als"
            ))
        })
    }
}

/// Hyperparameters of one training run, tagged with the algorithm so the
/// JSON recorded next to a model says exactly how to reproduce it, e.g.
/// `{"algo":"svd","factors":100,"epochs":20,...}`. Missing fields take their
/// defaults when deserializing, so notes written by older versions still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algo", rename_all = "lowercase")]
pub enum Params {
    Baseline(BaselineParams),
    Svd(SvdParams),
    Als(AlsParams),
}

impl Params {
    /// The tuned defaults of `algo`.
    pub fn default_for(algo: Algo) -> Params {
        match algo {
            Algo::Baseline => Params::Baseline(BaselineParams::default()),
            Algo::Svd => Params::Svd(SvdParams::default()),
            Algo::Als => Params::Als(AlsParams::default()),
        }
    }

    pub fn algo(&self) -> Algo {
        match self {
            Params::Baseline(_) => Algo::Baseline,
            Params::Svd(_) => Algo::Svd,
            Params::Als(_) => Algo::Als,
        }
    }

    /// Rejects out-of-range values before any work starts, with a message
    /// naming the parameter and its valid range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Params::Baseline(p) => p.validate(),
            Params::Svd(p) => p.validate(),
            Params::Als(p) => p.validate(),
        }
    }
}

/// Trains the algorithm `params` names on `ratings`.
///
/// The result is a pure function of the rating sequence, the parameters and
/// `seed` (for parallel SVD also of its `threads` setting), so a model version
/// can be reproduced from its recorded notes.
pub fn fit(
    params: &Params,
    ratings: &[Rating],
    seed: u64,
    progress: &dyn Progress,
) -> Result<FactorModel> {
    params.validate()?;
    let data = dataset::TrainSet::new(ratings)?;
    match params {
        Params::Baseline(p) => baseline::fit(p, &data, progress),
        Params::Svd(p) => svd::fit(p, &data, seed, progress),
        Params::Als(p) => als::fit(p, &data, seed, progress),
    }
}

/// Wraps trained arrays (indexed like `data`) into a model, turning
/// non-finite values into a divergence error a user can act on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trained_model(
    algo: Algo,
    data: &dataset::TrainSet,
    global_mean: f32,
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    k: usize,
    p: Vec<f32>,
    q: Vec<f32>,
) -> Result<FactorModel> {
    let finite = global_mean.is_finite()
        && [&user_bias, &item_bias, &p, &q]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()));
    if !finite {
        return Err(Error::InvalidArgument(format!(
            "{algo} training diverged (non-finite parameters); lower the learning rate or raise \
             the regularization"
        )));
    }
    FactorModel::from_parts(
        algo,
        global_mean,
        data.user_ids.clone(),
        data.movie_ids.clone(),
        user_bias,
        item_bias,
        k,
        p,
        q,
    )
}

/// A trained model: `r̂(u, i) = μ + b_u + b_i + p_u · q_i`, clipped to the
/// rating scale.
///
/// Fields are private because the id → index maps and cached norms must
/// stay consistent with the arrays; build one with [`FactorModel::from_parts`]
/// or [`FactorModel::from_bytes`].
#[derive(Clone)]
pub struct FactorModel {
    algo: Algo,
    global_mean: f32,
    /// Ascending; position = dense user index.
    user_ids: Vec<i32>,
    /// Ascending; position = dense movie index.
    movie_ids: Vec<i32>,
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    k: usize,
    /// `users × k`, row-major.
    p: Vec<f32>,
    /// `movies × k`, row-major: scoring every movie streams through it.
    q: Vec<f32>,
    user_index: HashMap<i32, u32>,
    movie_index: HashMap<i32, u32>,
    /// Euclidean norm of each q row, for cosine similarity.
    q_norms: Vec<f32>,
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
        })
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
        out.clear();
        out.resize(self.n_movies(), 0.0);
        if self.k == 0 {
            for (o, b) in out.iter_mut().zip(&self.item_bias) {
                *o = base + b;
            }
            return;
        }
        let pu = self.user_row(user_idx);
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

/// A candidate in top-k selection; greater is better: higher score, then
/// lower index (= lower id, since ids are ascending).
#[derive(Clone, Copy)]
struct Cand {
    score: f32,
    idx: u32,
}

impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.idx.cmp(&self.idx))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// Indices of the `k` greatest scores (−∞ marks excluded entries), best
/// first. A bounded min-heap keeps this O(n log k), with almost every
/// element rejected by one comparison against the current k-th best, which
/// beats sorting the whole catalog on every request.
fn select_top(scores: &[f32], k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(k.min(scores.len()) + 1);
    for (i, &s) in scores.iter().enumerate() {
        if s == f32::NEG_INFINITY || s.is_nan() {
            continue;
        }
        let c = Cand {
            score: s,
            idx: i as u32,
        };
        if heap.len() < k {
            heap.push(Reverse(c));
        } else if let Some(mut worst) = heap.peek_mut() {
            if c > worst.0 {
                *worst = Reverse(c);
            }
        }
    }
    // Ascending in `Reverse<Cand>` is descending in `Cand`: best first.
    heap.into_sorted_vec()
        .into_iter()
        .map(|Reverse(c)| c.idx as usize)
        .collect()
}
