//! Getting ratings and movies in: MovieLens readers for every published
//! format, validation with errors that point at the file and line, the
//! train/test split, PCA genre features, and the synthetic generator.
//!
//! Each module has one job:
//! - [`formats`]: read a MovieLens release (CSV, DAT, ml-100k) into
//!   validated movies and ratings, naming the file and line of each problem;
//! - [`split`]: assign each rating to train or test;
//! - [`pca`]: the genre embedding stored with each movie;
//! - [`synth`]: generate a MovieLens-shaped dataset with a known ground
//!   truth, and weekly batches with injected drift;
//! - [`stream`]: replay a real release as a history and weekly batches;
//! - `writer`: the MovieLens CSV files that `synth`, `stream` and the demo
//!   write.
//!
//! This module defines the problems a row can have ([`IssueKind`],
//! [`InputError`]) and what a read returns ([`Dataset`]). It depends on
//! nothing above it: storing a dataset is `pipeline::load`'s job.

pub mod formats;
pub mod pca;
pub mod split;
pub mod stream;
pub mod synth;
pub(crate) mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::types::{Movie, Rating, RatingError};

/// What kind of problem a row has. `--skip-invalid` reports counts per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssueKind {
    /// The file has no data rows (or no bytes at all).
    EmptyFile,
    /// Bytes that are not valid text in the file's expected encoding.
    Encoding,
    /// A line that cannot be split into fields (bad quoting, garbage).
    Malformed,
    /// Fewer or more fields than the format has.
    ColumnCount,
    /// An id, rating or timestamp that is not a number.
    NotNumeric,
    /// A rating outside 0.5..=5.0.
    RatingOutOfRange,
    /// A rating inside the range but not on a 0.5 step.
    RatingNotHalfStep,
    /// The same (user, movie) pair rated twice.
    DuplicateRating,
    /// The same movieId listed twice in the movie file.
    DuplicateMovie,
    /// A rating for a movieId the catalogue does not list (the movie file
    /// of a release being loaded, the stored movies for a batch).
    UnknownMovie,
    /// A header that does not match the format.
    BadHeader,
    /// A title or genre list longer than the schema allows.
    TooLong,
    /// A timestamp before 1970 or more than a day ahead of the clock.
    TimestampOutOfRange,
}

impl IssueKind {
    /// Whether `--skip-invalid` may drop rows of this kind. File-level
    /// problems (empty file, wrong header) cannot be skipped.
    pub fn skippable(self) -> bool {
        !matches!(self, IssueKind::EmptyFile | IssueKind::BadHeader)
    }

    pub fn label(self) -> &'static str {
        match self {
            IssueKind::EmptyFile => "empty file",
            IssueKind::Encoding => "unreadable encoding",
            IssueKind::Malformed => "malformed line",
            IssueKind::ColumnCount => "wrong number of columns",
            IssueKind::NotNumeric => "non-numeric field",
            IssueKind::RatingOutOfRange => RatingError::OutOfRange.label(),
            IssueKind::RatingNotHalfStep => RatingError::NotHalfStep.label(),
            IssueKind::DuplicateRating => "duplicate (user, movie) rating",
            IssueKind::DuplicateMovie => "duplicate movieId",
            IssueKind::UnknownMovie => "rating for a movie not in the catalogue",
            IssueKind::BadHeader => "unexpected header",
            IssueKind::TooLong => "field too long for the schema",
            IssueKind::TimestampOutOfRange => "timestamp negative or in the future",
        }
    }
}

impl From<RatingError> for IssueKind {
    fn from(e: RatingError) -> Self {
        match e {
            RatingError::OutOfRange => IssueKind::RatingOutOfRange,
            RatingError::NotHalfStep => IssueKind::RatingNotHalfStep,
        }
    }
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A problem in user-supplied data, located precisely enough to fix it:
/// `ratings.csv:1042: rating 5.5 is outside 0.5..5.0`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {kind}: {detail}", file.display(), at_line(*line))]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based physical line number (0 for file-level problems).
    pub line: u64,
    pub kind: IssueKind,
    pub detail: String,
}

/// `:LINE` after the file name, nothing for a file-level problem (line 0).
fn at_line(line: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

/// How many rows of each kind `--skip-invalid` dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkipReport {
    pub counts: BTreeMap<IssueKind, u64>,
    /// The first few problems, for showing the user examples.
    pub examples: Vec<InputError>,
}

impl SkipReport {
    pub const MAX_EXAMPLES: usize = 5;

    pub fn record(&mut self, e: InputError) {
        *self.counts.entry(e.kind).or_insert(0) += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples.push(e);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// The MovieLens release layouts CineMatch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m: `ratings.csv`, `movies.csv`.
    Csv,
    /// ml-1m, ml-10m: `ratings.dat`, `movies.dat`, `::`-separated.
    Dat,
    /// ml-100k: `u.data` (tab-separated), `u.item` (pipe-separated, 19 genre flags).
    Ml100k,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "MovieLens CSV (ml-latest / ml-25m style)",
            Format::Dat => "MovieLens DAT (ml-1m / ml-10m style)",
            Format::Ml100k => "MovieLens 100k (u.data / u.item)",
        })
    }
}

/// How strictly to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Drop invalid rows (and count them) instead of failing on the first.
    pub skip_invalid: bool,
}

/// A validated MovieLens release, ready to store.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub movies: Vec<Movie>,
    pub ratings: Vec<Rating>,
    pub skipped: SkipReport,
}
