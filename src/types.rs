//! Plain records shared by every layer: what a rating and a movie are, and
//! the one statement of which values a rating may take.

use serde::{Deserialize, Serialize};

/// One explicit rating as MovieLens publishes it.
///
/// `rating` is kept as `f32`: MovieLens ratings are half stars, exactly
/// representable, and halving the memory matters at tens of millions of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub user_id: i32,
    pub movie_id: i32,
    pub rating: f32,
    /// Unix seconds.
    pub timestamp: i64,
}

/// One movie of a user's history as scoring reads it: what the user rated,
/// how many stars, and when. Models that weigh recent ratings more
/// ([`crate::models::HalfLife`]) need the time; everything else reads the
/// movie and the stars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rated {
    pub movie_id: i32,
    pub stars: f32,
    /// Unix seconds.
    pub timestamp: i64,
}

impl Rated {
    pub fn new(movie_id: i32, stars: f32, timestamp: i64) -> Rated {
        Rated {
            movie_id,
            stars,
            timestamp,
        }
    }
}

/// `(movieId, stars)` pairs as a history rated at time 0, for tests whose
/// models ignore time.
#[cfg(test)]
pub(crate) fn rated(pairs: &[(i32, f32)]) -> Vec<Rated> {
    pairs.iter().map(|&(m, s)| Rated::new(m, s, 0)).collect()
}

impl From<&Rating> for Rated {
    fn from(r: &Rating) -> Rated {
        Rated::new(r.movie_id, r.rating, r.timestamp)
    }
}

/// Lowest rating MovieLens allows; predictions are clipped to it.
pub const MIN_RATING: f32 = 0.5;
/// Highest rating MovieLens allows; predictions are clipped to it.
pub const MAX_RATING: f32 = 5.0;
/// MovieLens ratings are half stars; anything between is a typo or a
/// different scale, not a rating.
pub const RATING_STEP: f32 = 0.5;

/// Why a number is not a MovieLens rating. The file readers, batch
/// ingestion and `POST /api/ratings` all ask [`check_rating`], so a value
/// refused in one place is refused everywhere, in the same words. The
/// message reads after the value: `rating 5.5 is outside 0.5..5.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("is outside 0.5..5.0")]
    OutOfRange,
    #[error("is not a multiple of 0.5")]
    NotHalfStep,
}

impl RatingError {
    /// The kind of problem in a few words, for skip reports that count
    /// problems by kind.
    pub fn label(self) -> &'static str {
        match self {
            RatingError::OutOfRange => "rating outside 0.5..5.0",
            RatingError::NotHalfStep => "rating not on a 0.5 step",
        }
    }
}

/// Checks that `value` is on MovieLens's scale: within
/// [`MIN_RATING`]..=[`MAX_RATING`] and on the [`RATING_STEP`] grid. NaN is
/// out of range; callers that want "not a number" say so before asking.
#[inline]
pub fn check_rating(value: f64) -> Result<(), RatingError> {
    if !(f64::from(MIN_RATING)..=f64::from(MAX_RATING)).contains(&value) {
        return Err(RatingError::OutOfRange);
    }
    // In range, so the cast is exact for whole numbers (and avoids a libm
    // call per row: this runs once per rating of every file read).
    let steps = value / f64::from(RATING_STEP);
    if steps != (steps as i64) as f64 {
        return Err(RatingError::NotHalfStep);
    }
    Ok(())
}

/// How far ahead of the clock a rating's timestamp may be: a day covers
/// clocks that disagree and time zones written as UTC, and nothing more.
pub const MAX_TIMESTAMP_LEAD_SECS: i64 = 86_400;

/// Why a number is not a rating's timestamp (Unix seconds). The readers and
/// `POST /api/ratings` ask [`check_timestamp`], so one rule holds
/// everywhere; without it a far-future timestamp would always win the
/// "latest rating" rule and a negative one sort before every real rating.
/// The message reads after the value: `timestamp -5 is negative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("is negative (Unix seconds count from 1970)")]
    Negative,
    #[error("is more than a day ahead of the clock")]
    Future,
}

/// Checks a rating's timestamp against `now` (Unix seconds): not negative
/// and at most [`MAX_TIMESTAMP_LEAD_SECS`] ahead.
#[inline]
pub fn check_timestamp(ts: i64, now: i64) -> Result<(), TimestampError> {
    if ts < 0 {
        Err(TimestampError::Negative)
    } else if ts > now.saturating_add(MAX_TIMESTAMP_LEAD_SECS) {
        Err(TimestampError::Future)
    } else {
        Ok(())
    }
}

/// Which side of the train/test split a stored rating belongs to
/// (`ratings.data_split` in the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The literal stored in `data_split`, as the schema's CHECK constraint spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// Where a batch stands (`ingestion_metadata.status`). The spec's values are
/// 'completed', 'failed' and 'in_progress'; 'cleared' marks a batch whose
/// buffered ratings were deleted so that it may be ingested again. The
/// database stores exactly these strings, the [`Display`](std::fmt::Display)
/// and [`FromStr`](std::str::FromStr) spellings.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IngestionStatus {
    InProgress,
    Completed,
    Failed,
    Cleared,
}

/// Where a monitoring cycle stands (`pipeline_runs.status`, whose CHECK
/// allows exactly these spellings).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PipelineStatus {
    Running,
    Succeeded,
    Failed,
}

/// How one step of a cycle ended, as recorded in `pipeline_runs.steps`
/// (JSON) and printed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Skipped,
    Failed,
}

impl IngestionStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PipelineStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A rating together with the split it was assigned to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRating {
    pub rating: Rating,
    pub split: Split,
}

/// A movie row: title with year, pipe-separated genres, and the PCA genre
/// embedding that content-based fallbacks use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    pub movie_id: i32,
    pub title: String,
    /// Pipe-separated, e.g. `Adventure|Animation|Children`; MovieLens writes
    /// `(no genres listed)` for none.
    pub genres: String,
    pub pca_features: Option<Vec<f64>>,
}

#[cfg(test)]
impl Movie {
    /// A catalogue row with only an id and genres: what unit tests of genre
    /// features, filters and re-ranking need.
    pub(crate) fn with_genres(id: i32, genres: &str) -> Movie {
        Movie {
            movie_id: id,
            title: format!("Movie {id}"),
            genres: genres.to_string(),
            pca_features: None,
        }
    }
}

impl Movie {
    /// The individual genres, skipping MovieLens's "(no genres listed)" marker.
    pub fn genre_list(&self) -> impl Iterator<Item = &str> {
        self.genres
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "(no genres listed)")
    }
}

/// The genre list MovieLens uses in its modern releases (ml-latest, ml-25m).
pub const MOVIELENS_GENRES: &[&str] = &[
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rating_accepts_exactly_the_half_star_scale() {
        let grid: Vec<f64> = (1..=10).map(|i| f64::from(i) * 0.5).collect();
        for &r in &grid {
            assert_eq!(check_rating(r), Ok(()), "{r}");
        }
        for r in [0.0, 0.49, 5.01, 5.5, -1.0, 10.0, f64::NAN, f64::INFINITY] {
            assert_eq!(check_rating(r), Err(RatingError::OutOfRange), "{r}");
        }
        for r in [0.75, 3.7, 4.25, 4.50001, 4.999] {
            assert_eq!(check_rating(r), Err(RatingError::NotHalfStep), "{r}");
        }
    }

    #[test]
    fn messages_spell_the_constants() {
        let range = format!("{MIN_RATING:.1}..{MAX_RATING:.1}");
        assert_eq!(range, "0.5..5.0");
        assert!(RatingError::OutOfRange.to_string().ends_with(&range));
        assert!(RatingError::OutOfRange.label().ends_with(&range));
        let step = RATING_STEP.to_string();
        assert!(RatingError::NotHalfStep.to_string().ends_with(&step));
        assert!(RatingError::NotHalfStep.label().contains(&step));
    }

    #[test]
    fn statuses_are_spelled_as_the_schema_stores_them() {
        use IngestionStatus as I;
        for (st, text) in [
            (I::InProgress, "in_progress"),
            (I::Completed, "completed"),
            (I::Failed, "failed"),
            (I::Cleared, "cleared"),
        ] {
            assert_eq!(st.to_string(), text);
            assert_eq!(st.as_str(), text);
            assert_eq!(text.parse::<I>().unwrap(), st);
        }
        use PipelineStatus as P;
        for (st, text) in [
            (P::Running, "running"),
            (P::Succeeded, "succeeded"),
            (P::Failed, "failed"),
        ] {
            assert_eq!(st.as_str(), text);
            assert_eq!(text.parse::<P>().unwrap(), st);
        }
        for (st, text) in [
            (StepStatus::Ok, "ok"),
            (StepStatus::Skipped, "skipped"),
            (StepStatus::Failed, "failed"),
        ] {
            assert_eq!(st.as_str(), text);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{text}\""));
        }
        // Tables pad them like the strings they replaced.
        assert_eq!(format!("{:<8}|", StepStatus::Ok), "ok      |");
        assert!("Completed".parse::<I>().is_err());
        assert!("done".parse::<P>().is_err());
    }
}
