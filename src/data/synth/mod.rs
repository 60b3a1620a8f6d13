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
//!
//! The files, in the order a dataset is made:
//! - `world`: the generative model (users' and movies' parameters, the
//!   constants that shape the histogram) and how one user's ratings are drawn;
//! - `random`: the independent random streams and the weighted draws the
//!   model is built from;
//! - `history`: [`generate`], the base `ratings.csv` and `movies.csv`;
//! - `drift`: the changes a week can carry ([`DriftKind`]), their CLI form
//!   ([`parse_drift`]) and their effect on a rating;
//! - `plan`: the weekly plan, deciding before any rating is drawn who rates
//!   how much each week and which movies and users are new;
//! - `weekly`: [`generate_weekly`], drawing and writing the batches.

mod drift;
mod history;
mod plan;
mod random;
mod shape;
#[cfg(test)]
mod tests;
mod week;
mod weekly;
mod world;

pub use drift::{parse_drift, DriftKind, DriftSpec, GENRE_BOOST};
pub use history::generate;
pub use week::{WeeklyOptions, WEEK_SECONDS};
pub use weekly::{generate_weekly, WeekReport, WeeklyReport};
pub use world::{SynthWorld, BASE_STREAM};

/// 1996-01-01T00:00:00Z, where ml-latest-small's ratings begin.
pub const ML_SMALL_START: i64 = 820_454_400;
/// 2018-09-30T00:00:00Z, roughly where ml-latest-small's ratings end.
pub const ML_SMALL_END: i64 = 1_538_265_600;

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
