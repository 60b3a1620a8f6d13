//! Loading a MovieLens release into a store: read and validate, split,
//! compute PCA genre features, then write everything in one transaction.
//!
//! It lives in the pipeline, not in `data`, because it is where reading
//! meets the store: `data` reads and shapes data and depends on nothing
//! above it.

use std::path::PathBuf;
use std::time::Instant;

use crate::data::formats;
use crate::data::pca::{fit_genre_pca, PcaReport};
use crate::data::split::{assign_splits, SplitOptions};
use crate::data::{ReadOptions, SkipReport};
use crate::progress::Progress;
use crate::store::{LoadSummary, Store};
use crate::Result;

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A MovieLens release directory; the format is detected.
    Dir(PathBuf),
    /// Explicit files (`--ratings`, `--movies`).
    Files { ratings: PathBuf, movies: PathBuf },
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub read: ReadOptions,
    pub split: SplitOptions,
    pub replace: bool,
}

/// Everything a user wants to know after a load.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub summary: LoadSummary,
    pub skipped: SkipReport,
    pub pca: PcaReport,
    pub read_secs: f64,
    pub write_secs: f64,
}

/// Reads, validates, splits and stores a dataset. Nothing is written unless
/// the whole input is valid (or `skip_invalid` dropped the invalid rows), and
/// the write itself is one transaction.
pub fn load(
    store: &mut dyn Store,
    source: &Source,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    let t0 = Instant::now();
    progress.stage("reading", None);
    let dataset = match source {
        Source::Dir(dir) => formats::read_dir(dir, opts.read),
        Source::Files { ratings, movies } => formats::read_files(ratings, movies, opts.read),
    };
    progress.finish();
    let mut dataset = dataset?;
    let splits = assign_splits(&dataset.ratings, &opts.split)?;
    let pca = fit_genre_pca(&mut dataset.movies);
    let read_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    crate::failpoint::hit("load:before_write");
    let summary = store.load_dataset(
        &dataset.movies,
        &dataset.ratings,
        &splits,
        opts.replace,
        progress,
    )?;
    crate::failpoint::hit("load:after_commit");
    Ok(LoadReport {
        summary,
        skipped: dataset.skipped,
        pca,
        read_secs,
        write_secs: t1.elapsed().as_secs_f64(),
    })
}
