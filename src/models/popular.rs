//! Non-personalized lists: what users nobody knows are shown. They are
//! models of a kind (fitted to counts and means rather than learned), kept
//! here so that the registry can choose among them on evidence
//! ([`crate::registry::cold_start`]) and the recommender can serve the
//! choice.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::store::MovieStats;

/// How the list of a user with nothing known is made. Measured on a
/// time-ordered replay of ml-latest-small (README, the backtest), what
/// people rated lately predicts what a newcomer rates far better than
/// all-time counts or mean ratings do, so each trained run chooses among
/// these on the latest slice of what it knows (`registry::cold_start`) and
/// records the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColdStart {
    /// The movies rated most among the latest `window` ratings known
    /// (`liked`: counting only those of [`LIKED`] stars or more).
    Trending {
        window: u64,
        #[serde(default)]
        liked: bool,
    },
    /// The movies rated most, all time (`liked`: as above).
    MostRated {
        #[serde(default)]
        liked: bool,
    },
    /// The highest damped mean rating among movies with at least
    /// [`POPULAR_MIN_COUNT`] train ratings (what CineMatch served before
    /// it chose on evidence).
    TopRated,
}

impl fmt::Display for ColdStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColdStart::Trending { window, liked } => write!(
                f,
                "trending (the latest {window} ratings{})",
                if *liked { ", 4 stars or more" } else { "" }
            ),
            ColdStart::MostRated { liked } => write!(
                f,
                "most-rated{}",
                if *liked { " (4 stars or more)" } else { "" }
            ),
            ColdStart::TopRated => f.write_str("top-rated (damped mean)"),
        }
    }
}

/// What a rating must be to count for the `liked` lists: what evaluation
/// and the backtest call relevant, so the list ranks movies by how many
/// people recently rated them that well.
pub const LIKED: f32 = 4.0;

impl ColdStart {
    /// The ratings a list counts: the latest `window` (or all), and of
    /// those the liked ones when it says so.
    pub fn counts(self) -> Option<(Option<u64>, Option<f32>)> {
        let liked = |l: bool| l.then_some(LIKED);
        match self {
            ColdStart::Trending { window, liked: l } => Some((Some(window), liked(l))),
            ColdStart::MostRated { liked: l } => Some((None, liked(l))),
            ColdStart::TopRated => None,
        }
    }
}

/// A cold-start ranking from per-movie rating counts: most counted first,
/// ties to the lower id; movies counted 0 are left out. The score is the
/// count.
pub fn by_count(counts: &[(i32, i64)]) -> Vec<(i32, f64)> {
    let mut ranked: Vec<(i32, f64)> = counts
        .iter()
        .filter(|c| c.1 > 0)
        .map(|&(id, n)| (id, n as f64))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Cold start: a movie needs this many training ratings to be listed...
pub const POPULAR_MIN_COUNT: i64 = 10;
/// ...and its mean is shrunk toward the global mean by this many pseudo-ratings,
/// so a movie with ten 5-star ratings does not outrank one with a thousand 4.6s.
pub const POPULAR_DAMPING: f64 = 25.0;

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
