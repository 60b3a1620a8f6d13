//! A synthetic MovieLens-shaped dataset generator.
//!
//! Lets the whole pipeline (load, train, monitor, serve) run and be tested
//! at any scale without downloading MovieLens, with a known ground truth:
//! ratings come from a latent-factor model, so collaborative filtering has
//! real structure to learn and a trained model can be judged against it.
//!
//! The output has the shapes that stress a real system: Zipf-like movie
//! popularity, long-tailed user activity, genre-correlated tastes, skewed
//! genre frequencies, a MovieLens-like rating histogram (mean ~3.5, 4.0 the
//! most common, whole stars more common than half stars) and per-user
//! activity periods.
//!
//! Everything is a pure function of [`SynthOptions`]: each user's ratings
//! come from their own ChaCha8 stream, so users can be generated in any
//! order, in parallel, or one at a time (see [`SynthWorld`]), and the files
//! are byte-identical for a seed whatever the thread count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::progress::Progress;
use crate::types::{Movie, Rating, MOVIELENS_GENRES};
use crate::{Error, Result};

/// 1996-01-01T00:00:00Z, where ml-latest-small's ratings begin.
pub const ML_SMALL_START: i64 = 820_454_400;
/// 2018-09-30T00:00:00Z, roughly where ml-latest-small's ratings end.
pub const ML_SMALL_END: i64 = 1_538_265_600;
/// 2003-02-12: MovieLens introduced half stars; users active before then
/// rate in whole stars, which is why whole stars dominate the real histogram.
const HALF_STARS_FROM: i64 = 1_045_008_000;

/// Size and shape of a synthetic dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    pub users: u32,
    pub movies: u32,
    /// Exact number of ratings written.
    pub ratings: u64,
    pub seed: u64,
    /// Dimension of the latent taste vectors; what a factorization model
    /// would need to recover the interaction part of the ratings.
    pub factors: usize,
    /// Standard deviation of per-rating noise, in stars (before rounding).
    /// It bounds the best achievable RMSE from below.
    pub noise: f64,
    /// Unix seconds; every rating falls within `start..=end`.
    pub start_timestamp: i64,
    pub end_timestamp: i64,
}

impl Default for SynthOptions {
    /// Roughly ml-latest-small: 610 users, 9,000 movies, 100,000 ratings
    /// between 1996 and 2018.
    fn default() -> Self {
        SynthOptions {
            users: 610,
            movies: 9_000,
            ratings: 100_000,
            seed: 42,
            factors: 8,
            noise: 0.5,
            start_timestamp: ML_SMALL_START,
            end_timestamp: ML_SMALL_END,
        }
    }
}

/// What was written, for the CLI to print.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthReport {
    pub users: u32,
    pub movies: u32,
    pub ratings: u64,
    pub mean_rating: f64,
}

// ---------------------------------------------------------------------------
// Model constants. Chosen (and checked by the tests) so the rating histogram
// resembles ml-latest-small's and the bias/interaction/noise split resembles
// what factorization models find in MovieLens.

/// The continuous rating of a neutral user for a neutral movie, before the
/// skewing transform; tuned so the mean of rounded ratings lands near 3.5.
const BASE_RATING: f64 = 3.69;
/// How much raters differ in generosity.
const USER_BIAS_SD: f64 = 0.5;
/// How much movies differ in quality beyond genre and popularity.
const MOVIE_BIAS_SD: f64 = 0.45;
/// Popular movies are rated higher: +this for the most popular, -this for
/// the least, linear in log-rank.
const POPULARITY_BIAS: f64 = 0.15;
/// Standard deviation of the user-movie interaction <p_u, q_i>.
const INTERACTION_SD: f64 = 0.6;
/// Share of each movie's latent vector explained by its genres, so genre
/// embeddings carry real taste information.
const GENRE_SHARE: f64 = 0.5;
/// Concavity of the score-to-stars transform: compresses the top, stretches
/// the bottom, giving MovieLens's long left tail and a mode at 4 stars.
const CURVATURE: f64 = 0.12;
/// Share of users active after half stars existed who still use whole stars.
const WHOLE_STAR_USERS: f64 = 0.2;
/// Popularity weight of the movie at rank r (0-based): 1 / (r + offset)^exp.
const ZIPF_OFFSET: f64 = 10.0;
const ZIPF_EXPONENT: f64 = 1.0;
/// Spread of user activity (lognormal sigma); ml-latest-small's mean/median
/// ratings per user (165/70) implies about 1.3.
const ACTIVITY_SIGMA: f64 = 1.3;
/// MovieLens only publishes users with at least 20 ratings.
const MIN_RATINGS_PER_USER: u64 = 20;
/// Share of users who rate everything in one sitting.
const SESSION_USERS: f64 = 0.35;
/// Mean age of a movie (years before the end of the rating period).
const MEAN_MOVIE_AGE_YEARS: f64 = 15.0;

/// ml-latest-small's genre counts, in [`MOVIELENS_GENRES`] order: Drama and
/// Comedy dominate, Film-Noir and IMAX are rare.
const GENRE_WEIGHTS: [f64; 19] = [
    1828.0, 1263.0, 611.0, 664.0, 3756.0, 1199.0, 440.0, 4361.0, 779.0, 87.0, 978.0, 158.0, 334.0,
    573.0, 1596.0, 980.0, 1894.0, 382.0, 167.0,
];
/// Typical rating offsets by genre (Film-Noir and documentaries are rated
/// well, horror poorly), in [`MOVIELENS_GENRES`] order.
const GENRE_BIAS: [f64; 19] = [
    -0.10, 0.0, 0.10, -0.15, -0.10, 0.15, 0.30, 0.15, 0.0, 0.40, -0.35, 0.10, 0.05, 0.10, 0.0,
    -0.05, -0.05, 0.30, 0.05,
];
/// Probability of a movie having 1, 2 or 3 genres.
const GENRE_COUNT_WEIGHTS: [f64; 3] = [0.35, 0.38, 0.27];

/// Independent random streams, so e.g. adding users never changes movies.
mod domain {
    pub const GENRES: u64 = 1;
    pub const MOVIES: u64 = 2;
    pub const USERS: u64 = 3;
    pub const ACTIVITY: u64 = 4;
    pub const RATINGS: u64 = 5;
}

/// The ratings a user's base history is drawn from; other streams are free
/// for later batches (e.g. weekly updates) of the same user.
pub const BASE_STREAM: u32 = 0;

/// The generative model behind a synthetic dataset: every user's and movie's
/// parameters, built deterministically from the options.
///
/// Kept separate from file writing so that later stages (weekly batches,
/// injected drift, ground-truth evaluation) can draw more ratings from the
/// same world for chosen users and time windows.
///
/// Users and movies are numbered `1..=users` and `1..=movies`. Methods
/// taking an id panic outside those ranges: ids come from the world itself,
/// so an unknown one is a bug in the caller, not bad input.
#[derive(Debug, Clone)]
pub struct SynthWorld {
    opts: SynthOptions,
    factors: usize,
    // Movies, by index (movie_id = index + 1).
    movie_bias: Vec<f32>,
    movie_factors: Vec<f32>,
    /// Bit j set = genre `MOVIELENS_GENRES[j]`.
    movie_genres: Vec<u32>,
    movie_year: Vec<u16>,
    /// Unnormalised popularity, for sampling which movies users rate.
    popularity: Vec<f64>,
    alias: AliasTable,
    // Users, by index (user_id = index + 1).
    user_bias: Vec<f32>,
    user_factors: Vec<f32>,
    user_count: Vec<u32>,
    user_period: Vec<(i64, i64)>,
    user_whole_stars: Vec<bool>,
}

impl SynthWorld {
    /// Builds the world; fails on options that cannot be satisfied (more
    /// ratings than user-movie pairs, ids beyond `i32`, an empty time range).
    pub fn new(opts: &SynthOptions) -> Result<Self> {
        validate(opts)?;
        let seed = opts.seed;
        let m = opts.movies as usize;
        let u = opts.users as usize;
        let k = opts.factors;
        let factor_sd = if k > 0 {
            (INTERACTION_SD / (k as f64).sqrt()).sqrt()
        } else {
            0.0
        };

        // Genre taste directions.
        let mut rng = rng_for(seed, domain::GENRES, 0);
        let genre_vecs: Vec<Vec<f64>> = (0..MOVIELENS_GENRES.len())
            .map(|_| (0..k).map(|_| normal(&mut rng)).collect())
            .collect();

        // Movies. Popularity rank is a random permutation of ids so that
        // ids carry no information.
        let mut rng = rng_for(seed, domain::MOVIES, 0);
        let mut rank: Vec<u32> = (0..opts.movies).collect();
        for i in (1..m).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            rank.swap(i, j);
        }
        let end_year = year_of(opts.end_timestamp);
        let log_span = ((m as f64 + ZIPF_OFFSET) / ZIPF_OFFSET)
            .ln()
            .max(f64::MIN_POSITIVE);
        let mut movie_bias = Vec::with_capacity(m);
        let mut movie_factors = Vec::with_capacity(m * k);
        let mut movie_genres = Vec::with_capacity(m);
        let mut movie_year = Vec::with_capacity(m);
        let mut popularity = Vec::with_capacity(m);
        let mut taste = vec![0.0f64; k];
        for &r in &rank {
            let r = f64::from(r);
            popularity.push((r + ZIPF_OFFSET).powf(-ZIPF_EXPONENT));
            let genres = draw_genres(&mut rng);
            let n_genres = genres.count_ones() as f64;
            let mut gbias = 0.0;
            taste.iter_mut().for_each(|t| *t = 0.0);
            for (j, gv) in genre_vecs.iter().enumerate() {
                if genres & (1 << j) != 0 {
                    gbias += GENRE_BIAS[j];
                    taste.iter_mut().zip(gv).for_each(|(t, g)| *t += g);
                }
            }
            let pop = 1.0 - 2.0 * ((r + ZIPF_OFFSET) / ZIPF_OFFSET).ln() / log_span;
            let bias = MOVIE_BIAS_SD * normal(&mut rng) + gbias / n_genres + POPULARITY_BIAS * pop;
            movie_bias.push(bias as f32);
            for t in &taste {
                let q = GENRE_SHARE.sqrt() * t / n_genres.sqrt()
                    + (1.0 - GENRE_SHARE).sqrt() * normal(&mut rng);
                movie_factors.push((factor_sd * q) as f32);
            }
            movie_genres.push(genres);
            let age = -MEAN_MOVIE_AGE_YEARS * (1.0 - unit(&mut rng)).ln();
            movie_year.push((end_year - age.floor() as i64).clamp(1902, end_year.max(1902)) as u16);
        }
        let alias = AliasTable::new(&popularity);

        // Users.
        let mut rng = rng_for(seed, domain::USERS, 0);
        let mut user_bias = Vec::with_capacity(u);
        let mut user_factors = Vec::with_capacity(u * k);
        let mut user_period = Vec::with_capacity(u);
        let mut user_whole_stars = Vec::with_capacity(u);
        let (start, end) = (opts.start_timestamp, opts.end_timestamp);
        for _ in 0..u {
            user_bias.push((USER_BIAS_SD * normal(&mut rng)) as f32);
            for _ in 0..k {
                user_factors.push((factor_sd * normal(&mut rng)) as f32);
            }
            // Active period: one sitting (median ~2 h) or months to years.
            let log_median: f64 = if unit(&mut rng) < SESSION_USERS {
                (2.0 * 3600.0f64).ln()
            } else {
                (120.0 * 86400.0f64).ln()
            };
            let sd = if log_median < 10.0 { 1.0 } else { 1.5 };
            let span = (end - start) as f64;
            let duration = (log_median + sd * normal(&mut rng)).exp().min(span);
            let first = start + (unit(&mut rng) * (span - duration)) as i64;
            let last = (first + duration as i64).min(end);
            user_period.push((first, last));
            let whole = first < HALF_STARS_FROM || unit(&mut rng) < WHOLE_STAR_USERS;
            user_whole_stars.push(whole);
        }
        let mut rng = rng_for(seed, domain::ACTIVITY, 0);
        let user_count = allocate_counts(opts.ratings, u, opts.movies, &mut rng);

        Ok(SynthWorld {
            opts: opts.clone(),
            factors: k,
            movie_bias,
            movie_factors,
            movie_genres,
            movie_year,
            popularity,
            alias,
            user_bias,
            user_factors,
            user_count,
            user_period,
            user_whole_stars,
        })
    }

    /// The options the world was built from, e.g. to label a dataset.
    pub fn options(&self) -> &SynthOptions {
        &self.opts
    }

    /// The catalogue, by ascending `movie_id` (1..=movies), without PCA
    /// features (those are fitted when loading, like for real data).
    pub fn movies(&self) -> Vec<Movie> {
        (0..self.movie_genres.len())
            .map(|i| self.movie(i))
            .collect()
    }

    fn movie(&self, i: usize) -> Movie {
        let genres: Vec<&str> = MOVIELENS_GENRES
            .iter()
            .enumerate()
            .filter(|(j, _)| self.movie_genres[i] & (1 << j) != 0)
            .map(|(_, g)| *g)
            .collect();
        Movie {
            movie_id: i as i32 + 1,
            title: format!("Synthetic Movie {} ({})", i + 1, self.movie_year[i]),
            genres: genres.join("|"),
            pca_features: None,
        }
    }

    /// How many ratings the user has in the base dataset.
    pub fn user_rating_count(&self, user_id: i32) -> u32 {
        self.user_count[self.user_index(user_id)]
    }

    /// The user's active period (unix seconds, inclusive) in the base dataset.
    pub fn user_active_period(&self, user_id: i32) -> (i64, i64) {
        self.user_period[self.user_index(user_id)]
    }

    /// The noise-free rating the model assigns (continuous, before rounding
    /// to stars): the ground truth a recommender is trying to recover.
    pub fn expected_rating(&self, user_id: i32, movie_id: i32) -> f64 {
        let u = self.user_index(user_id);
        let i = self.movie_index(movie_id);
        to_stars(self.score(u, i))
    }

    /// The user's ratings in the base dataset, sorted by `movie_id`.
    pub fn user_ratings(&self, user_id: i32) -> Vec<Rating> {
        let u = self.user_index(user_id);
        let (start, end) = self.user_period[u];
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        self.fill_user(
            u,
            self.user_count[u] as usize,
            (start, end),
            BASE_STREAM,
            &mut scratch,
            &mut out,
        );
        out
    }

    /// `count` ratings by the user on distinct movies, at times spread over
    /// `window` (unix seconds, inclusive), sorted by `movie_id`, from random
    /// stream `stream`. Stream [`BASE_STREAM`] with the user's count and
    /// period reproduces [`SynthWorld::user_ratings`]; other streams give
    /// fresh, independent draws for later batches.
    pub fn ratings_in_window(
        &self,
        user_id: i32,
        count: usize,
        window: (i64, i64),
        stream: u32,
    ) -> Result<Vec<Rating>> {
        let u = self.user_index(user_id);
        if count > self.movie_genres.len() {
            return Err(Error::InvalidArgument(format!(
                "user {user_id} cannot rate {count} distinct movies: there are only {}",
                self.movie_genres.len()
            )));
        }
        if window.0 > window.1 {
            return Err(Error::InvalidArgument(format!(
                "time window starts ({}) after it ends ({})",
                window.0, window.1
            )));
        }
        let mut out = Vec::new();
        self.fill_user(u, count, window, stream, &mut Scratch::default(), &mut out);
        Ok(out)
    }

    fn user_index(&self, user_id: i32) -> usize {
        assert!(
            user_id >= 1 && (user_id as usize) <= self.user_count.len(),
            "user {user_id} is not in this synthetic world (1..={})",
            self.user_count.len()
        );
        user_id as usize - 1
    }

    fn movie_index(&self, movie_id: i32) -> usize {
        assert!(
            movie_id >= 1 && (movie_id as usize) <= self.movie_genres.len(),
            "movie {movie_id} is not in this synthetic world (1..={})",
            self.movie_genres.len()
        );
        movie_id as usize - 1
    }

    /// Latent score (bias + interaction) before noise and the star transform.
    fn score(&self, u: usize, i: usize) -> f64 {
        let k = self.factors;
        let p = &self.user_factors[u * k..(u + 1) * k];
        let q = &self.movie_factors[i * k..(i + 1) * k];
        let dot: f32 = p.iter().zip(q).map(|(a, b)| a * b).sum();
        f64::from(self.user_bias[u]) + f64::from(self.movie_bias[i]) + f64::from(dot)
    }

    /// Appends user `u`'s `count` ratings to `out`.
    fn fill_user(
        &self,
        u: usize,
        count: usize,
        window: (i64, i64),
        stream: u32,
        scratch: &mut Scratch,
        out: &mut Vec<Rating>,
    ) {
        let id = (u64::from(stream) << 32) | u as u64;
        let mut rng = rng_for(self.opts.seed, domain::RATINGS, id);
        self.pick_movies(count, &mut rng, scratch);
        scratch.picks.sort_unstable();
        let whole = self.user_whole_stars[u];
        let span = (window.1 - window.0) as u64 + 1;
        for &i in &scratch.picks {
            let i = i as usize;
            let latent = self.score(u, i) + self.opts.noise * normal(&mut rng);
            let stars = to_stars(latent);
            let rating = if whole {
                stars.round().clamp(1.0, 5.0)
            } else {
                ((stars * 2.0).round() / 2.0).clamp(0.5, 5.0)
            };
            out.push(Rating {
                user_id: u as i32 + 1,
                movie_id: i as i32 + 1,
                rating: rating as f32,
                timestamp: window.0 + below(&mut rng, span) as i64,
            });
        }
    }

    /// Draws `count` distinct movie indices into `scratch.picks`, each draw
    /// proportional to popularity among the movies not yet drawn.
    fn pick_movies(&self, count: usize, rng: &mut ChaCha8Rng, scratch: &mut Scratch) {
        let m = self.popularity.len();
        scratch.picks.clear();
        if count == 0 {
            return;
        }
        if count * 8 <= m && scratch.stamp.len() != m && count * 64 < m {
            // A one-off light draw (the public per-user methods): a small
            // set avoids allocating a marker per movie. Accepts exactly the
            // same draws as the marker path below, so results are identical.
            let mut seen = std::collections::HashSet::with_capacity(count);
            while scratch.picks.len() < count {
                let i = self.alias.sample(rng) as u32;
                if seen.insert(i) {
                    scratch.picks.push(i);
                }
            }
        } else if count * 8 <= m {
            // Light users (almost everyone): rejection sampling from the
            // alias table; a generation stamp marks movies already drawn,
            // so nothing needs clearing between users.
            if scratch.stamp.len() != m {
                scratch.stamp = vec![0; m];
                scratch.epoch = 0;
            }
            scratch.epoch = scratch.epoch.wrapping_add(1);
            if scratch.epoch == 0 {
                scratch.stamp.iter_mut().for_each(|s| *s = 0);
                scratch.epoch = 1;
            }
            while scratch.picks.len() < count {
                let i = self.alias.sample(rng);
                if scratch.stamp[i] != scratch.epoch {
                    scratch.stamp[i] = scratch.epoch;
                    scratch.picks.push(i as u32);
                }
            }
        } else {
            // Heavy users: Efraimidis–Spirakis. Keys E_i / w_i with E_i
            // exponential; the `count` smallest are a weighted sample without
            // replacement, in O(movies) whatever the rejection rate would be.
            scratch.keys.clear();
            scratch.keys.extend(
                self.popularity
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (-(1.0 - unit(rng)).ln() / w, i as u32)),
            );
            if count < m {
                scratch.keys.select_nth_unstable_by(count - 1, |a, b| {
                    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                });
            }
            scratch
                .picks
                .extend(scratch.keys[..count].iter().map(|&(_, i)| i));
        }
    }
}

/// Per-thread reusable buffers for [`SynthWorld::fill_user`].
#[derive(Default)]
struct Scratch {
    picks: Vec<u32>,
    stamp: Vec<u32>,
    epoch: u32,
    keys: Vec<(f64, u32)>,
}

/// Maps a latent score to the star scale: concave, so the top is
/// compressed against 5 stars and low scores spread into a long left tail.
fn to_stars(latent: f64) -> f64 {
    // Beyond the vertex the parabola would turn down; hold it flat there.
    let x = latent.min(1.0 / (2.0 * CURVATURE));
    BASE_RATING + x - CURVATURE * x * x
}

fn validate(opts: &SynthOptions) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidArgument(msg));
    if opts.users > i32::MAX as u32 || opts.movies > i32::MAX as u32 {
        return bad(format!(
            "at most {} users and movies (ids are 32-bit), got {} users and {} movies",
            i32::MAX,
            opts.users,
            opts.movies
        ));
    }
    let pairs = u128::from(opts.users) * u128::from(opts.movies);
    if u128::from(opts.ratings) > pairs {
        return bad(format!(
            "cannot generate {} distinct ratings from {} users x {} movies ({pairs} possible \
             pairs): lower the rating count or add users or movies",
            opts.ratings, opts.users, opts.movies
        ));
    }
    if opts.start_timestamp > opts.end_timestamp {
        return bad(format!(
            "start timestamp {} is after end timestamp {}",
            opts.start_timestamp, opts.end_timestamp
        ));
    }
    if !(opts.noise.is_finite() && opts.noise >= 0.0) {
        return bad(format!(
            "noise must be a non-negative number, got {}",
            opts.noise
        ));
    }
    if opts.factors > 1024 {
        return bad(format!("at most 1024 latent factors, got {}", opts.factors));
    }
    Ok(())
}

/// Splits `total` ratings over `users` so that the counts sum exactly to
/// `total`, nobody exceeds `movies`, everyone gets a floor (MovieLens's 20
/// when the average allows, at least 5 when it allows that) and the rest
/// follows a lognormal activity distribution.
fn allocate_counts(total: u64, users: usize, movies: u32, rng: &mut ChaCha8Rng) -> Vec<u32> {
    if users == 0 {
        return Vec::new();
    }
    let avg = total / users as u64;
    let floor = MIN_RATINGS_PER_USER
        .min(avg.min(5).max(avg / 4))
        .min(u64::from(movies));
    let cap = (u64::from(movies) - floor) as f64;
    let weights: Vec<f64> = (0..users)
        .map(|_| (ACTIVITY_SIGMA * normal(rng)).exp())
        .collect();
    let remaining = total - floor * users as u64;

    // Water-filling: the heaviest users may hit the cap; give them exactly
    // the cap and share the rest proportionally among the others.
    let mut order: Vec<usize> = (0..users).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut left = remaining as f64;
    let mut weight_left: f64 = weights.iter().sum();
    let mut capped = 0;
    for &u in &order {
        if weight_left > 0.0 && left * weights[u] / weight_left > cap {
            left -= cap;
            weight_left -= weights[u];
            capped += 1;
        } else {
            break;
        }
    }
    let mut shares = vec![0.0f64; users];
    for (n, &u) in order.iter().enumerate() {
        shares[u] = if n < capped {
            cap
        } else if weight_left > 0.0 {
            (left * weights[u] / weight_left).min(cap)
        } else {
            0.0
        };
    }

    // Largest remainders, ties by user index; then repair any float slack.
    let cap = cap as u64;
    let mut extra: Vec<u64> = shares.iter().map(|s| s.floor() as u64).collect();
    let mut assigned: u64 = extra.iter().sum();
    let mut by_frac: Vec<usize> = (0..users).collect();
    by_frac.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor())
            .total_cmp(&(shares[a] - shares[a].floor()))
            .then(a.cmp(&b))
    });
    for &u in &by_frac {
        if assigned >= remaining {
            break;
        }
        if extra[u] < cap {
            extra[u] += 1;
            assigned += 1;
        }
    }
    while assigned < remaining {
        for e in extra.iter_mut().filter(|e| **e < cap) {
            if assigned == remaining {
                break;
            }
            *e += 1;
            assigned += 1;
        }
    }
    while assigned > remaining {
        for e in extra.iter_mut().rev().filter(|e| **e > 0) {
            if assigned == remaining {
                break;
            }
            *e -= 1;
            assigned -= 1;
        }
    }
    extra.iter().map(|e| (floor + e) as u32).collect()
}

/// 1 to 3 distinct genres, weighted by MovieLens's genre frequencies.
fn draw_genres(rng: &mut ChaCha8Rng) -> u32 {
    let x = unit(rng);
    let n = if x < GENRE_COUNT_WEIGHTS[0] {
        1
    } else if x < GENRE_COUNT_WEIGHTS[0] + GENRE_COUNT_WEIGHTS[1] {
        2
    } else {
        3
    };
    let mut mask = 0u32;
    for _ in 0..n {
        let total: f64 = GENRE_WEIGHTS
            .iter()
            .enumerate()
            .filter(|(j, _)| mask & (1 << j) == 0)
            .map(|(_, w)| w)
            .sum();
        let mut t = unit(rng) * total;
        let mut pick = None;
        for (j, w) in GENRE_WEIGHTS.iter().enumerate() {
            if mask & (1 << j) != 0 {
                continue;
            }
            pick = Some(j);
            if t < *w {
                break;
            }
            t -= w;
        }
        if let Some(j) = pick {
            mask |= 1 << j;
        }
    }
    mask
}

/// Calendar year of a unix timestamp, to within a day: good enough for titles.
fn year_of(ts: i64) -> i64 {
    1970 + ts.div_euclid(31_556_952)
}

/// A generator keyed by (seed, domain) on stream `id`: independent streams
/// for every purpose and every user without seeding collisions.
fn rng_for(seed: u64, domain: u64, id: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&domain.to_le_bytes());
    key[16..24].copy_from_slice(b"cinemtch");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(id);
    rng
}

/// Uniform in [0, 1) with 53 bits.
fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Unbiased uniform integer in `0..n` (Lemire).
fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// Walker/Vose alias table: O(1) weighted draws, which is what makes
/// drawing millions of popularity-weighted movies cheap.
#[derive(Debug, Clone)]
struct AliasTable {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        AliasTable { prob, alias }
    }

    fn sample(&self, rng: &mut impl RngCore) -> usize {
        let i = below(rng, self.prob.len() as u64) as usize;
        if unit(rng) < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

// ---------------------------------------------------------------------------
// Writing.

/// Users per work unit are chosen so a unit holds about this many ratings:
/// large enough to amortise scheduling, small enough to bound memory.
const CHUNK_RATINGS: u64 = 32_768;

/// Writes `DIR/movies.csv` and `DIR/ratings.csv` in MovieLens's CSV format
/// (ml-latest / ml-25m headers, ratings sorted by user then movie), creating
/// `DIR` if needed.
///
/// Ratings are generated in parallel in bounded batches of users and
/// streamed to disk in order, so memory stays small at any size and the
/// files are byte-identical for a seed.
pub fn generate(dir: &Path, opts: &SynthOptions, progress: &dyn Progress) -> Result<SynthReport> {
    let world = SynthWorld::new(opts)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;

    let movies_path = dir.join("movies.csv");
    let io = |e: std::io::Error| Error::io(&movies_path, e);
    let file = File::create(&movies_path).map_err(io)?;
    let mut w = csv::Writer::from_writer(BufWriter::new(file));
    let csv_err = |e: csv::Error| Error::io(&movies_path, e.into());
    w.write_record(["movieId", "title", "genres"])
        .map_err(csv_err)?;
    for i in 0..world.movie_genres.len() {
        let m = world.movie(i);
        w.write_record([m.movie_id.to_string().as_str(), &m.title, &m.genres])
            .map_err(csv_err)?;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .flush()
        .map_err(io)?;

    let ratings_path = dir.join("ratings.csv");
    let io = |e: std::io::Error| Error::io(&ratings_path, e);
    let file = File::create(&ratings_path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(b"userId,movieId,rating,timestamp\n")
        .map_err(io)?;

    // Consecutive user ranges of ~CHUNK_RATINGS ratings each.
    let mut chunks: Vec<Range<usize>> = Vec::new();
    let mut begin = 0;
    let mut acc = 0u64;
    for (u, &c) in world.user_count.iter().enumerate() {
        acc += u64::from(c);
        if acc >= CHUNK_RATINGS {
            chunks.push(begin..u + 1);
            begin = u + 1;
            acc = 0;
        }
    }
    if begin < world.user_count.len() {
        chunks.push(begin..world.user_count.len());
    }

    progress.stage("synth", Some(u64::from(opts.users)));
    let batch = (rayon::current_num_threads() * 2).max(1);
    let mut written = 0u64;
    let mut sum = 0.0f64;
    for group in chunks.chunks(batch) {
        let results: Vec<(Vec<u8>, u64, f64)> = group
            .par_iter()
            .map_init(
                || (Scratch::default(), Vec::new()),
                |(scratch, ratings), range| {
                    let mut buf = Vec::new();
                    let mut n = 0u64;
                    let mut s = 0.0f64;
                    for u in range.clone() {
                        ratings.clear();
                        let (start, end) = world.user_period[u];
                        let count = world.user_count[u] as usize;
                        world.fill_user(u, count, (start, end), BASE_STREAM, scratch, ratings);
                        for r in ratings.iter() {
                            write_rating(&mut buf, r);
                            s += f64::from(r.rating);
                        }
                        n += ratings.len() as u64;
                    }
                    (buf, n, s)
                },
            )
            .collect();
        for ((buf, n, s), range) in results.into_iter().zip(group) {
            out.write_all(&buf).map_err(io)?;
            written += n;
            sum += s;
            progress.advance(range.len() as u64);
        }
    }
    out.flush().map_err(io)?;
    progress.finish();
    debug_assert_eq!(written, opts.ratings);

    Ok(SynthReport {
        users: opts.users,
        movies: opts.movies,
        ratings: written,
        mean_rating: if written > 0 {
            sum / written as f64
        } else {
            0.0
        },
    })
}

/// One `userId,movieId,rating,timestamp` line; ratings as MovieLens writes
/// them ("4.0", "3.5").
fn write_rating(buf: &mut Vec<u8>, r: &Rating) {
    write_int(buf, i64::from(r.user_id));
    buf.push(b',');
    write_int(buf, i64::from(r.movie_id));
    buf.push(b',');
    let halves = (r.rating * 2.0).round() as i64;
    write_int(buf, halves / 2);
    buf.extend_from_slice(if halves % 2 == 0 { b".0," } else { b".5," });
    write_int(buf, r.timestamp);
    buf.push(b'\n');
}

/// Integer formatting without `fmt` machinery: this is the generator's
/// innermost loop at tens of millions of lines.
fn write_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::collections::{HashMap, HashSet};

    fn small(seed: u64) -> SynthOptions {
        SynthOptions {
            users: 500,
            movies: 4_000,
            ratings: 50_000,
            seed,
            ..SynthOptions::default()
        }
    }

    fn all_ratings(world: &SynthWorld) -> Vec<Rating> {
        (1..=world.options().users as i32)
            .flat_map(|u| world.user_ratings(u))
            .collect()
    }

    fn read_ratings(path: &Path) -> Vec<Rating> {
        let mut r = csv::Reader::from_path(path).unwrap();
        assert_eq!(
            r.headers().unwrap(),
            vec!["userId", "movieId", "rating", "timestamp"]
        );
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                Rating {
                    user_id: rec[0].parse().unwrap(),
                    movie_id: rec[1].parse().unwrap(),
                    rating: rec[2].parse().unwrap(),
                    timestamp: rec[3].parse().unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn files_are_deterministic_per_seed() {
        let opts = SynthOptions {
            users: 100,
            movies: 500,
            ratings: 10_000,
            ..SynthOptions::default()
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let ra = generate(a.path(), &opts, &Silent).unwrap();
        let rb = generate(b.path(), &opts, &Silent).unwrap();
        generate(
            c.path(),
            &SynthOptions {
                seed: 7,
                ..opts.clone()
            },
            &Silent,
        )
        .unwrap();
        assert_eq!(ra, rb);
        for f in ["movies.csv", "ratings.csv"] {
            let x = std::fs::read(a.path().join(f)).unwrap();
            let y = std::fs::read(b.path().join(f)).unwrap();
            let z = std::fs::read(c.path().join(f)).unwrap();
            assert_eq!(x, y, "{f} differs between runs");
            assert_ne!(x, z, "{f} ignores the seed");
        }
        // The files agree with the in-memory world.
        let world = SynthWorld::new(&opts).unwrap();
        assert_eq!(
            read_ratings(&a.path().join("ratings.csv")),
            all_ratings(&world)
        );
    }

    #[test]
    fn writes_movielens_csv() {
        let opts = SynthOptions {
            users: 50,
            movies: 3_000,
            ratings: 5_000,
            seed: 3,
            ..SynthOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested");
        let report = generate(&out, &opts, &Silent).unwrap();
        assert_eq!(
            (report.users, report.movies, report.ratings),
            (50, 3_000, 5_000)
        );

        let text = std::fs::read_to_string(out.join("ratings.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("userId,movieId,rating,timestamp"));
        let first = lines.next().unwrap();
        let fields: Vec<&str> = first.split(',').collect();
        assert_eq!(fields.len(), 4);
        assert!(fields[2].len() == 3 && (fields[2].ends_with(".0") || fields[2].ends_with(".5")));

        let ratings = read_ratings(&out.join("ratings.csv"));
        assert_eq!(ratings.len(), 5_000);
        let keys: Vec<(i32, i32)> = ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "not sorted by user, movie"
        );
        let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / 5_000.0;
        assert!((mean - report.mean_rating).abs() < 1e-9);

        let mut r = csv::Reader::from_path(out.join("movies.csv")).unwrap();
        assert_eq!(r.headers().unwrap(), vec!["movieId", "title", "genres"]);
        let mut genre_counts: HashMap<String, usize> = HashMap::new();
        let mut n = 0;
        for (i, rec) in r.records().enumerate() {
            let rec = rec.unwrap();
            assert_eq!(rec[0].parse::<usize>().unwrap(), i + 1);
            let title = &rec[1];
            assert!(
                title.starts_with(&format!("Synthetic Movie {} (", i + 1)),
                "{title}"
            );
            let year: i64 = title[title.len() - 5..title.len() - 1].parse().unwrap();
            assert!((1902..=2018).contains(&year), "{title}");
            let genres: Vec<&str> = rec[2].split('|').collect();
            assert!((1..=3).contains(&genres.len()), "{:?}", &rec[2]);
            let distinct: HashSet<&str> = genres.iter().copied().collect();
            assert_eq!(distinct.len(), genres.len());
            for g in genres {
                assert!(MOVIELENS_GENRES.contains(&g), "{g}");
                *genre_counts.entry(g.to_string()).or_default() += 1;
            }
            n += 1;
        }
        assert_eq!(n, 3_000);
        let mut by_count: Vec<(usize, String)> =
            genre_counts.into_iter().map(|(g, c)| (c, g)).collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        let top: HashSet<&str> = by_count[..2].iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(top, HashSet::from(["Drama", "Comedy"]));
    }

    #[test]
    fn exact_counts_without_duplicates_on_the_half_star_grid() {
        let opts = small(11);
        let world = SynthWorld::new(&opts).unwrap();
        let ratings = all_ratings(&world);
        assert_eq!(ratings.len() as u64, opts.ratings);
        let pairs: HashSet<(i32, i32)> = ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
        assert_eq!(pairs.len(), ratings.len(), "duplicate (user, movie) pairs");
        for r in &ratings {
            assert!((0.5..=5.0).contains(&r.rating), "{r:?}");
            assert_eq!((r.rating * 2.0).fract(), 0.0, "{r:?}");
            assert!((1..=4_000).contains(&r.movie_id));
            let (a, b) = world.user_active_period(r.user_id);
            assert!(
                ML_SMALL_START <= a && a <= r.timestamp && r.timestamp <= b && b <= ML_SMALL_END
            );
        }
        for u in 1..=opts.users as i32 {
            assert!(
                world.user_rating_count(u) >= 20,
                "user {u} has too few ratings"
            );
        }
    }

    #[test]
    fn counts_are_exact_in_dense_and_sparse_corners() {
        for (users, movies, ratings) in [
            (10, 10, 100),    // every pair
            (10, 10, 99),     // all but one
            (7, 50, 300),     // heavy users use the Efraimidis-Spirakis path
            (100, 1_000, 50), // fewer ratings than users
            (3, 1, 2),
            (5, 5, 0),
            (0, 0, 0),
        ] {
            let opts = SynthOptions {
                users,
                movies,
                ratings,
                ..SynthOptions::default()
            };
            let world = SynthWorld::new(&opts).unwrap();
            let all = all_ratings(&world);
            assert_eq!(all.len() as u64, ratings, "{opts:?}");
            let pairs: HashSet<(i32, i32)> = all.iter().map(|r| (r.user_id, r.movie_id)).collect();
            assert_eq!(pairs.len(), all.len(), "{opts:?}");
        }
    }

    #[test]
    fn rejects_impossible_options() {
        let too_many = SynthOptions {
            users: 10,
            movies: 10,
            ratings: 101,
            ..SynthOptions::default()
        };
        let err = SynthWorld::new(&too_many).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert!(err.to_string().contains("101 distinct ratings"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        assert!(generate(dir.path(), &too_many, &Silent).is_err());
        assert!(!dir.path().join("ratings.csv").exists());

        let backwards = SynthOptions {
            start_timestamp: 10,
            end_timestamp: 5,
            ..SynthOptions::default()
        };
        assert!(SynthWorld::new(&backwards).is_err());
        let noisy = SynthOptions {
            noise: f64::NAN,
            ..SynthOptions::default()
        };
        assert!(SynthWorld::new(&noisy).is_err());
        let huge = SynthOptions {
            users: u32::MAX,
            ratings: 0,
            ..SynthOptions::default()
        };
        assert!(SynthWorld::new(&huge).is_err());
    }

    #[test]
    fn rating_histogram_looks_like_movielens() {
        let world = SynthWorld::new(&small(5)).unwrap();
        let ratings = all_ratings(&world);
        let n = ratings.len() as f64;
        let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / n;
        let var = ratings
            .iter()
            .map(|r| (f64::from(r.rating) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((3.3..=3.7).contains(&mean), "mean {mean}");
        assert!((0.8..=1.2).contains(&var.sqrt()), "std {}", var.sqrt());
        let mut hist = [0usize; 10];
        for r in &ratings {
            hist[(r.rating * 2.0) as usize - 1] += 1;
        }
        let mode = (0..10).max_by_key(|&i| hist[i]).unwrap();
        assert_eq!(mode, 7, "4.0 should be the most common rating: {hist:?}");
        let whole: usize = hist.iter().skip(1).step_by(2).sum();
        assert!(
            whole * 2 > ratings.len(),
            "whole stars should dominate: {hist:?}"
        );
    }

    #[test]
    fn popularity_and_activity_are_skewed() {
        let opts = small(9);
        let world = SynthWorld::new(&opts).unwrap();
        let ratings = all_ratings(&world);
        let mut per_movie = vec![0usize; opts.movies as usize];
        for r in &ratings {
            per_movie[r.movie_id as usize - 1] += 1;
        }
        per_movie.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = per_movie[..per_movie.len() / 10].iter().sum();
        let share = top as f64 / ratings.len() as f64;
        assert!(
            share > 0.4,
            "top 10% of movies get only {share:.2} of ratings"
        );

        let mut per_user: Vec<u32> = (1..=opts.users as i32)
            .map(|u| world.user_rating_count(u))
            .collect();
        per_user.sort_unstable();
        let median = per_user[per_user.len() / 2];
        let mean = opts.ratings as f64 / opts.users as f64;
        assert!(
            f64::from(median) < 0.75 * mean,
            "median {median}, mean {mean}"
        );
        assert!(f64::from(*per_user.last().unwrap()) > 5.0 * mean);
    }

    /// Alternating least-squares fit of r ~ mu + b_u + b_i (ridge-regularised).
    fn bias_model_rmse(train: &[Rating], test: &[Rating]) -> (f64, f64) {
        let mu = train.iter().map(|r| f64::from(r.rating)).sum::<f64>() / train.len() as f64;
        let mut bu: HashMap<i32, f64> = HashMap::new();
        let mut bi: HashMap<i32, f64> = HashMap::new();
        let lambda = 5.0;
        for _ in 0..10 {
            let mut acc: HashMap<i32, (f64, f64)> = HashMap::new();
            for r in train {
                let e = acc.entry(r.movie_id).or_default();
                e.0 += f64::from(r.rating) - mu - bu.get(&r.user_id).unwrap_or(&0.0);
                e.1 += 1.0;
            }
            bi = acc
                .into_iter()
                .map(|(k, (s, n))| (k, s / (n + lambda)))
                .collect();
            let mut acc: HashMap<i32, (f64, f64)> = HashMap::new();
            for r in train {
                let e = acc.entry(r.user_id).or_default();
                e.0 += f64::from(r.rating) - mu - bi.get(&r.movie_id).unwrap_or(&0.0);
                e.1 += 1.0;
            }
            bu = acc
                .into_iter()
                .map(|(k, (s, n))| (k, s / (n + lambda)))
                .collect();
        }
        let rmse = |pred: &dyn Fn(&Rating) -> f64| {
            (test
                .iter()
                .map(|r| (f64::from(r.rating) - pred(r)).powi(2))
                .sum::<f64>()
                / test.len() as f64)
                .sqrt()
        };
        let baseline = rmse(&|_| mu);
        let model = rmse(&|r| {
            mu + bu.get(&r.user_id).unwrap_or(&0.0) + bi.get(&r.movie_id).unwrap_or(&0.0)
        });
        (baseline, model)
    }

    #[test]
    fn ratings_are_learnable() {
        let world = SynthWorld::new(&small(21)).unwrap();
        let ratings = all_ratings(&world);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for r in ratings {
            if unit(&mut rng) < 0.8 {
                train.push(r);
            } else {
                test.push(r);
            }
        }
        let (baseline, model) = bias_model_rmse(&train, &test);
        assert!(
            model < 0.85 * baseline,
            "bias model RMSE {model:.3} vs global mean {baseline:.3}"
        );
        // The noise-free truth does better still: there is structure beyond
        // biases for a factorization model to find.
        let truth = (test
            .iter()
            .map(|r| (f64::from(r.rating) - world.expected_rating(r.user_id, r.movie_id)).powi(2))
            .sum::<f64>()
            / test.len() as f64)
            .sqrt();
        assert!(
            truth < model - 0.1,
            "truth {truth:.3} vs bias model {model:.3}"
        );
    }

    #[test]
    fn genres_shape_tastes() {
        // Movies sharing a genre set have more similar latent vectors than
        // random pairs, so genre features can help cold-start predictions.
        let world = SynthWorld::new(&small(4)).unwrap();
        let k = world.factors;
        let q = |i: usize| &world.movie_factors[i * k..(i + 1) * k];
        let cos = |a: &[f32], b: &[f32]| {
            let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            f64::from(d / (na * nb))
        };
        let (mut same, mut same_n, mut other, mut other_n) = (0.0, 0, 0.0, 0);
        for i in 0..500 {
            for j in (i + 1)..500 {
                let c = cos(q(i), q(j));
                if world.movie_genres[i] == world.movie_genres[j] {
                    same += c;
                    same_n += 1;
                } else if world.movie_genres[i] & world.movie_genres[j] == 0 {
                    other += c;
                    other_n += 1;
                }
            }
        }
        let (same, other) = (same / f64::from(same_n), other / f64::from(other_n));
        assert!(
            same > other + 0.2,
            "same-genre cosine {same:.3} vs disjoint {other:.3}"
        );
    }

    #[test]
    fn extra_streams_give_fresh_ratings_in_a_window() {
        let world = SynthWorld::new(&small(2)).unwrap();
        let base = world.user_ratings(5);
        let (a, b) = world.user_active_period(5);
        let again = world
            .ratings_in_window(5, base.len(), (a, b), BASE_STREAM)
            .unwrap();
        assert_eq!(base, again);
        let week = (ML_SMALL_END - 7 * 86_400, ML_SMALL_END);
        let batch = world.ratings_in_window(5, 30, week, 1).unwrap();
        assert_eq!(batch.len(), 30);
        assert!(batch
            .iter()
            .all(|r| r.timestamp >= week.0 && r.timestamp <= week.1));
        assert_ne!(batch, world.ratings_in_window(5, 30, week, 2).unwrap());
        assert!(world.ratings_in_window(5, 4_001, week, 1).is_err());
    }

    #[test]
    fn progress_reports_every_user() {
        use std::sync::atomic::{AtomicU64, Ordering};
        #[derive(Default)]
        struct Count(AtomicU64, AtomicU64);
        impl Progress for Count {
            fn stage(&self, name: &str, total: Option<u64>) {
                assert_eq!(name, "synth");
                self.1.store(total.unwrap(), Ordering::SeqCst);
            }
            fn advance(&self, n: u64) {
                self.0.fetch_add(n, Ordering::SeqCst);
            }
            fn message(&self, _: &str) {}
            fn finish(&self) {}
        }
        let p = Count::default();
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            users: 400,
            movies: 1_000,
            ratings: 80_000,
            ..SynthOptions::default()
        };
        generate(dir.path(), &opts, &p).unwrap();
        assert_eq!(p.0.load(Ordering::SeqCst), 400);
        assert_eq!(p.1.load(Ordering::SeqCst), 400);
    }

    #[test]
    fn alias_table_matches_weights() {
        let w = [1.0, 2.0, 3.0, 4.0, 0.0];
        let t = AliasTable::new(&w);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hits = [0u32; 5];
        for _ in 0..100_000 {
            hits[t.sample(&mut rng)] += 1;
        }
        assert_eq!(hits[4], 0);
        for i in 0..4 {
            let p = f64::from(hits[i]) / 100_000.0;
            assert!((p - w[i] / 10.0).abs() < 0.01, "{hits:?}");
        }
    }

    #[test]
    fn formats_like_movielens() {
        let mut buf = Vec::new();
        write_rating(
            &mut buf,
            &Rating {
                user_id: 1,
                movie_id: 31,
                rating: 2.5,
                timestamp: 1_260_759_144,
            },
        );
        write_rating(
            &mut buf,
            &Rating {
                user_id: 610,
                movie_id: 0,
                rating: 5.0,
                timestamp: -3,
            },
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "1,31,2.5,1260759144\n610,0,5.0,-3\n"
        );
    }
}
