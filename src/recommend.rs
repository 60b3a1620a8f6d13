//! Answering "what should user U watch?" and "what is like movie M?" from
//! the champion model, with a cold-start list for users it does not know.
//!
//! [`Recommender`] holds everything a request needs in memory (the model,
//! the catalogue, the popularity ranking), so the CLI builds one per command
//! and the server keeps one and swaps it when the champion changes.
//!
//! **The serving scan.** Ranking a known user scores every movie, which
//! streams the whole movie-factor matrix through the CPU per request; that
//! read is most of what a request costs. On CPUs with AVX2 and FMA the
//! [`Recommender`] keeps the movie factors as 8-bit integers with a scale
//! per movie (a quarter of the bytes), scores every movie from them in
//! exact integer arithmetic with a proven per-movie error bound, and
//! re-scores exactly, with the model's own f32 arithmetic, only the movies
//! whose upper bound reaches the k-th best lower bound (for k = 10 on
//! ml-latest-small and the 62,000-movie benchmark, 11 to 12 on average, at
//! most 18). The answer is therefore exactly [`FactorModel::top_k`]'s (same
//! scores, same order, same tie-breaks), which the tests check on random
//! models built to break it. Other CPUs use `top_k` itself. Buffers are per
//! thread and reused, so a request allocates only its answer.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::models::FactorModel;
use crate::registry;
use crate::store::{MovieStats, Store};
use crate::types::Movie;
use crate::{Error, Result};

/// The largest `k` any request may ask for.
pub const MAX_K: usize = 100;

/// Cold start: a movie needs this many training ratings to be listed...
pub const POPULAR_MIN_COUNT: i64 = 10;
/// ...and its mean is shrunk toward the global mean by this many pseudo-ratings,
/// so a movie with ten 5-star ratings does not outrank one with a thousand 4.6s.
pub const POPULAR_DAMPING: f64 = 25.0;

/// How a list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Personalized by the champion model.
    Model,
    /// Cold start: damped mean rating over the training data.
    Popular,
}

/// One recommended or similar movie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub movie_id: i32,
    pub title: String,
    pub genres: String,
    /// Predicted rating (model), damped mean (popular) or cosine similarity (similar).
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    pub user_id: i32,
    pub strategy: Strategy,
    pub model_version: String,
    pub items: Vec<Item>,
}

/// Where similar movies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimilarBasis {
    /// Cosine similarity of the champion's movie factors.
    Factors,
    /// Cosine similarity of the PCA genre features (movie unknown to the model).
    PcaFeatures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similar {
    pub movie: Item,
    pub basis: SimilarBasis,
    pub items: Vec<Item>,
}

/// The champion and what serving it needs, loaded once.
pub struct Recommender {
    pub model_version: String,
    pub model: Arc<FactorModel>,
    movies: HashMap<i32, Movie>,
    /// Movie ids by damped mean, best first, with the damped mean.
    popular: Vec<(i32, f64)>,
    /// Genres of the model's movies, by dense movie index.
    genres: GenreIndex,
    /// The 8-bit copy of the movie factors the serving scan reads, when the
    /// CPU has the kernels.
    quantized: Option<scan::Quantized>,
    /// Dense model index by movie id, for excluding rated movies without
    /// hashing; empty when ids are too sparse for a table.
    index_by_id: Vec<u32>,
}

impl Recommender {
    /// Loads the champion, the catalogue and the popularity ranking.
    pub fn load(store: &mut dyn Store) -> Result<Recommender> {
        let (version, model) = registry::load_champion(store)?;
        let movies = store.movies()?;
        let stats = store.movie_stats()?;
        Ok(Recommender::new(version, model, movies, &stats))
    }

    pub fn new(
        model_version: String,
        model: FactorModel,
        movies: Vec<Movie>,
        stats: &[MovieStats],
    ) -> Recommender {
        let movies: HashMap<i32, Movie> = movies.into_iter().map(|m| (m.movie_id, m)).collect();
        Recommender {
            genres: GenreIndex::new(&model, &movies),
            quantized: scan::Quantized::new(&model),
            index_by_id: index_table(model.movie_ids()),
            model_version,
            model: Arc::new(model),
            movies,
            popular: popularity(stats),
        }
    }

    /// Whether requests use the quantized scan (see the module docs) rather
    /// than [`FactorModel::top_k`]; both give the same answers.
    pub fn uses_quantized_scan(&self) -> bool {
        self.quantized.is_some()
    }

    pub fn movie(&self, movie_id: i32) -> Option<&Movie> {
        self.movies.get(&movie_id)
    }

    pub fn catalogue_size(&self) -> usize {
        self.movies.len()
    }

    fn item(&self, movie_id: i32, score: f32) -> Item {
        let (title, genres) = match self.movies.get(&movie_id) {
            Some(m) => (m.title.clone(), m.genres.clone()),
            None => (format!("movie {movie_id}"), String::new()),
        };
        Item {
            movie_id,
            title,
            genres,
            score,
        }
    }

    /// The top `k` movies `user` has not rated (`rated`: every movie the
    /// user rated, in any split or the buffer), optionally of one genre.
    /// A user the model has never seen gets the cold-start list.
    pub fn recommend(
        &self,
        user_id: i32,
        k: usize,
        genre: Option<&str>,
        rated: &HashSet<i32>,
    ) -> Result<Recommendations> {
        let rated: Vec<i32> = rated.iter().copied().collect();
        let (strategy, top) = self.recommend_ids(user_id, k, genre, &[&rated])?;
        Ok(Recommendations {
            user_id,
            strategy,
            model_version: self.model_version.clone(),
            items: top.into_iter().map(|(id, s)| self.item(id, s)).collect(),
        })
    }

    /// [`Recommender::recommend`] as ids and scores (predicted rating, or
    /// damped mean for the cold-start list), best first, without copying
    /// titles: the server's hot path. `rated` lists the user's rated movies
    /// in any number of slices (the server's snapshot and what arrived
    /// since); duplicates and unknown ids are fine.
    pub fn recommend_ids(
        &self,
        user_id: i32,
        k: usize,
        genre: Option<&str>,
        rated: &[&[i32]],
    ) -> Result<(Strategy, Vec<(i32, f32)>)> {
        check_k(k)?;
        if user_id <= 0 {
            return Err(Error::InvalidArgument(format!(
                "user id must be a positive integer, got {user_id}"
            )));
        }
        let genre = genre.map(str::trim).filter(|g| !g.is_empty());
        if let Some(u) = self.model.user_index(user_id) {
            return Ok((Strategy::Model, self.top_for_user(u, k, genre, rated)));
        }
        let in_genre = |id: i32| match genre {
            None => true,
            Some(g) => self
                .movies
                .get(&id)
                .is_some_and(|m| m.genre_list().any(|x| x.eq_ignore_ascii_case(g))),
        };
        let many = rated.iter().map(|r| r.len()).sum::<usize>() > 32;
        let set: HashSet<i32> = if many {
            rated.iter().flat_map(|r| r.iter().copied()).collect()
        } else {
            HashSet::new()
        };
        let is_rated = |id: i32| {
            if many {
                set.contains(&id)
            } else {
                rated.iter().any(|r| r.contains(&id))
            }
        };
        let items = self
            .popular
            .iter()
            .filter(|&&(id, _)| !is_rated(id) && in_genre(id))
            .take(k)
            .map(|&(id, score)| (id, score as f32))
            .collect();
        Ok((Strategy::Popular, items))
    }

    /// The model's top `k` for the user at dense index `u`: exactly
    /// [`FactorModel::top_k`] with the rated movies and, with a genre, every
    /// movie outside it excluded.
    fn top_for_user(
        &self,
        u: usize,
        k: usize,
        genre: Option<&str>,
        rated: &[&[i32]],
    ) -> Vec<(i32, f32)> {
        let model = &*self.model;
        let Some(quantized) = &self.quantized else {
            // The portable path: top_k with an explicit exclusion list.
            let mut exclude: Vec<i32> = rated.iter().flat_map(|r| r.iter().copied()).collect();
            if let Some(g) = genre {
                let allowed = self.genres.allowed(g, model, &self.movies);
                exclude.extend(
                    model
                        .movie_ids()
                        .iter()
                        .zip(&allowed)
                        .filter(|(_, ok)| !**ok)
                        .map(|(id, _)| *id),
                );
            }
            return model.top_k(model.user_ids()[u], k, &exclude);
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                scores,
                heap,
                candidates,
                pairs,
            } = &mut *scratch;
            let slack = quantized.lower_bounds(model, u, scores, pairs);
            for &id in rated.iter().flat_map(|r| r.iter()) {
                let m = match usize::try_from(id)
                    .ok()
                    .and_then(|i| self.index_by_id.get(i))
                {
                    Some(&m) if m != u32::MAX => Some(m as usize),
                    Some(_) => None,
                    None if self.index_by_id.is_empty() => model.movie_index(id),
                    None => None,
                };
                if let Some(m) = m {
                    scores[m] = f32::NEG_INFINITY;
                }
            }
            if let Some(g) = genre {
                self.genres.exclude_others(g, model, &self.movies, scores);
            }
            // L, the k-th largest lower bound: k movies score at least L.
            scan::select_top(scores, k, heap);
            let cut = match heap.peek() {
                Some(worst) if heap.len() == k => worst.0.score,
                // Fewer than k movies left: every one of them is an answer.
                _ => f32::MIN,
            };
            candidates.clear();
            quantized.collect_candidates(scores, slack, cut, candidates);
            let user_id = model.user_ids()[u];
            let ids = model.movie_ids();
            let mut exact: Vec<scan::Cand> = candidates
                .iter()
                .map(|&m| scan::Cand {
                    score: model.predict_unclipped(user_id, ids[m as usize]),
                    idx: m,
                })
                .collect();
            exact.sort_unstable_by(|a, b| b.cmp(a));
            exact.truncate(k);
            exact
                .into_iter()
                .map(|c| (ids[c.idx as usize], clip_rating(c.score)))
                .collect()
        })
    }

    /// The `k` movies most like `movie_id`: by the model's factors, or by
    /// PCA genre features for a movie the model has no factors for.
    pub fn similar(&self, movie_id: i32, k: usize) -> Result<Similar> {
        check_k(k)?;
        let movie = self.movies.get(&movie_id).ok_or_else(|| {
            Error::NotFound(format!(
                "movie {movie_id} is not in the catalogue; `cinematch search` or the movies table lists ids"
            ))
        })?;
        let by_factors = self.model.similar_movies(movie_id, k);
        let (basis, found) = if !by_factors.is_empty() {
            (SimilarBasis::Factors, by_factors)
        } else {
            (SimilarBasis::PcaFeatures, self.similar_by_pca(movie, k))
        };
        Ok(Similar {
            movie: self.item(movie_id, 1.0),
            basis,
            items: found.into_iter().map(|(id, s)| self.item(id, s)).collect(),
        })
    }

    fn similar_by_pca(&self, movie: &Movie, k: usize) -> Vec<(i32, f32)> {
        let Some(a) = movie.pca_features.as_deref() else {
            return Vec::new();
        };
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        if na == 0.0 {
            return Vec::new();
        }
        let mut sims: Vec<(i32, f32)> = self
            .movies
            .values()
            .filter(|m| m.movie_id != movie.movie_id)
            .filter_map(|m| {
                let b = m.pca_features.as_deref()?;
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                (nb > 0.0).then(|| {
                    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    (m.movie_id, (dot / (na * nb)) as f32)
                })
            })
            .collect();
        sims.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        sims.truncate(k);
        sims
    }
}

/// `table[id]` = dense index of movie `id` (`u32::MAX` for none), when the
/// largest id is at most 8 per movie or 2²⁰ (MovieLens ids: a few hundred
/// KB); empty otherwise, and lookups hash instead.
fn index_table(movie_ids: &[i32]) -> Vec<u32> {
    let Some(&max) = movie_ids.last() else {
        return Vec::new();
    };
    let len = usize::try_from(max).map_or(usize::MAX, |m| m + 1);
    if movie_ids[0] < 0 || len > (8 * movie_ids.len()).max(1 << 20) {
        return Vec::new();
    }
    let mut table = vec![u32::MAX; len];
    for (i, &id) in movie_ids.iter().enumerate() {
        table[id as usize] = i as u32;
    }
    table
}

/// The clipping [`FactorModel::predict`] applies to what it reports.
fn clip_rating(x: f32) -> f32 {
    x.clamp(crate::models::MIN_RATING, crate::models::MAX_RATING)
}

/// Per-thread buffers of the serving scan, reused by every request the
/// thread answers (the server's worker threads, or the CLI's one).
#[derive(Default)]
struct Scratch {
    /// One lower bound per model movie.
    scores: Vec<f32>,
    /// The running top k of the lower bounds.
    heap: scan::TopHeap,
    /// Dense indices of the movies to re-score exactly.
    candidates: Vec<u32>,
    /// The user's factors as packed 16-bit pairs (int8 scan).
    pairs: Vec<i32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Each model movie's genres as bits, for genre-filtered recommendations
/// without string comparisons per movie.
struct GenreIndex {
    /// Distinct genres of the model's movies, as spelled in the catalogue
    /// (at most 64; `bits` is empty when there are more).
    names: Vec<String>,
    /// By dense movie index: bit `i` set when the movie has `names[i]`.
    bits: Vec<u64>,
}

impl GenreIndex {
    fn new(model: &FactorModel, movies: &HashMap<i32, Movie>) -> GenreIndex {
        let mut names: Vec<String> = Vec::new();
        let mut bits = Vec::with_capacity(model.n_movies());
        for id in model.movie_ids() {
            let mut b = 0u64;
            for g in movies.get(id).into_iter().flat_map(Movie::genre_list) {
                let i = match names.iter().position(|n| n.eq_ignore_ascii_case(g)) {
                    Some(i) => i,
                    None => {
                        names.push(g.to_string());
                        names.len() - 1
                    }
                };
                if i < 64 {
                    b |= 1 << i;
                }
            }
            bits.push(b);
        }
        if names.len() > 64 {
            bits.clear();
        }
        GenreIndex { names, bits }
    }

    /// Whether each model movie (by dense index) has genre `g`, any case.
    fn allowed(&self, g: &str, model: &FactorModel, movies: &HashMap<i32, Movie>) -> Vec<bool> {
        if !self.bits.is_empty() {
            let bit = self
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(g))
                .map_or(0, |i| 1u64 << i);
            return self.bits.iter().map(|b| b & bit != 0).collect();
        }
        model
            .movie_ids()
            .iter()
            .map(|id| {
                movies
                    .get(id)
                    .is_some_and(|m| m.genre_list().any(|x| x.eq_ignore_ascii_case(g)))
            })
            .collect()
    }

    /// Sets the score of every movie outside genre `g` to −∞.
    fn exclude_others(
        &self,
        g: &str,
        model: &FactorModel,
        movies: &HashMap<i32, Movie>,
        scores: &mut [f32],
    ) {
        if self.bits.is_empty() {
            for (s, ok) in scores.iter_mut().zip(self.allowed(g, model, movies)) {
                if !ok {
                    *s = f32::NEG_INFINITY;
                }
            }
            return;
        }
        let bit = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(g))
            .map_or(0, |i| 1u64 << i);
        for (s, b) in scores.iter_mut().zip(&self.bits) {
            if b & bit == 0 {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::InvalidArgument(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(())
}

/// Movies with at least [`POPULAR_MIN_COUNT`] ratings, by damped mean
/// `(sum + D * global_mean) / (count + D)`, best first (ties by id).
pub fn popularity(stats: &[MovieStats]) -> Vec<(i32, f64)> {
    let (n, sum) = stats.iter().fold((0i64, 0.0f64), |(n, s), m| {
        (n + m.count, s + m.mean * m.count as f64)
    });
    if n == 0 {
        return Vec::new();
    }
    let global = sum / n as f64;
    let mut ranked: Vec<(i32, f64)> = stats
        .iter()
        .filter(|m| m.count >= POPULAR_MIN_COUNT)
        .map(|m| {
            let damped = (m.mean * m.count as f64 + POPULAR_DAMPING * global)
                / (m.count as f64 + POPULAR_DAMPING);
            (m.movie_id, damped)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The quantized serving scan and its exact re-ranking bounds.
mod scan {
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;

    use crate::models::FactorModel;

    /// A scored movie; greater is better: higher score, then lower dense
    /// index (= lower movie id), as [`FactorModel::top_k`] ranks.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Cand {
        pub score: f32,
        pub idx: u32,
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

    /// The running top k: a min-heap, so the worst kept is on top.
    pub(super) type TopHeap = BinaryHeap<Reverse<Cand>>;

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
    pub(super) struct Quantized {
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
    pub(super) struct Slack {
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
                err[m] =
                    f32_at_least(d2.sqrt() * (1.0 + 2f64.powi(-10)) + 2f64.powi(-9) * q2.sqrt());
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

        /// Lower bounds of the exact scores of every movie for the user at
        /// dense index `u`, into `scores` (one per movie; see the type's
        /// docs); `pairs` is scratch. Returns what
        /// [`Quantized::collect_candidates`] needs for the upper bounds.
        pub fn lower_bounds(
            &self,
            model: &FactorModel,
            u: usize,
            scores: &mut Vec<f32>,
            pairs: &mut Vec<i32>,
        ) -> Slack {
            let k = self.k;
            let p = &model.p()[u * k..(u + 1) * k];
            let base = model.global_mean() + model.user_bias()[u];
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
        pub fn collect_candidates(
            &self,
            lower: &[f32],
            slack: Slack,
            cut: f32,
            out: &mut Vec<u32>,
        ) {
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

    /// Fills `heap` with the `k` best finite scores (fewer if there are not
    /// that many).
    pub(super) fn select_top(scores: &[f32], k: usize, heap: &mut TopHeap) {
        heap.clear();
        // SAFETY: only called with a `Quantized`, i.e. on an AVX2 CPU.
        unsafe { x86::select_top(scores, k, heap) }
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
        use std::cmp::Reverse;

        use super::{Cand, Slack, TopHeap};

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
                            acc[r] =
                                _mm256_add_epi32(acc[r], _mm256_madd_epi16(code(b + r, i), pv));
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

        /// Pushes `c` if it beats the worst kept of a heap of `k`.
        #[inline(always)]
        fn offer(heap: &mut TopHeap, k: usize, c: Cand) {
            if heap.len() < k {
                heap.push(Reverse(c));
            } else if let Some(mut worst) = heap.peek_mut() {
                if c > worst.0 {
                    *worst = Reverse(c);
                }
            }
        }

        /// The k best finite scores. Eight scores are compared with the
        /// current k-th best at once; nearly every block has none better,
        /// so the heap is touched a few dozen times per catalogue.
        #[target_feature(enable = "avx2")]
        pub unsafe fn select_top(scores: &[f32], k: usize, heap: &mut TopHeap) {
            if k == 0 {
                return;
            }
            let blocks = scores.len() / 8;
            for blk in 0..blocks {
                let thr = if heap.len() < k {
                    f32::NEG_INFINITY
                } else {
                    heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
                };
                // SAFETY: block blk covers [8·blk, 8·blk + 8) ⊂ scores.
                let mask = unsafe {
                    let v = _mm256_loadu_ps(scores.as_ptr().add(blk * 8));
                    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_set1_ps(thr)))
                };
                let mut m = mask as u32;
                while m != 0 {
                    let i = blk * 8 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    offer(
                        heap,
                        k,
                        Cand {
                            score: scores[i],
                            idx: i as u32,
                        },
                    );
                }
            }
            for (i, &s) in scores.iter().enumerate().skip(blocks * 8) {
                if s > f32::NEG_INFINITY {
                    offer(
                        heap,
                        k,
                        Cand {
                            score: s,
                            idx: i as u32,
                        },
                    );
                }
            }
        }

        /// Indices whose `lower + 2 (norm · err + c)` is at least `cut`.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn collect(
            lower: &[f32],
            err: &[f32],
            slack: Slack,
            cut: f32,
            out: &mut Vec<u32>,
        ) {
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
        use super::{Slack, TopHeap};
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
        pub unsafe fn select_top(_: &[f32], _: usize, _: &mut TopHeap) {
            unreachable!()
        }
        pub unsafe fn collect(_: &[f32], _: &[f32], _: Slack, _: f32, _: &mut Vec<u32>) {
            unreachable!()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Algo;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const GENRES: [&str; 4] = ["Comedy", "Drama", "Horror", "Sci-Fi"];

    /// A random model of `movies` movies (ids 10, 13, 16, ...) and 12 users;
    /// `kind` shapes the factors: 0 normal, 1 many exact ties (duplicate
    /// rows and biases), 2 tiny, subnormal and zero factors, large biases
    /// and sparse ids, 3 a few huge factors, 4 near ties.
    fn random_model(seed: u64, movies: usize, k: usize, kind: u8) -> (FactorModel, Vec<Movie>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let users = 12;
        let mut g = |scale: f32| (rng.random::<f32>() - 0.5) * 2.0 * scale;
        let scale = match kind {
            2 => 1e-6,
            _ => 0.3,
        };
        let p: Vec<f32> = (0..users * k).map(|_| g(0.5)).collect();
        let mut q: Vec<f32> = (0..movies * k).map(|_| g(scale)).collect();
        let mut item_bias: Vec<f32> = (0..movies)
            .map(|_| g(if kind == 2 { 3.0 } else { 0.5 }))
            .collect();
        if kind == 1 {
            for m in (0..movies).step_by(3) {
                let src = (m / 9) * 9;
                let row: Vec<f32> = q[src * k..(src + 1) * k].to_vec();
                q[m * k..(m + 1) * k].copy_from_slice(&row);
                item_bias[m] = item_bias[src];
            }
        }
        if kind == 2 {
            // Some rows subnormal (so is their scale), some all zero.
            for m in (0..movies).step_by(5) {
                for x in &mut q[m * k..(m + 1) * k] {
                    *x *= 1e-33;
                }
            }
            for m in (0..movies).step_by(7) {
                q[m * k..(m + 1) * k].fill(0.0);
            }
        }
        if kind == 3 {
            for m in (0..movies).step_by(97) {
                q[m * k] = 3000.0;
            }
        }
        if kind == 4 {
            // Near ties: groups of 16 movies a hair apart (far below the
            // int8 error), so only exact re-scoring orders them.
            for m in 0..movies {
                let src = (m / 16) * 16;
                for f in 0..k {
                    q[m * k + f] = q[src * k + f] + g(1e-4);
                }
                item_bias[m] = item_bias[src] + g(1e-5);
            }
        }
        let user_bias: Vec<f32> = (0..users).map(|_| g(0.3)).collect();
        // Sparse ids (kind 2) take the hashed id lookup instead of the table.
        let spread = if kind == 2 { 1000 } else { 1 };
        let movie_ids: Vec<i32> = (0..movies as i32).map(|i| (10 + 3 * i) * spread).collect();
        let catalogue = movie_ids
            .iter()
            .map(|&id| Movie {
                movie_id: id,
                title: format!("Movie {id}"),
                genres: format!("{}|{}", GENRES[id as usize % 4], GENRES[id as usize % 3]),
                pca_features: None,
            })
            .collect();
        let model = FactorModel::from_parts(
            Algo::Svd,
            3.5,
            (1..=users as i32).collect(),
            movie_ids,
            user_bias,
            item_bias,
            k,
            p,
            q,
        )
        .unwrap();
        (model, catalogue)
    }

    /// The serving scan gives exactly `FactorModel::top_k`'s answer: same
    /// movies, same order, same (clipped) ratings, with exclusions, genre
    /// filters, ties, tiny and huge factors, any k, any width.
    #[test]
    fn serving_scan_equals_top_k() {
        let mut seed = 0;
        for (movies, k) in [(1, 1), (7, 3), (50, 8), (1003, 13), (517, 100), (2000, 128)] {
            for kind in 0..5u8 {
                seed += 1;
                let (model, catalogue) = random_model(seed, movies, k, kind);
                let rec = Recommender::new("v1".into(), model.clone(), catalogue.clone(), &[]);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    assert!(rec.uses_quantized_scan(), "the fast path is what is tested");
                }
                let what = format!("movies {movies} k {k} kind {kind}");
                check_against_top_k(&rec, &model, &catalogue, seed, &what);
            }
        }
    }

    fn check_against_top_k(
        rec: &Recommender,
        model: &FactorModel,
        catalogue: &[Movie],
        seed: u64,
        what: &str,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed * 7);
        for user in 1..=12 {
            let rated: Vec<i32> = model
                .movie_ids()
                .iter()
                .copied()
                .filter(|_| rng.random::<f32>() < 0.2)
                .chain([99_999, -4, i32::MAX])
                .collect();
            let (half_rated, rest) = rated.split_at(rated.len() / 2);
            for top in [1, 3, 10, 100] {
                let want = model.top_k(user, top, &rated);
                let (strategy, got) = rec
                    .recommend_ids(user, top, None, &[half_rated, rest, &[]])
                    .unwrap();
                assert_eq!(strategy, Strategy::Model);
                assert_eq!(got, want, "{what} user {user} top {top}");
                // A genre filter is an exclusion of every other movie.
                let genre = GENRES[(user as usize) % 4];
                let mut exclude = rated.clone();
                exclude.extend(
                    catalogue
                        .iter()
                        .filter(|m| !m.genres.contains(genre))
                        .map(|m| m.movie_id),
                );
                let want = model.top_k(user, top, &exclude);
                let (_, got) = rec
                    .recommend_ids(user, top, Some(&genre.to_lowercase()), &[&rated])
                    .unwrap();
                assert_eq!(got, want, "{what} genre {genre} user {user} top {top}");
            }
        }
        // Unknown genre: nothing; everything rated: nothing.
        let (_, none) = rec.recommend_ids(1, 10, Some("Polka"), &[]).unwrap();
        assert!(none.is_empty());
        let (_, none) = rec
            .recommend_ids(2, 10, None, &[model.movie_ids()])
            .unwrap();
        assert!(none.is_empty());
    }

    /// The HashSet form (the CLI's) and the slices form agree, items carry
    /// titles, and unknown users get the cold-start list without rated movies.
    #[test]
    fn recommend_and_cold_start() {
        let (model, catalogue) = random_model(99, 40, 8, 0);
        let stats: Vec<MovieStats> = model
            .movie_ids()
            .iter()
            .map(|&id| MovieStats {
                movie_id: id,
                count: 10 + i64::from(id),
                mean: 3.0 + f64::from(id % 5) / 4.0,
            })
            .collect();
        let rec = Recommender::new("v1".into(), model.clone(), catalogue, &stats);
        let rated: HashSet<i32> = [10, 13, 16].into();
        let r = rec.recommend(3, 5, None, &rated).unwrap();
        assert_eq!(r.strategy, Strategy::Model);
        let want = model.top_k(3, 5, &rated);
        assert_eq!(
            r.items
                .iter()
                .map(|i| (i.movie_id, i.score))
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(r.items[0].title, format!("Movie {}", want[0].0));
        let cold = rec.recommend(777, 4, None, &rated).unwrap();
        assert_eq!(cold.strategy, Strategy::Popular);
        let ranked: Vec<i32> = popularity(&stats)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !rated.contains(id))
            .take(4)
            .collect();
        assert_eq!(
            cold.items.iter().map(|i| i.movie_id).collect::<Vec<_>>(),
            ranked
        );
        let many: Vec<i32> = (0..100).map(|i| 10 + 3 * i).collect();
        let (_, cold) = rec
            .recommend_ids(777, 4, None, &[&many[..50], &many[50..]])
            .unwrap();
        assert!(cold.is_empty(), "all 40 movies rated");
        assert!(rec.recommend_ids(0, 4, None, &[]).is_err());
        assert!(rec.recommend_ids(1, 0, None, &[]).is_err());
        assert!(rec.recommend_ids(1, MAX_K + 1, None, &[]).is_err());
    }

    #[test]
    fn popularity_damps_small_counts_by_hand() {
        let stats = [
            MovieStats {
                movie_id: 1,
                count: 10,
                mean: 5.0,
            },
            MovieStats {
                movie_id: 2,
                count: 1000,
                mean: 4.6,
            },
            MovieStats {
                movie_id: 3,
                count: 9,
                mean: 5.0,
            },
            MovieStats {
                movie_id: 4,
                count: 100,
                mean: 3.0,
            },
        ];
        // global = (50 + 4600 + 45 + 300) / 1119 = 4995/1119 = 4.463807
        // movie 1: (50 + 25*4.463807)/35 = 4.616; movie 2: (4600 + 111.595)/1025 = 4.5967
        // movie 4: (300 + 111.595)/125 = 3.2928; movie 3 has fewer than 10 ratings.
        let p = popularity(&stats);
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 4]);
        let g = 4995.0 / 1119.0;
        assert!((p[0].1 - (50.0 + 25.0 * g) / 35.0).abs() < 1e-12);
        assert!((p[2].1 - (300.0 + 25.0 * g) / 125.0).abs() < 1e-12);
    }
}
