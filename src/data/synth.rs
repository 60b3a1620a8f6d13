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

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::progress::Progress;
use crate::types::{Movie, Rating, MAX_RATING, MIN_RATING, MOVIELENS_GENRES};
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
    /// Weekly batches: who rates how much, and pairs with newcomers.
    pub const WEEKS: u64 = 6;
    /// Weekly batches: a history user's movies and ratings in one week.
    pub const BATCHES: u64 = 7;
    /// Weekly batches: new movies' and new users' parameters.
    pub const NEW_ENTITIES: u64 = 8;
    /// Weekly batches: ratings of pairs involving a newcomer.
    pub const WEEK_RATINGS: u64 = 9;
    /// Weekly batches: scores handed to stand-ins.
    pub const TRANSFERS: u64 = 10;
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
    /// Per-coordinate standard deviation of latent vectors.
    factor_sd: f64,
    /// Taste direction of each genre, in [`MOVIELENS_GENRES`] order; kept so
    /// movies added later (weekly batches) share the genre structure.
    genre_vecs: Vec<Vec<f64>>,
    /// Popularity rank of each base movie (0 = most popular).
    movie_rank: Vec<u32>,
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
        for &r in &rank {
            let r = f64::from(r);
            popularity.push((r + ZIPF_OFFSET).powf(-ZIPF_EXPONENT));
            let pop = 1.0 - 2.0 * ((r + ZIPF_OFFSET) / ZIPF_OFFSET).ln() / log_span;
            let (bias, genres) =
                draw_movie(&mut rng, &genre_vecs, factor_sd, pop, &mut movie_factors);
            movie_bias.push(bias);
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
            factor_sd,
            genre_vecs,
            movie_rank: rank,
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
            let rating = round_stars(stars, whole);
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

/// Rounds a continuous rating the way the user rates: whole stars (1 to 5)
/// or half stars (0.5 to 5), within the scale MovieLens allows.
fn round_stars(stars: f64, whole: bool) -> f64 {
    let (min, max) = (f64::from(MIN_RATING), f64::from(MAX_RATING));
    if whole {
        stars.round().clamp(min.ceil(), max)
    } else {
        ((stars * 2.0).round() / 2.0).clamp(min, max)
    }
}

/// Draws one movie's genres, bias and latent vector (appended to
/// `factors_out`) in a fixed order, so base movies stay reproducible and
/// movies added by weekly batches follow exactly the same model.
/// `pop` is the popularity position in [-1, 1] (+1 = most popular).
fn draw_movie(
    rng: &mut ChaCha8Rng,
    genre_vecs: &[Vec<f64>],
    factor_sd: f64,
    pop: f64,
    factors_out: &mut Vec<f32>,
) -> (f32, u32) {
    let k = genre_vecs.first().map_or(0, Vec::len);
    let genres = draw_genres(rng);
    let n_genres = f64::from(genres.count_ones());
    let mut gbias = 0.0;
    let mut taste = vec![0.0f64; k];
    for (j, gv) in genre_vecs.iter().enumerate() {
        if genres & (1 << j) != 0 {
            gbias += GENRE_BIAS[j];
            taste.iter_mut().zip(gv).for_each(|(t, g)| *t += g);
        }
    }
    let bias = MOVIE_BIAS_SD * normal(rng) + gbias / n_genres + POPULARITY_BIAS * pop;
    for t in &taste {
        let q = GENRE_SHARE.sqrt() * t / n_genres.sqrt() + (1.0 - GENRE_SHARE).sqrt() * normal(rng);
        factors_out.push((factor_sd * q) as f32);
    }
    (bias as f32, genres)
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
    write_history(dir, &world, progress)
}

/// [`generate`]'s writer. The catalogue is every movie the world holds, so
/// movies added for weekly batches are listed alongside the base ones; the
/// ratings are the base users' histories only.
fn write_history(dir: &Path, world: &SynthWorld, progress: &dyn Progress) -> Result<SynthReport> {
    let opts = &world.opts;
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

// ---------------------------------------------------------------------------
// Weekly batches with injected drift.
//
// Monitoring compares each week's new ratings with the training history, so
// testing it needs weeks that are known to be clean (a detector must stay
// quiet) and weeks with a known, controlled change (it must fire, and on the
// right statistic). Batches are drawn from the same world as the history, so
// a model trained on the history predicts clean weeks as well as its test set.

/// Length of one batch window.
pub const WEEK_SECONDS: i64 = 7 * 86_400;
/// A genre drift of `delta` stars also multiplies its movies' sampling
/// weight by `1 + GENRE_BOOST * |delta|`: a genre that suddenly rates
/// differently is usually one that is suddenly watched more (a hit release,
/// a festival), and the genre-mix statistics need something to detect.
pub const GENRE_BOOST: f64 = 4.0;
/// Average ratings per movie introduced by [`DriftKind::NewMovies`]; sets
/// how many new movies a week gets. MovieLens's new titles collect a few
/// dozen ratings in their first week.
const NEW_MOVIE_RATINGS: u64 = 20;
/// Average ratings per new user (MovieLens's minimum per published user).
const NEW_USER_RATINGS: u64 = 20;
/// A batch movie counts as matching a history movie when their noise-free
/// scores differ by at most this many stars (see [`Marks::pick`]): well
/// below the rating noise and the half-star rounding, so the match is
/// invisible in the histogram.
const MATCH_TOLERANCE: f64 = 0.05;
/// Most candidates drawn per batch pick; only the rare extreme scores need
/// that many, and the closest one is kept if none matches.
const MATCH_CANDIDATES: usize = 256;
/// Largest drift shift accepted, in stars: beyond it every rating clips.
const MAX_SHIFT: f64 = 4.5;
/// Largest spread factor accepted.
const MAX_SPREAD: f64 = 10.0;
/// The CLI form, quoted in parse errors.
const DRIFT_EXAMPLE: &str = "mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5";

/// A change injected into one week's batch.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftKind {
    /// Shift every rating of the week by `delta` stars before rounding and
    /// clipping: moves the mean, and with it the KS statistic, PSI and
    /// chi-square of the rating histogram. Clipping at 5 stars absorbs part
    /// of a positive shift (about a fifth of +0.4).
    Mean(f64),
    /// Shift the ratings of movies having `genre` by `delta` stars and
    /// multiply those movies' sampling weight by `1 + GENRE_BOOST * |delta|`,
    /// so both the genre's ratings and the week's genre mix (Jensen–Shannon
    /// divergence of genre shares) drift.
    Genre { genre: String, delta: f64 },
    /// This share of the week's ratings are on brand-new movies (ids above
    /// every existing id, listed in `movies.csv` but never rated in the
    /// history), and independently the same share are by brand-new users
    /// (ids above every history user): the "unseen movies/users" drift. The
    /// newcomers follow the world's model, so only their novelty changes.
    NewMovies(f64),
    /// Scale every rating's deviation from the history's mean by this
    /// factor before rounding and clipping (1.5 widens, 0.5 narrows):
    /// moves the standard deviation while keeping the mean (up to clipping).
    Spread(f64),
}

impl DriftKind {
    /// The name used in the CLI form, for errors and duplicate checks.
    fn name(&self) -> &'static str {
        match self {
            DriftKind::Mean(_) => "mean",
            DriftKind::Genre { .. } => "genre",
            DriftKind::NewMovies(_) => "new-movies",
            DriftKind::Spread(_) => "spread",
        }
    }

    /// Range checks shared by [`parse_drift`] and [`generate_weekly`], so a
    /// programmatic spec cannot do what the CLI refuses. Returns the kind
    /// with its genre spelled as MovieLens spells it.
    fn checked(&self) -> std::result::Result<DriftKind, String> {
        let shift = |what: &str, d: f64| {
            if d.is_finite() && d.abs() <= MAX_SHIFT {
                Ok(())
            } else {
                Err(format!(
                    "{what} must be a shift in stars between -{MAX_SHIFT} and +{MAX_SHIFT}, got {d}"
                ))
            }
        };
        match self {
            DriftKind::Mean(d) => shift("mean", *d).map(|()| self.clone()),
            DriftKind::Genre { genre, delta } => {
                shift("the genre shift", *delta)?;
                let canonical = MOVIELENS_GENRES
                    .iter()
                    .find(|g| g.eq_ignore_ascii_case(genre.trim()))
                    .ok_or_else(|| {
                        format!(
                            "unknown genre \"{genre}\"; synthetic movies use {}",
                            MOVIELENS_GENRES.join(", ")
                        )
                    })?;
                Ok(DriftKind::Genre {
                    genre: (*canonical).to_string(),
                    delta: *delta,
                })
            }
            DriftKind::NewMovies(s) => {
                if (0.0..=1.0).contains(s) {
                    Ok(self.clone())
                } else {
                    Err(format!(
                        "new-movies is the share of the week's ratings on new movies, \
                         between 0 and 1; got {s}"
                    ))
                }
            }
            DriftKind::Spread(f) => {
                if f.is_finite() && *f > 0.0 && *f <= MAX_SPREAD {
                    Ok(self.clone())
                } else {
                    Err(format!(
                        "spread scales deviations from the mean and must be above 0 and at \
                         most {MAX_SPREAD} (1.5 widens, 0.5 narrows); got {f}"
                    ))
                }
            }
        }
    }
}

/// The CLI form, which [`parse_drift`] reads back.
impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriftKind::Mean(d) => write!(f, "mean:{d:+}"),
            DriftKind::Genre { genre, delta } => write!(f, "genre:{genre}:{delta:+}"),
            DriftKind::NewMovies(s) => write!(f, "new-movies:{s}"),
            DriftKind::Spread(s) => write!(f, "spread:{s}"),
        }
    }
}

/// The drift injected into week `week` (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSpec {
    pub week: u32,
    pub kinds: Vec<DriftKind>,
}

/// Parses the CLI form, e.g. `mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5`.
///
/// Items are comma-separated, fields colon-separated; names and genres are
/// case-insensitive and spaces around items are ignored. Each kind may
/// appear once (genre once per genre), because two shifts of the same
/// statistic in one week would make the expected effect ambiguous. Errors
/// quote the offending item.
pub fn parse_drift(s: &str) -> Result<Vec<DriftKind>> {
    let bad = |item: &str, why: String| {
        Err(Error::InvalidArgument(format!(
            "drift \"{item}\": {why} (expected e.g. {DRIFT_EXAMPLE})"
        )))
    };
    if s.trim().is_empty() {
        return bad(s, "no drift given".into());
    }
    let mut out: Vec<DriftKind> = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return bad(s, "empty item between commas".into());
        }
        let fields: Vec<&str> = item.split(':').map(str::trim).collect();
        let number = |what: &str, v: &str| -> std::result::Result<f64, String> {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(format!("{what} \"{v}\" is not a number")),
            }
        };
        let name = fields[0].to_ascii_lowercase();
        let arity = match name.as_str() {
            "genre" => 3,
            "mean" | "new-movies" | "new_movies" | "spread" => 2,
            _ => {
                return bad(
                    item,
                    format!(
                        "unknown drift kind \"{}\"; use mean, genre, new-movies or spread",
                        fields[0]
                    ),
                )
            }
        };
        if fields.len() != arity {
            let form = match name.as_str() {
                "genre" => "genre:GENRE:DELTA",
                "mean" => "mean:DELTA",
                "spread" => "spread:FACTOR",
                _ => "new-movies:SHARE",
            };
            return bad(item, format!("expected the form {form}"));
        }
        let parsed = match name.as_str() {
            "mean" => number("the mean shift", fields[1]).map(DriftKind::Mean),
            "genre" => number("the genre shift", fields[2]).map(|delta| DriftKind::Genre {
                genre: fields[1].to_string(),
                delta,
            }),
            "spread" => number("the spread factor", fields[1]).map(DriftKind::Spread),
            _ => number("the new-movies share", fields[1]).map(DriftKind::NewMovies),
        };
        let kind = match parsed.and_then(|k| k.checked()) {
            Ok(k) => k,
            Err(why) => return bad(item, why),
        };
        if let Some(dup) = out.iter().find(|k| same_slot(k, &kind)) {
            return bad(item, format!("repeats \"{dup}\"; give each kind once"));
        }
        out.push(kind);
    }
    Ok(out)
}

/// Whether two kinds would drive the same statistic (same kind, and for
/// genre drift the same genre).
fn same_slot(a: &DriftKind, b: &DriftKind) -> bool {
    match (a, b) {
        (DriftKind::Genre { genre: x, .. }, DriftKind::Genre { genre: y, .. }) => x == y,
        _ => a.name() == b.name(),
    }
}

/// How many weekly batches to write after the history, and what to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyOptions {
    pub weeks: u32,
    /// Exact number of ratings in every batch file.
    pub ratings_per_week: u64,
    /// Weeks not listed are clean.
    pub drift: Vec<DriftSpec>,
}

impl Default for WeeklyOptions {
    /// A month of clean weeks, each about a fifth of ml-latest-small's
    /// 2018 activity scaled up enough for stable drift statistics.
    fn default() -> Self {
        WeeklyOptions {
            weeks: 4,
            ratings_per_week: 10_000,
            drift: Vec::new(),
        }
    }
}

/// One batch file, for the CLI to print and tests to check against.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekReport {
    pub week: u32,
    pub path: std::path::PathBuf,
    /// The window `[start, end)` in unix seconds all its timestamps fall in.
    pub start: i64,
    pub end: i64,
    pub ratings: u64,
    pub mean_rating: f64,
    pub std_rating: f64,
    /// Movies and users first appearing this week ([`DriftKind::NewMovies`]).
    pub new_movies: u32,
    pub new_users: u32,
    /// Ratings on new movies, and ratings by new users.
    pub new_movie_ratings: u64,
    pub new_user_ratings: u64,
    /// What was injected; empty for a clean week.
    pub drift: Vec<DriftKind>,
}

/// What [`generate_weekly`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyReport {
    /// The history (`ratings.csv`), identical to what [`generate`] reports.
    pub history: SynthReport,
    /// Rows of `movies.csv`: the base catalogue plus every new movie.
    pub catalogue_movies: u32,
    pub weeks: Vec<WeekReport>,
}

/// How a week's drift changes each rating and each movie's chance of being
/// rated.
#[derive(Debug, Clone, Default)]
struct Effect {
    shift: f64,
    spread: Option<f64>,
    /// (genre bit, shift in stars)
    genres: Vec<(u32, f64)>,
    /// Share of ratings on new movies (and by new users).
    new_share: f64,
    /// Spread is around this: the history's mean rating.
    center: f64,
}

impl Effect {
    fn new(kinds: &[DriftKind]) -> Effect {
        let mut e = Effect::default();
        for k in kinds {
            match k {
                DriftKind::Mean(d) => e.shift = *d,
                DriftKind::Spread(f) => e.spread = Some(*f),
                DriftKind::NewMovies(s) => e.new_share = *s,
                DriftKind::Genre { genre, delta } => {
                    if let Some(j) = MOVIELENS_GENRES.iter().position(|g| g == genre) {
                        e.genres.push((1 << j, *delta));
                    }
                }
            }
        }
        e
    }

    fn stars(&self, stars: f64, genres: u32) -> f64 {
        let mut s = stars;
        if let Some(f) = self.spread {
            s = self.center + f * (s - self.center);
        }
        s += self.shift;
        for &(bit, d) in &self.genres {
            if genres & bit != 0 {
                s += d;
            }
        }
        s
    }

    /// Sampling-weight multiplier for a movie with these genres.
    fn boost(&self, genres: u32) -> f64 {
        self.genres
            .iter()
            .filter(|(bit, _)| genres & bit != 0)
            .map(|(_, d)| 1.0 + GENRE_BOOST * d.abs())
            .product()
    }
}

/// Everything decided about a week before any rating is drawn.
struct WeekPlan {
    week: u32,
    /// Inclusive, for timestamp draws.
    window: (i64, i64),
    kinds: Vec<DriftKind>,
    effect: Effect,
    /// Genre-boosted base-movie weights and their table; `None` = the
    /// world's own popularity.
    boosted: Option<(Vec<f64>, AliasTable)>,
    new_movies: Range<usize>,
    new_users: Range<usize>,
    /// (user index, movie index) ratings involving a new user or movie.
    special: Vec<(u32, u32)>,
}

/// Writes a history and weekly batches drawn from one synthetic world.
///
/// Layout: `DIR/ratings.csv` and `DIR/movies.csv` as [`generate`] writes
/// them (the ratings byte-identical, so the history's timestamps end at
/// `opts.end_timestamp`), except that `movies.csv` also lists every movie
/// that [`DriftKind::NewMovies`] introduces, so loading the history and then
/// ingesting batches never meets an unknown movie. Then
/// `DIR/batches/batch_w1.csv ..= batch_wN.csv` in the same CSV format
/// (stale `batch_w*.csv` files from an earlier run are removed first), week
/// k's timestamps in `[end + (k-1)*7d, end + k*7d)`. Week 1 therefore
/// starts at the history's last second, which may hold history ratings too.
///
/// Batch ratings are by history users, chosen in proportion to their
/// history activity (so the mix of raters matches the history's), on movies
/// they rated neither in the history nor in an earlier week, with the same
/// latent tastes and noise. Each user's movies continue their own weighted
/// draw without replacement, so heavy raters, who have already rated the
/// popular films, move into the catalogue's tail, as in reality; the tests
/// check that this leaves clean weeks statistically indistinguishable from
/// the history. Output is a pure function of the options (same seed, same
/// bytes, whatever the thread count).
pub fn generate_weekly(
    dir: &Path,
    opts: &SynthOptions,
    weekly: &WeeklyOptions,
    progress: &dyn Progress,
) -> Result<WeeklyReport> {
    let mut world = SynthWorld::new(opts)?;
    let per_week = resolve_drift(weekly)?;
    let end = opts.end_timestamp;
    i64::from(weekly.weeks)
        .checked_mul(WEEK_SECONDS)
        .and_then(|d| end.checked_add(d))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} weeks after timestamp {end} overflow the timestamp range",
                weekly.weeks
            ))
        })?;
    let (mut plans, per_user) = plan_weeks(&mut world, weekly, per_week)?;
    let n_weeks = plans.len();

    let history = write_history(dir, &world, progress)?;
    for p in &mut plans {
        p.effect.center = history.mean_rating;
    }

    progress.stage("batches", Some(u64::from(weekly.weeks)));
    let batch_dir = dir.join("batches");
    std::fs::create_dir_all(&batch_dir).map_err(|e| Error::io(&batch_dir, e))?;
    remove_stale_batches(&batch_dir)?;

    // Existing users on existing movies: per user, all weeks in order, so
    // each week avoids the history and the earlier weeks.
    let m = world.popularity.len();
    let base_users = world.user_count.len();
    let active: Vec<usize> = (0..base_users)
        .filter(|&u| !per_user[u].is_empty())
        .collect();
    let world = &world;
    let plans_ref = &plans;
    let per_user_ref = &per_user;
    let drawn: Vec<Vec<(u32, Vec<Rating>)>> = active
        .par_iter()
        .map_init(
            || {
                (
                    Scratch::default(),
                    Marks::new(m),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                )
            },
            |(scratch, marks, rated, picks, templates), &u| {
                rated.clear();
                let (a, b) = world.user_period[u];
                let count = world.user_count[u] as usize;
                world.fill_user(u, count, (a, b), BASE_STREAM, scratch, rated);
                marks.next_user();
                templates.clear();
                for r in rated.iter() {
                    let i = r.movie_id as usize - 1;
                    marks.set(i);
                    templates.push(world.score(u, i));
                }
                let mut out = Vec::with_capacity(per_user_ref[u].len());
                for uw in &per_user_ref[u] {
                    let plan = &plans_ref[uw.week as usize];
                    let stream = (u64::from(plan.week) << 32) | u as u64;
                    let mut rng = rng_for(world.opts.seed, domain::BATCHES, stream);
                    let (weights, alias) = match &plan.boosted {
                        Some((w, t)) => (w.as_slice(), t),
                        None => (world.popularity.as_slice(), &world.alias),
                    };
                    marks.next_week();
                    picks.clear();
                    let score = |i: usize| world.score(u, i);
                    for _ in 0..uw.own {
                        let target = (!templates.is_empty())
                            .then(|| templates[below(&mut rng, templates.len() as u64) as usize]);
                        // None is ruled out by planning (room per user).
                        if let Some(i) = marks.pick(target, weights, alias, score, &mut rng) {
                            picks.push(i as u32);
                        }
                    }
                    for &t in &uw.targets {
                        if let Some(i) = marks.pick(Some(t), weights, alias, score, &mut rng) {
                            picks.push(i as u32);
                        }
                    }
                    picks.sort_unstable();
                    let ratings = picks
                        .iter()
                        .map(|&i| world.batch_rating(u, i as usize, plan, &mut rng))
                        .collect();
                    out.push((uw.week, ratings));
                }
                out
            },
        )
        .collect();
    let mut weeks: Vec<Vec<Rating>> = vec![Vec::new(); n_weeks];
    for user in drawn {
        for (w, ratings) in user {
            weeks[w as usize].extend(ratings);
        }
    }

    let mut reports = Vec::with_capacity(n_weeks);
    for (plan, mut ratings) in plans.iter().zip(weeks) {
        let mut rng = rng_for(opts.seed, domain::WEEK_RATINGS, u64::from(plan.week));
        for &(u, i) in &plan.special {
            ratings.push(world.batch_rating(u as usize, i as usize, plan, &mut rng));
        }
        ratings.sort_unstable_by_key(|r| (r.user_id, r.movie_id));
        let path = batch_dir.join(format!("batch_w{}.csv", plan.week));
        write_ratings_file(&path, &ratings)?;
        let n = ratings.len() as f64;
        let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / n.max(1.0);
        let var = ratings
            .iter()
            .map(|r| (f64::from(r.rating) - mean).powi(2))
            .sum::<f64>()
            / n.max(1.0);
        reports.push(WeekReport {
            week: plan.week,
            path,
            start: plan.window.0,
            end: plan.window.1 + 1,
            ratings: ratings.len() as u64,
            mean_rating: mean,
            std_rating: var.sqrt(),
            new_movies: plan.new_movies.len() as u32,
            new_users: plan.new_users.len() as u32,
            new_movie_ratings: ratings.iter().filter(|r| r.movie_id as usize > m).count() as u64,
            new_user_ratings: ratings
                .iter()
                .filter(|r| r.user_id as usize > base_users)
                .count() as u64,
            drift: plan.kinds.clone(),
        });
        progress.advance(1);
    }
    progress.finish();
    Ok(WeeklyReport {
        history,
        catalogue_movies: world.movie_genres.len() as u32,
        weeks: reports,
    })
}

/// Checks the drift specs and gathers them by week (0-based index).
fn resolve_drift(weekly: &WeeklyOptions) -> Result<Vec<Vec<DriftKind>>> {
    let mut per_week: Vec<Vec<DriftKind>> = vec![Vec::new(); weekly.weeks as usize];
    for spec in &weekly.drift {
        if spec.week == 0 || spec.week > weekly.weeks {
            return Err(Error::InvalidArgument(format!(
                "drift is set for week {}, but weeks run from 1 to {}",
                spec.week, weekly.weeks
            )));
        }
        let slot = &mut per_week[spec.week as usize - 1];
        for k in &spec.kinds {
            let k = k.checked().map_err(|why| {
                Error::InvalidArgument(format!("drift \"{k}\" for week {}: {why}", spec.week))
            })?;
            if let Some(dup) = slot.iter().find(|d| same_slot(d, &k)) {
                return Err(Error::InvalidArgument(format!(
                    "week {} has drift \"{dup}\" and \"{k}\"; give each kind once per week",
                    spec.week
                )));
            }
            slot.push(k);
        }
    }
    Ok(per_week)
}

/// Decides, week by week, who rates how much, which new movies and users
/// appear, and which (user, movie) pairs involve newcomers. New entities
/// are appended to `world` (their ids continue after the base ones).
///
/// Each rating by a history user on a history movie is assigned to a user
/// drawn by history activity, so the week's raters mix like the history's.
/// A user who has used up [`MAX_ROOM_SHARE`] of their unrated movies hands
/// the rating to a stand-in with the same star habit (whole or half stars),
/// together with the noise-free score of a random movie from their
/// history, and the stand-in rates a movie they score like that. The
/// week's scores, hence its histogram, stay distributed like the history's;
/// only who holds a few of the ratings changes.
///
/// Returns the plans and, per base user, their weeks in order.
/// How a week's ratings divide between history users and newcomers.
#[derive(Debug, Clone, Copy)]
struct Slots {
    by_new_users: u64,
    on_new_movies: u64,
    /// By a new user on a new movie.
    both: u64,
    new_user_old_movie: u64,
    old_user_new_movie: u64,
    old_user_old_movie: u64,
}

impl Slots {
    /// Exact counts: a share `s` of the `n` ratings are by new users, `s`
    /// are on new movies, and the two overlap as if independent.
    fn new(n: u64, s: f64) -> Slots {
        let by_new_users = (s * n as f64).round() as u64;
        let on_new_movies = by_new_users;
        let both = (s * by_new_users as f64).round() as u64;
        Slots {
            by_new_users,
            on_new_movies,
            both,
            new_user_old_movie: by_new_users - both,
            old_user_new_movie: on_new_movies - both,
            old_user_old_movie: n - by_new_users - (on_new_movies - both),
        }
    }
}

/// Share of a history user's unrated movies the batches may use up.
///
/// Batch movies are matched to the rater's history (see [`Marks::pick`]),
/// which needs unrated movies left at every score. A user who has already
/// rated most of the catalogue would otherwise end up rating just the
/// leftovers nobody wanted: measured on a default world, the two heaviest
/// raters (6,080 and 5,645 of 9,000 movies) fell 0.26 stars below their
/// history by week 4, taking the clean week's mean 0.04 down. Their excess
/// is handed to stand-ins instead (see [`plan_weeks`]).
const MAX_ROOM_SHARE: f64 = 0.5;

/// A history user's part of one week.
#[derive(Debug, Clone, Default)]
struct UserWeek {
    /// Week index (0-based).
    week: u32,
    /// Ratings matched to the user's own history.
    own: u32,
    /// Ratings matched to these noise-free scores, taken over from a rater
    /// who had no room left (see [`plan_weeks`]).
    targets: Vec<f64>,
}

/// An activity-weighted draw among the users `eligible` accepts: by
/// rejection while that is cheap, then by a linear scan. `None` if nobody
/// with weight is eligible.
fn draw_eligible(
    weights: &[f64],
    alias: &AliasTable,
    rng: &mut ChaCha8Rng,
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    for _ in 0..64 {
        let u = alias.sample(rng);
        if eligible(u) {
            return Some(u);
        }
    }
    let total: f64 = (0..weights.len())
        .filter(|&u| eligible(u))
        .map(|u| weights[u])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut t = unit(rng) * total;
    let mut last = None;
    for u in (0..weights.len()).filter(|&u| eligible(u) && weights[u] > 0.0) {
        last = Some(u);
        if t < weights[u] {
            return Some(u);
        }
        t -= weights[u];
    }
    last
}

#[allow(clippy::type_complexity)]
fn plan_weeks(
    world: &mut SynthWorld,
    weekly: &WeeklyOptions,
    per_week: Vec<Vec<DriftKind>>,
) -> Result<(Vec<WeekPlan>, Vec<Vec<UserWeek>>)> {
    let seed = world.opts.seed;
    let m = world.popularity.len();
    let base_users = world.user_count.len();
    let k = world.factors;
    let n = weekly.ratings_per_week;

    // The history's activity: who the history's ratings are by.
    let mut activity: Vec<f64> = world.user_count.iter().map(|&c| f64::from(c)).collect();
    if activity.iter().all(|&w| w == 0.0) {
        // No history ratings: no activity to go by, so all count alike.
        activity.iter_mut().for_each(|w| *w = 1.0);
    }
    let activity_alias = AliasTable::new(&activity);
    // Base movies each user has not rated yet.
    let mut room: Vec<u64> = world
        .user_count
        .iter()
        .zip(&activity)
        .map(|(&c, &w)| if w > 0.0 { m as u64 - u64::from(c) } else { 0 })
        .collect();
    let mut room_total: u64 = room.iter().sum();
    let mut allowance: Vec<u64> = room
        .iter()
        .map(|&r| (MAX_ROOM_SHARE * r as f64) as u64)
        .collect();
    let habit: Vec<bool> = world.user_whole_stars.clone();
    let log_span = ((m as f64 + ZIPF_OFFSET) / ZIPF_OFFSET)
        .ln()
        .max(f64::MIN_POSITIVE);

    let mut plans = Vec::with_capacity(per_week.len());
    let mut per_user: Vec<Vec<UserWeek>> = vec![Vec::new(); base_users];
    let mut own = vec![0u32; base_users];
    let mut moved = vec![0u32; base_users];
    // (stand-in, index into per_user[stand-in], the user they stand in for)
    let mut transfers: Vec<(u32, u32, u32)> = Vec::new();
    for (w, kinds) in per_week.into_iter().enumerate() {
        let week = w as u32 + 1;
        let start = world.opts.end_timestamp + i64::from(w as u32) * WEEK_SECONDS;
        let window = (start, start + WEEK_SECONDS - 1);
        let effect = Effect::new(&kinds);
        let mut rng = rng_for(seed, domain::WEEKS, u64::from(week));

        let Slots {
            by_new_users,
            on_new_movies,
            both,
            new_user_old_movie,
            old_user_new_movie,
            old_user_old_movie,
        } = Slots::new(n, effect.new_share);

        let boosted = (!effect.genres.is_empty()).then(|| {
            let weights: Vec<f64> = (0..m)
                .map(|i| world.popularity[i] * effect.boost(world.movie_genres[i]))
                .collect();
            let table = AliasTable::new(&weights);
            (weights, table)
        });

        // New movies imitate the popularity of a uniformly chosen base
        // movie, and are then rated in proportion to it: the same
        // popularity-weighted mix (and popularity bias) as base movies.
        let mut ent_rng = rng_for(seed, domain::NEW_ENTITIES, u64::from(week));
        let first_movie = world.movie_genres.len();
        // Enough newcomers that their distinct pairs comfortably exceed the
        // ratings they take part in (twice over, since pairs are drawn at
        // random), which only matters in tiny worlds.
        let pair_floor = ((2 * both) as f64).sqrt().ceil() as u64;
        let n_movies = if on_new_movies > 0 {
            let by_old_users = (2 * old_user_new_movie).div_ceil(base_users.max(1) as u64);
            on_new_movies
                .div_ceil(NEW_MOVIE_RATINGS)
                .max(pair_floor)
                .max(by_old_users)
                .max(1) as usize
        } else {
            0
        };
        let year = year_of(start).clamp(1902, i64::from(u16::MAX)) as u16;
        let mut new_weights = Vec::with_capacity(n_movies);
        for _ in 0..n_movies {
            let (pop, weight) = if m > 0 {
                let t = below(&mut ent_rng, m as u64) as usize;
                let r = f64::from(world.movie_rank[t]);
                let pop = 1.0 - 2.0 * ((r + ZIPF_OFFSET) / ZIPF_OFFSET).ln() / log_span;
                (pop, world.popularity[t])
            } else {
                (0.0, 1.0)
            };
            let (bias, genres) = draw_movie(
                &mut ent_rng,
                &world.genre_vecs,
                world.factor_sd,
                pop,
                &mut world.movie_factors,
            );
            world.movie_bias.push(bias);
            world.movie_genres.push(genres);
            world.movie_year.push(year);
            new_weights.push(weight * effect.boost(genres));
        }
        let new_movies = first_movie..world.movie_genres.len();
        check_ids("movies", new_movies.end)?;
        let new_movie_alias = AliasTable::new(&new_weights);

        // New users: fresh tastes from the same distributions; whole-star
        // habits copied from an activity-weighted history user, so the
        // half-star share of the histogram does not move with them.
        let first_user = world.user_bias.len();
        let n_users = if by_new_users > 0 {
            let by_old_movies = (2 * new_user_old_movie).div_ceil(m.max(1) as u64);
            by_new_users
                .div_ceil(NEW_USER_RATINGS)
                .max(pair_floor)
                .max(by_old_movies)
                .max(1) as usize
        } else {
            0
        };
        for _ in 0..n_users {
            world
                .user_bias
                .push((USER_BIAS_SD * normal(&mut ent_rng)) as f32);
            for _ in 0..k {
                let f = world.factor_sd * normal(&mut ent_rng);
                world.user_factors.push(f as f32);
            }
            let whole = if base_users > 0 {
                world.user_whole_stars[activity_alias.sample(&mut ent_rng)]
            } else {
                unit(&mut ent_rng) < WHOLE_STAR_USERS
            };
            world.user_whole_stars.push(whole);
        }
        let new_users = first_user..world.user_bias.len();
        check_ids("users", new_users.end)?;

        // History users on base movies: only counts here; the movies are
        // drawn per user later, in parallel.
        if old_user_old_movie > room_total {
            return Err(Error::InvalidArgument(format!(
                "week {week} needs {old_user_old_movie} more ratings by history users on \
                 history movies, but only {room_total} unrated (user, movie) pairs are left: \
                 add movies or lower the ratings per week"
            )));
        }
        own.iter_mut().for_each(|c| *c = 0);
        moved.iter_mut().for_each(|c| *c = 0);
        let mut donors: Vec<(u32, u32)> = Vec::new();
        for _ in 0..old_user_old_movie {
            let u = activity_alias.sample(&mut rng);
            let rater = if allowance[u] > 0 {
                u
            } else {
                draw_eligible(&activity, &activity_alias, &mut rng, |v| {
                    v != u && allowance[v] > 0 && habit[v] == habit[u]
                })
                .or_else(|| {
                    draw_eligible(&activity, &activity_alias, &mut rng, |v| {
                        v != u && allowance[v] > 0
                    })
                })
                .or_else(|| draw_eligible(&activity, &activity_alias, &mut rng, |v| room[v] > 0))
                .expect("room_total covers the week")
            };
            if rater == u {
                own[u] += 1;
            } else {
                moved[rater] += 1;
                donors.push((rater as u32, u as u32));
            }
            room[rater] -= 1;
            allowance[rater] = allowance[rater].saturating_sub(1);
            room_total -= 1;
        }
        for u in 0..base_users {
            if own[u] > 0 || moved[u] > 0 {
                per_user[u].push(UserWeek {
                    week: w as u32,
                    own: own[u],
                    targets: Vec::with_capacity(moved[u] as usize),
                });
            }
        }
        for (v, u) in donors {
            let entry = per_user[v as usize].len() as u32 - 1;
            transfers.push((v, entry, u));
        }

        // Pairs with a newcomer cannot repeat the history or earlier weeks;
        // only this week's pairs need checking.
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut special = Vec::with_capacity((n - old_user_old_movie) as usize);
        let base_table = boosted.as_ref().map_or(&world.alias, |(_, t)| t);
        let new_user =
            |rng: &mut ChaCha8Rng| (new_users.start + below(rng, n_users as u64) as usize) as u32;
        let new_movie = |rng: &mut ChaCha8Rng| (first_movie + new_movie_alias.sample(rng)) as u32;
        let placed =
            place_pairs(new_user_old_movie, &mut rng, &mut seen, &mut special, |r| {
                (new_user(r), base_table.sample(r) as u32)
            }) && place_pairs(both, &mut rng, &mut seen, &mut special, |r| {
                (new_user(r), new_movie(r))
            }) && place_pairs(old_user_new_movie, &mut rng, &mut seen, &mut special, |r| {
                (activity_alias.sample(r) as u32, new_movie(r))
            });
        if !placed {
            return Err(Error::InvalidArgument(format!(
                "week {week}: the world is too small to place {on_new_movies} ratings on new \
                 movies and by new users without repeating a (user, movie) pair; add users \
                 or movies"
            )));
        }
        plans.push(WeekPlan {
            week,
            window,
            kinds,
            effect,
            boosted,
            new_movies,
            new_users,
            special,
        });
    }

    // The handed-over scores: random movies from each donor's history.
    let mut donors: Vec<u32> = transfers.iter().map(|t| t.2).collect();
    donors.sort_unstable();
    donors.dedup();
    let world: &SynthWorld = world;
    let donor_scores: Vec<Vec<f64>> = donors
        .par_iter()
        .map_init(
            || (Scratch::default(), Vec::new()),
            |(scratch, rated), &u| {
                let u = u as usize;
                rated.clear();
                let count = world.user_count[u] as usize;
                world.fill_user(u, count, world.user_period[u], BASE_STREAM, scratch, rated);
                rated
                    .iter()
                    .map(|r| world.score(u, r.movie_id as usize - 1))
                    .collect()
            },
        )
        .collect();
    let mut rng = rng_for(seed, domain::TRANSFERS, 0);
    for (v, entry, u) in transfers {
        let d = donors.binary_search(&u).expect("donor listed");
        let scores = &donor_scores[d];
        let uw = &mut per_user[v as usize][entry as usize];
        if scores.is_empty() {
            // A donor without history (a world with no ratings): nothing
            // to match, so a plain draw by the stand-in.
            uw.own += 1;
        } else {
            uw.targets
                .push(scores[below(&mut rng, scores.len() as u64) as usize]);
        }
    }
    Ok((plans, per_user))
}

fn check_ids(what: &str, count: usize) -> Result<()> {
    if count > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "new {what} would need ids beyond {} (ids are 32-bit)",
            i32::MAX
        )));
    }
    Ok(())
}

/// Draws `count` distinct pairs from `draw` into `out`; false when the
/// pairs seem exhausted (too many repeats in a row).
fn place_pairs(
    count: u64,
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> (u32, u32),
) -> bool {
    let mut misses = 0u64;
    let mut placed = 0;
    while placed < count {
        let pair = draw(rng);
        if seen.insert(pair) {
            out.push(pair);
            placed += 1;
            misses = 0;
        } else {
            misses += 1;
            if misses > 10_000 {
                return false;
            }
        }
    }
    true
}

/// Movies a user has rated, as generation stamps so that moving to the
/// next user costs nothing.
struct Marks {
    stamp: Vec<u32>,
    epoch: u32,
    /// Weighted table over the unmarked movies, for users who have rated
    /// nearly all the weight (see [`Marks::candidate`]); per user-week.
    local: Option<(AliasTable, Vec<u32>)>,
}

impl Marks {
    fn new(m: usize) -> Self {
        Marks {
            stamp: vec![0; m],
            epoch: 0,
            local: None,
        }
    }

    fn next_user(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        self.local = None;
    }

    /// Call before picking with other weights (a new week).
    fn next_week(&mut self) {
        self.local = None;
    }

    fn set(&mut self, i: usize) {
        self.stamp[i] = self.epoch;
    }

    fn is_set(&self, i: usize) -> bool {
        self.stamp[i] == self.epoch
    }

    /// Picks and marks one unmarked movie whose noise-free score (`score`)
    /// matches `target`: candidates are drawn by `weights` among the
    /// unmarked movies until one is within [`MATCH_TOLERANCE`] of it (or,
    /// after [`MATCH_CANDIDATES`], the closest is kept). The target is the
    /// score of a movie from the rater's history, so new ratings are
    /// distributed like old ones: plain weighted draws would not be, since
    /// heavy raters have already rated the popular films, which rate
    /// higher, and would drift each clean week down (measured: -0.02 to
    /// -0.05 stars by weeks 3 to 6 of a default world). Without a target,
    /// the first candidate: a plain weighted draw. `None` only when every
    /// movie is marked.
    fn pick(
        &mut self,
        target: Option<f64>,
        weights: &[f64],
        alias: &AliasTable,
        score: impl Fn(usize) -> f64,
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        let mut best = None;
        let mut gap = f64::INFINITY;
        for _ in 0..MATCH_CANDIDATES {
            let Some(i) = self.candidate(weights, alias, rng) else {
                break;
            };
            let Some(t) = target else {
                best = Some(i);
                break;
            };
            let g = (score(i) - t).abs();
            if g < gap {
                gap = g;
                best = Some(i);
            }
            if g <= MATCH_TOLERANCE {
                break;
            }
        }
        if let Some(i) = best {
            self.set(i);
        }
        best
    }

    /// One unmarked movie drawn by `weights`: by rejection from the world's
    /// alias table while that is cheap, then (once the user has rated
    /// nearly all the weight) from a table over the unmarked movies only,
    /// rebuilt whenever it too is used up.
    fn candidate(
        &mut self,
        weights: &[f64],
        alias: &AliasTable,
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        const TRIES: usize = 64;
        if self.local.is_none() {
            for _ in 0..TRIES {
                let i = alias.sample(rng);
                if !self.is_set(i) {
                    return Some(i);
                }
            }
        }
        loop {
            if let Some((table, ids)) = &self.local {
                if ids.is_empty() {
                    return None;
                }
                for _ in 0..TRIES {
                    let i = ids[table.sample(rng)] as usize;
                    if !self.is_set(i) {
                        return Some(i);
                    }
                }
            }
            let ids: Vec<u32> = (0..weights.len() as u32)
                .filter(|&i| !self.is_set(i as usize))
                .collect();
            let w: Vec<f64> = ids.iter().map(|&i| weights[i as usize]).collect();
            self.local = Some((AliasTable::new(&w), ids));
        }
    }
}

impl SynthWorld {
    /// One batch rating: the world's model, then the week's drift, then
    /// the user's star habit; a uniform time in the week.
    fn batch_rating(&self, u: usize, i: usize, plan: &WeekPlan, rng: &mut ChaCha8Rng) -> Rating {
        let latent = self.score(u, i) + self.opts.noise * normal(rng);
        let stars = plan.effect.stars(to_stars(latent), self.movie_genres[i]);
        let rating = round_stars(stars, self.user_whole_stars[u]);
        let span = (plan.window.1 - plan.window.0) as u64 + 1;
        Rating {
            user_id: u as i32 + 1,
            movie_id: i as i32 + 1,
            rating: rating as f32,
            timestamp: plan.window.0 + below(rng, span) as i64,
        }
    }
}

/// A MovieLens `ratings.csv`, header included, in the given order.
pub(crate) fn write_ratings_file(path: &Path, ratings: &[Rating]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(b"userId,movieId,rating,timestamp\n")
        .map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in ratings.chunks(4096) {
        buf.clear();
        for r in chunk {
            write_rating(&mut buf, r);
        }
        out.write_all(&buf).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Deletes `batch_w<N>.csv` files left by an earlier, longer run, which a
/// later ingest would otherwise mistake for part of this one.
pub(crate) fn remove_stale_batches(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_batch = name
            .strip_prefix("batch_w")
            .and_then(|r| r.strip_suffix(".csv"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_batch {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod weekly_tests {
    use super::*;
    use crate::data::formats::{read_dir, read_ratings};
    use crate::data::{ReadOptions, SkipReport};
    use crate::progress::Silent;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// Reads a batch the way ingestion does: strict, and with `known` any
    /// rating of a movie missing from movies.csv is an error.
    fn read(path: &Path, known: Option<&HashSet<i32>>) -> Vec<Rating> {
        let mut skipped = SkipReport::default();
        read_ratings(path, ReadOptions::default(), known, &mut skipped).unwrap()
    }

    fn hist(r: &[Rating]) -> [f64; 10] {
        let mut h = [0.0; 10];
        for x in r {
            h[(x.rating * 2.0) as usize - 1] += 1.0;
        }
        h.map(|c| c / r.len() as f64)
    }

    fn mean_std(r: &[Rating]) -> (f64, f64) {
        let n = r.len() as f64;
        let m = r.iter().map(|x| f64::from(x.rating)).sum::<f64>() / n;
        let v = r
            .iter()
            .map(|x| (f64::from(x.rating) - m).powi(2))
            .sum::<f64>()
            / n;
        (m, v.sqrt())
    }

    /// Population stability index over the ten half-star levels.
    fn psi(a: &[f64; 10], b: &[f64; 10]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&p, &q)| {
                let (p, q) = (p.max(1e-4), q.max(1e-4));
                (p - q) * (p / q).ln()
            })
            .sum()
    }

    /// Two-sample Kolmogorov–Smirnov D: the largest CDF gap over the levels.
    fn ks(a: &[f64; 10], b: &[f64; 10]) -> f64 {
        let (mut ca, mut cb, mut d) = (0.0, 0.0, 0.0f64);
        for i in 0..10 {
            ca += a[i];
            cb += b[i];
            d = d.max((ca - cb).abs());
        }
        d
    }

    /// Genre shares of the ratings (each genre of a rated movie counts).
    fn genre_shares(r: &[Rating], genres: &HashMap<i32, String>) -> HashMap<String, f64> {
        let mut c: HashMap<String, f64> = HashMap::new();
        let mut total = 0.0;
        for x in r {
            for g in genres[&x.movie_id].split('|') {
                *c.entry(g.to_string()).or_default() += 1.0;
                total += 1.0;
            }
        }
        c.values_mut().for_each(|v| *v /= total);
        c
    }

    fn jensen_shannon(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
        let keys: HashSet<&String> = a.keys().chain(b.keys()).collect();
        let kl = |p: f64, m: f64| if p > 0.0 { p * (p / m).ln() } else { 0.0 };
        keys.into_iter()
            .map(|k| {
                let (p, q) = (*a.get(k).unwrap_or(&0.0), *b.get(k).unwrap_or(&0.0));
                let m = (p + q) / 2.0;
                0.5 * kl(p, m) + 0.5 * kl(q, m)
            })
            .sum()
    }

    fn movie_genres(dir: &Path) -> HashMap<i32, String> {
        read_dir(dir, ReadOptions::default())
            .unwrap()
            .movies
            .into_iter()
            .map(|m| (m.movie_id, m.genres))
            .collect()
    }

    #[test]
    fn parses_the_cli_form() {
        let kinds = parse_drift("mean:+0.4,genre:comedy:+0.3,new-movies:0.2,spread:1.5").unwrap();
        assert_eq!(
            kinds,
            vec![
                DriftKind::Mean(0.4),
                DriftKind::Genre {
                    genre: "Comedy".into(),
                    delta: 0.3
                },
                DriftKind::NewMovies(0.2),
                DriftKind::Spread(1.5),
            ]
        );
        // Display writes the CLI form back.
        let text: Vec<String> = kinds.iter().map(ToString::to_string).collect();
        assert_eq!(
            text.join(","),
            "mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5"
        );
        assert_eq!(parse_drift(&text.join(",")).unwrap(), kinds);
        assert_eq!(
            parse_drift(" Mean : -0.25 , SPREAD:0.5, new_movies:1, genre:Sci-Fi:-1").unwrap(),
            vec![
                DriftKind::Mean(-0.25),
                DriftKind::Spread(0.5),
                DriftKind::NewMovies(1.0),
                DriftKind::Genre {
                    genre: "Sci-Fi".into(),
                    delta: -1.0
                },
            ]
        );
        // Two different genres are two statistics.
        assert_eq!(
            parse_drift("genre:Drama:+0.2,genre:Horror:-0.2")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn drift_errors_name_the_bad_part() {
        for (input, needle) in [
            ("", "no drift given"),
            ("  ", "no drift given"),
            ("mean", "\"mean\": expected the form mean:DELTA"),
            ("mean:+0.4:1", "expected the form mean:DELTA"),
            (
                "mean:abc",
                "\"mean:abc\": the mean shift \"abc\" is not a number",
            ),
            ("mean:inf", "is not a number"),
            ("mean:NaN", "is not a number"),
            ("mean:+9", "between -4.5 and +4.5"),
            ("genre:Comedy", "expected the form genre:GENRE:DELTA"),
            ("genre:Cartoons:+0.3", "unknown genre \"Cartoons\""),
            ("genre:Comedy:x", "the genre shift \"x\" is not a number"),
            ("new-movies:1.5", "between 0 and 1"),
            ("new-movies:-0.1", "between 0 and 1"),
            ("spread:0", "must be above 0"),
            ("spread:-1", "must be above 0"),
            ("spread:11", "at most 10"),
            ("drift:1", "unknown drift kind \"drift\""),
            ("mean:0.1,,spread:2", "empty item between commas"),
            ("mean:0.1,", "empty item"),
            ("mean:0.1,mean:0.2", "\"mean:0.2\": repeats \"mean:+0.1\""),
            ("genre:Drama:1,genre:drama:2", "repeats \"genre:Drama:+1\""),
        ] {
            let e = parse_drift(input).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{input}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{input:?}: {msg}");
            assert!(msg.contains("expected e.g. mean:+0.4"), "{msg}");
        }
    }

    fn opts(seed: u64) -> SynthOptions {
        SynthOptions {
            seed,
            ..SynthOptions::default()
        }
    }

    #[test]
    fn rejects_impossible_weekly_options() {
        let dir = tempfile::tempdir().unwrap();
        let run = |weekly: WeeklyOptions, o: &SynthOptions| {
            generate_weekly(dir.path(), o, &weekly, &Silent)
                .unwrap_err()
                .to_string()
        };
        let spec = |week, kinds| WeeklyOptions {
            weeks: 3,
            ratings_per_week: 10,
            drift: vec![DriftSpec { week, kinds }],
        };
        let small = SynthOptions {
            users: 20,
            movies: 50,
            ratings: 500,
            ..SynthOptions::default()
        };
        let e = run(spec(4, vec![DriftKind::Mean(0.1)]), &small);
        assert!(e.contains("week 4, but weeks run from 1 to 3"), "{e}");
        let e = run(spec(0, vec![DriftKind::Mean(0.1)]), &small);
        assert!(e.contains("week 0"), "{e}");
        let e = run(spec(2, vec![DriftKind::Spread(-1.0)]), &small);
        assert!(e.contains("drift \"spread:-1\" for week 2"), "{e}");
        let e = run(
            spec(
                1,
                vec![DriftKind::Genre {
                    genre: "Westerns".into(),
                    delta: 0.1,
                }],
            ),
            &small,
        );
        assert!(e.contains("unknown genre"), "{e}");
        let mut twice = spec(2, vec![DriftKind::Mean(0.1)]);
        twice.drift.push(DriftSpec {
            week: 2,
            kinds: vec![DriftKind::Mean(0.2)],
        });
        let e = run(twice, &small);
        assert!(
            e.contains("week 2 has drift \"mean:+0.1\" and \"mean:+0.2\""),
            "{e}"
        );
        // 20 users x 50 movies = 1000 pairs, 500 in the history.
        let full = WeeklyOptions {
            weeks: 2,
            ratings_per_week: 300,
            drift: vec![],
        };
        let e = run(full, &small);
        assert!(e.contains("week 2 needs 300 more ratings"), "{e}");
        let late = SynthOptions {
            end_timestamp: i64::MAX - 10,
            ..small.clone()
        };
        let e = run(WeeklyOptions::default(), &late);
        assert!(e.contains("overflow"), "{e}");
        assert!(!dir.path().join("ratings.csv").exists());
    }

    #[test]
    fn deterministic_per_seed_and_history_is_generate_s() {
        let o = SynthOptions {
            users: 200,
            movies: 2_000,
            ratings: 20_000,
            ..SynthOptions::default()
        };
        let weekly = WeeklyOptions {
            weeks: 3,
            ratings_per_week: 2_000,
            drift: vec![DriftSpec {
                week: 2,
                kinds: parse_drift("new-movies:0.2,genre:Drama:+0.3,mean:-0.2").unwrap(),
            }],
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let plain = tempfile::tempdir().unwrap();
        let ra = generate_weekly(a.path(), &o, &weekly, &Silent).unwrap();
        // Thread count must not matter.
        let rb = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| generate_weekly(b.path(), &o, &weekly, &Silent).unwrap());
        let no_paths = |r: &WeeklyReport| {
            let mut r = r.clone();
            r.weeks.iter_mut().for_each(|w| w.path = PathBuf::new());
            r
        };
        assert_eq!(
            no_paths(&ra),
            no_paths(&rb),
            "the report must not depend on the thread count"
        );
        generate_weekly(
            c.path(),
            &SynthOptions {
                seed: 9,
                ..o.clone()
            },
            &weekly,
            &Silent,
        )
        .unwrap();
        let rp = generate(plain.path(), &o, &Silent).unwrap();
        assert_eq!(ra.history, rp);
        let files = [
            "ratings.csv",
            "movies.csv",
            "batches/batch_w1.csv",
            "batches/batch_w2.csv",
            "batches/batch_w3.csv",
        ];
        for f in files {
            let x = std::fs::read(a.path().join(f)).unwrap();
            assert_eq!(
                x,
                std::fs::read(b.path().join(f)).unwrap(),
                "{f} differs between runs"
            );
            assert_ne!(
                x,
                std::fs::read(c.path().join(f)).unwrap(),
                "{f} ignores the seed"
            );
        }
        assert_eq!(
            std::fs::read(a.path().join("ratings.csv")).unwrap(),
            std::fs::read(plain.path().join("ratings.csv")).unwrap(),
            "the history must be exactly what generate writes"
        );
        let movies = std::fs::read_to_string(a.path().join("movies.csv")).unwrap();
        let base = std::fs::read_to_string(plain.path().join("movies.csv")).unwrap();
        assert!(
            movies.starts_with(&base),
            "new movies are appended after the base catalogue"
        );
        assert_eq!(
            movies.lines().count() - base.lines().count(),
            ra.weeks[1].new_movies as usize
        );
        assert_eq!(ra.catalogue_movies, 2_000 + ra.weeks[1].new_movies);
        assert_eq!(
            ra.weeks.iter().map(|w| w.new_movies).sum::<u32>(),
            ra.weeks[1].new_movies
        );
    }

    #[test]
    fn batches_are_new_known_and_in_their_week() {
        let o = SynthOptions {
            users: 300,
            movies: 1_500,
            ratings: 40_000,
            seed: 5,
            ..SynthOptions::default()
        };
        let weekly = WeeklyOptions {
            weeks: 4,
            // Heavy enough that the heaviest raters need stand-ins.
            ratings_per_week: 20_000,
            drift: vec![
                DriftSpec {
                    week: 2,
                    kinds: vec![DriftKind::NewMovies(0.3)],
                },
                DriftSpec {
                    week: 4,
                    kinds: vec![DriftKind::NewMovies(0.1), DriftKind::Mean(0.5)],
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("batches");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("batch_w7.csv"), "left over").unwrap();
        let report = generate_weekly(dir.path(), &o, &weekly, &Silent).unwrap();
        assert!(!stale.join("batch_w7.csv").exists());

        // The history loads on its own, and every batch movie is listed.
        let ds = read_dir(dir.path(), ReadOptions::default()).unwrap();
        assert_eq!(ds.ratings.len(), 40_000);
        assert_eq!(ds.movies.len() as u32, report.catalogue_movies);
        let known: HashSet<i32> = ds.movies.iter().map(|m| m.movie_id).collect();
        let mut pairs: HashSet<(i32, i32)> =
            ds.ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
        let history_end = ds.ratings.iter().map(|r| r.timestamp).max().unwrap();
        assert!(history_end <= o.end_timestamp);
        let mut next_user = 301;
        let mut next_movie = 1_501;
        for (k, w) in report.weeks.iter().enumerate() {
            assert_eq!(w.week, k as u32 + 1);
            assert_eq!(
                w.path,
                dir.path().join(format!("batches/batch_w{}.csv", k + 1))
            );
            let batch = read(&w.path, Some(&known));
            assert_eq!(batch.len(), 20_000);
            assert_eq!(w.ratings, 20_000);
            assert_eq!(w.start, o.end_timestamp + k as i64 * WEEK_SECONDS);
            assert_eq!(w.end, w.start + WEEK_SECONDS);
            for r in &batch {
                assert!(pairs.insert((r.user_id, r.movie_id)), "repeated pair {r:?}");
                assert!(w.start <= r.timestamp && r.timestamp < w.end, "{r:?}");
                let new_user = r.user_id > 300;
                let new_movie = r.movie_id > 1_500;
                if new_user {
                    assert!((next_user..next_user + w.new_users as i32).contains(&r.user_id));
                }
                if new_movie {
                    assert!((next_movie..next_movie + w.new_movies as i32).contains(&r.movie_id));
                }
            }
            let (m, s) = mean_std(&batch);
            assert!((m - w.mean_rating).abs() < 1e-9 && (s - w.std_rating).abs() < 1e-9);
            let share = |f: &dyn Fn(&Rating) -> bool| {
                batch.iter().filter(|r| f(r)).count() as f64 / batch.len() as f64
            };
            let requested = w.drift.iter().find_map(|d| match d {
                DriftKind::NewMovies(s) => Some(*s),
                _ => None,
            });
            let want = requested.unwrap_or(0.0);
            assert_eq!(w.new_movie_ratings as f64 / 20_000.0, want);
            assert_eq!(w.new_user_ratings as f64 / 20_000.0, want);
            assert_eq!(share(&|r| r.movie_id > 1_500), want);
            assert_eq!(share(&|r| r.user_id > 300), want);
            // New users and new movies cross as if independent.
            let both = share(&|r| r.movie_id > 1_500 && r.user_id > 300);
            assert!((both - want * want).abs() < 1e-3, "{both}");
            assert_eq!(w.new_movies > 0, want > 0.0);
            next_user += w.new_users as i32;
            next_movie += w.new_movies as i32;
        }
        assert_eq!(report.weeks[0].drift, vec![]);
        assert_eq!(
            report.weeks[3].drift,
            vec![DriftKind::NewMovies(0.1), DriftKind::Mean(0.5)]
        );
    }

    #[test]
    fn clean_weeks_look_like_the_history() {
        // Seed 1 has two raters holding 6,080 and 5,645 of the 9,000
        // movies: the case that needs stand-ins.
        for seed in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let weekly = WeeklyOptions {
                weeks: 3,
                ratings_per_week: 15_000,
                drift: vec![],
            };
            let report = generate_weekly(dir.path(), &opts(seed), &weekly, &Silent).unwrap();
            let genres = movie_genres(dir.path());
            let history = read(&dir.path().join("ratings.csv"), None);
            let (hm, hs) = mean_std(&history);
            assert!((hm - report.history.mean_rating).abs() < 1e-9);
            let hh = hist(&history);
            let hg = genre_shares(&history, &genres);
            for w in &report.weeks {
                let batch = read(&w.path, None);
                let (m, s) = mean_std(&batch);
                let bh = hist(&batch);
                let (p, d) = (psi(&hh, &bh), ks(&hh, &bh));
                let js = jensen_shannon(&hg, &genre_shares(&batch, &genres));
                let what = format!(
                    "seed {seed} week {}: mean {m:.3} vs {hm:.3}, std {s:.3} vs {hs:.3}, \
                     PSI {p:.4}, KS {d:.4}, JS {js:.5}",
                    w.week
                );
                assert!((m - hm).abs() < 0.03, "{what}");
                assert!((s - hs).abs() < 0.03, "{what}");
                assert!(p < 0.02, "{what}");
                assert!(d < 0.03, "{what}");
                assert!(js < 0.002, "{what}");
            }
        }
    }

    #[test]
    fn drifted_weeks_move_what_they_should() {
        let weekly = WeeklyOptions {
            weeks: 6,
            ratings_per_week: 15_000,
            drift: vec![
                DriftSpec {
                    week: 2,
                    kinds: vec![DriftKind::Mean(0.4)],
                },
                DriftSpec {
                    week: 3,
                    kinds: vec![DriftKind::Genre {
                        genre: "Comedy".into(),
                        delta: 0.3,
                    }],
                },
                DriftSpec {
                    week: 4,
                    kinds: vec![DriftKind::NewMovies(0.2)],
                },
                DriftSpec {
                    week: 5,
                    kinds: vec![DriftKind::Spread(1.5)],
                },
                DriftSpec {
                    week: 6,
                    kinds: vec![DriftKind::Spread(0.5)],
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let report = generate_weekly(dir.path(), &opts(2), &weekly, &Silent).unwrap();
        let genres = movie_genres(dir.path());
        let history = read(&dir.path().join("ratings.csv"), None);
        let (hm, hs) = mean_std(&history);
        let hh = hist(&history);
        let hg = genre_shares(&history, &genres);
        let weeks: Vec<Vec<Rating>> = report.weeks.iter().map(|w| read(&w.path, None)).collect();
        let stats = |b: &[Rating]| {
            let (m, s) = mean_std(b);
            let h = hist(b);
            (
                m,
                s,
                psi(&hh, &h),
                ks(&hh, &h),
                jensen_shannon(&hg, &genre_shares(b, &genres)),
            )
        };
        let clean = stats(&weeks[0]);
        let show =
            |name: &str, s: (f64, f64, f64, f64, f64)| {
                format!(
                "{name}: mean {:.3} ({:+.3}), std {:.3} ({:+.3}), PSI {:.4}, KS {:.4}, JS {:.5}",
                s.0, s.0 - hm, s.1, s.1 - hs, s.2, s.3, s.4
            )
            };
        eprintln!("history: mean {hm:.3}, std {hs:.3}");
        eprintln!("{}", show("clean", clean));

        // Mean +0.4: clipping at 5 stars absorbs some of it.
        let mean = stats(&weeks[1]);
        eprintln!("{}", show("mean:+0.4", mean));
        assert!(mean.0 - hm >= 0.3, "{}", show("mean", mean));
        assert!(mean.2 > 0.05 && mean.3 > 0.1, "{}", show("mean", mean));

        // Genre: Comedy's share of ratings and its mean both rise.
        let genre = stats(&weeks[2]);
        eprintln!("{}", show("genre:Comedy:+0.3", genre));
        let comedy = |b: &[Rating]| -> (f64, f64) {
            let c: Vec<Rating> = b
                .iter()
                .filter(|r| genres[&r.movie_id].split('|').any(|g| g == "Comedy"))
                .copied()
                .collect();
            (c.len() as f64 / b.len() as f64, mean_std(&c).0)
        };
        let (h_share, h_mean) = comedy(&history);
        let (c_share, c_mean) = comedy(&weeks[0]);
        let (g_share, g_mean) = comedy(&weeks[2]);
        eprintln!(
            "  Comedy share {h_share:.3} history, {c_share:.3} clean, {g_share:.3} drifted; \
             mean {h_mean:.3}, {c_mean:.3}, {g_mean:.3}"
        );
        assert!((c_share - h_share).abs() < 0.02 && (c_mean - h_mean).abs() < 0.05);
        assert!(
            g_share > h_share + 0.1,
            "share {h_share:.3} -> {g_share:.3}"
        );
        assert!(g_mean > h_mean + 0.2, "mean {h_mean:.3} -> {g_mean:.3}");
        assert!(
            genre.4 > 20.0 * clean.4.max(1e-4),
            "{}",
            show("genre", genre)
        );

        // New movies and users: a fifth of the ratings each, unseen by the
        // history; the ratings themselves stay like the history's.
        let new = stats(&weeks[3]);
        eprintln!("{}", show("new-movies:0.2", new));
        let rated_movies: HashSet<i32> = history.iter().map(|r| r.movie_id).collect();
        let rated_users: HashSet<i32> = history.iter().map(|r| r.user_id).collect();
        let unseen = |b: &[Rating], f: &dyn Fn(&Rating) -> bool| {
            b.iter().filter(|r| f(r)).count() as f64 / b.len() as f64
        };
        let clean_unseen = unseen(&weeks[0], &|r| !rated_movies.contains(&r.movie_id));
        let new_unseen = unseen(&weeks[3], &|r| !rated_movies.contains(&r.movie_id));
        let new_users = unseen(&weeks[3], &|r| !rated_users.contains(&r.user_id));
        eprintln!(
            "  unseen-movie share {clean_unseen:.3} clean, {new_unseen:.3} drifted; \
             unseen-user share {new_users:.3}"
        );
        assert!(
            (new_unseen - clean_unseen - 0.2).abs() < 0.02,
            "{new_unseen}"
        );
        assert!((new_users - 0.2).abs() < 1e-9);
        assert_eq!(
            unseen(&weeks[0], &|r| !rated_users.contains(&r.user_id)),
            0.0
        );
        assert!(
            (new.0 - hm).abs() < 0.05 && new.2 < 0.02,
            "{}",
            show("new", new)
        );

        // Spread: the std moves, the mean (nearly) does not.
        let wide = stats(&weeks[4]);
        let narrow = stats(&weeks[5]);
        eprintln!("{}", show("spread:1.5", wide));
        eprintln!("{}", show("spread:0.5", narrow));
        assert!(wide.1 > hs + 0.2, "{}", show("wide", wide));
        assert!(narrow.1 < hs - 0.2, "{}", show("narrow", narrow));
        assert!((wide.0 - hm).abs() < 0.1 && (narrow.0 - hm).abs() < 0.1);

        for (w, kinds) in report.weeks.iter().zip([0, 1, 1, 1, 1, 1]) {
            assert_eq!(w.drift.len(), kinds);
        }
    }

    #[test]
    fn tiny_and_empty_worlds_work() {
        // Everyone has rated nearly everything: exercises the exhausted-
        // catalogue paths (local tables, stand-ins beyond the allowance).
        let o = SynthOptions {
            users: 10,
            movies: 30,
            ratings: 200,
            ..SynthOptions::default()
        };
        let weekly = WeeklyOptions {
            weeks: 2,
            ratings_per_week: 50,
            drift: vec![DriftSpec {
                week: 2,
                kinds: vec![DriftKind::NewMovies(0.5)],
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let report = generate_weekly(dir.path(), &o, &weekly, &Silent).unwrap();
        let ds = read_dir(dir.path(), ReadOptions::default()).unwrap();
        let known: HashSet<i32> = ds.movies.iter().map(|m| m.movie_id).collect();
        let mut pairs: HashSet<(i32, i32)> =
            ds.ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
        for w in &report.weeks {
            for r in read(&w.path, Some(&known)) {
                assert!(pairs.insert((r.user_id, r.movie_id)));
            }
        }
        assert_eq!(pairs.len(), 300);

        // No history at all: batches by everyone alike.
        let empty = SynthOptions { ratings: 0, ..o };
        let dir = tempfile::tempdir().unwrap();
        let report = generate_weekly(
            dir.path(),
            &empty,
            &WeeklyOptions {
                weeks: 1,
                ratings_per_week: 40,
                drift: vec![],
            },
            &Silent,
        )
        .unwrap();
        assert_eq!(read(&report.weeks[0].path, None).len(), 40);
        // No weeks: just the history.
        let report = generate_weekly(
            dir.path(),
            &o,
            &WeeklyOptions {
                weeks: 0,
                ratings_per_week: 40,
                drift: vec![],
            },
            &Silent,
        )
        .unwrap();
        assert!(report.weeks.is_empty());
    }
}
