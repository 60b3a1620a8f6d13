//! The generative model: every user's and movie's parameters, the
//! constants that make its histogram look like MovieLens, and how one
//! user's ratings are drawn from it.

use rand_chacha::ChaCha8Rng;

use super::random::{
    allocate_counts, below, domain, draw_genres, normal, rng_for, unit, AliasTable,
};
use super::SynthOptions;
use crate::types::{Movie, Rating, MAX_RATING, MIN_RATING, MOVIELENS_GENRES};
use crate::{Error, Result};

// Model constants. Chosen (and checked by the tests) so the rating histogram
// resembles ml-latest-small's and the bias/interaction/noise split resembles
// what factorization models find in MovieLens.

/// The continuous rating of a neutral user for a neutral movie, before the
/// skewing transform; tuned so the mean of rounded ratings lands near 3.5.
const BASE_RATING: f64 = 3.69;
/// How much raters differ in generosity.
pub(super) const USER_BIAS_SD: f64 = 0.5;
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
pub(super) const WHOLE_STAR_USERS: f64 = 0.2;
/// Popularity weight of the movie at rank r (0-based): 1 / (r + offset)^exp.
pub(super) const ZIPF_OFFSET: f64 = 10.0;
const ZIPF_EXPONENT: f64 = 1.0;
/// Share of users who rate everything in one sitting.
const SESSION_USERS: f64 = 0.35;
/// Mean age of a movie (years before the end of the rating period).
const MEAN_MOVIE_AGE_YEARS: f64 = 15.0;

/// Typical rating offsets by genre (Film-Noir and documentaries are rated
/// well, horror poorly), in [`MOVIELENS_GENRES`] order.
const GENRE_BIAS: [f64; 19] = [
    -0.10, 0.0, 0.10, -0.15, -0.10, 0.15, 0.30, 0.15, 0.0, 0.40, -0.35, 0.10, 0.05, 0.10, 0.0,
    -0.05, -0.05, 0.30, 0.05,
];

/// 2003-02-12: MovieLens introduced half stars; users active before then
/// rate in whole stars, which is why whole stars dominate the real histogram.
const HALF_STARS_FROM: i64 = 1_045_008_000;

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
    pub(super) opts: SynthOptions,
    pub(super) factors: usize,
    /// Per-coordinate standard deviation of latent vectors.
    pub(super) factor_sd: f64,
    /// Taste direction of each genre, in [`MOVIELENS_GENRES`] order; kept so
    /// movies added later (weekly batches) share the genre structure.
    pub(super) genre_vecs: Vec<Vec<f64>>,
    /// Popularity rank of each base movie (0 = most popular).
    pub(super) movie_rank: Vec<u32>,
    // Movies, by index (movie_id = index + 1).
    pub(super) movie_bias: Vec<f32>,
    pub(super) movie_factors: Vec<f32>,
    /// Bit j set = genre `MOVIELENS_GENRES[j]`.
    pub(super) movie_genres: Vec<u32>,
    pub(super) movie_year: Vec<u16>,
    /// Unnormalised popularity, for sampling which movies users rate.
    pub(super) popularity: Vec<f64>,
    pub(super) alias: AliasTable,
    // Users, by index (user_id = index + 1).
    pub(super) user_bias: Vec<f32>,
    pub(super) user_factors: Vec<f32>,
    pub(super) user_count: Vec<u32>,
    pub(super) user_period: Vec<(i64, i64)>,
    pub(super) user_whole_stars: Vec<bool>,
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
    pub(super) fn score(&self, u: usize, i: usize) -> f64 {
        let k = self.factors;
        let p = &self.user_factors[u * k..(u + 1) * k];
        let q = &self.movie_factors[i * k..(i + 1) * k];
        let dot: f32 = p.iter().zip(q).map(|(a, b)| a * b).sum();
        f64::from(self.user_bias[u]) + f64::from(self.movie_bias[i]) + f64::from(dot)
    }

    /// Appends user `u`'s `count` ratings to `out`.
    pub(super) fn fill_user(
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
pub(super) struct Scratch {
    picks: Vec<u32>,
    stamp: Vec<u32>,
    epoch: u32,
    keys: Vec<(f64, u32)>,
}

/// Maps a latent score to the star scale: concave, so the top is
/// compressed against 5 stars and low scores spread into a long left tail.
pub(super) fn to_stars(latent: f64) -> f64 {
    // Beyond the vertex the parabola would turn down; hold it flat there.
    let x = latent.min(1.0 / (2.0 * CURVATURE));
    BASE_RATING + x - CURVATURE * x * x
}

/// Rounds a continuous rating the way the user rates: whole stars (1 to 5)
/// or half stars (0.5 to 5), within the scale MovieLens allows.
pub(super) fn round_stars(stars: f64, whole: bool) -> f64 {
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
pub(super) fn draw_movie(
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

/// Calendar year of a unix timestamp, to within a day: good enough for titles.
pub(super) fn year_of(ts: i64) -> i64 {
    1970 + ts.div_euclid(31_556_952)
}
