//! MovieLens readers for every published layout (CSV, `::`-separated DAT,
//! and ml-100k's `u.data`/`u.item`), with row validation that names the file
//! and the physical line of each problem.
//!
//! Ratings files reach tens of millions of rows, so the rating path parses
//! numbers straight from bytes and never allocates per row. Movie files are
//! small; they favour clear errors over speed.
//!
//! A read goes through these files in order:
//! - `detect`: which release a directory holds, and each file's layout
//!   (from its name, else from its first line);
//! - `source`: opening a file, refusing UTF-16, dropping a BOM and turning
//!   every line ending into LF so line numbers match an editor's;
//! - `csv_file` and `lines`: splitting rows, for CSV (quoted fields, a
//!   header) and for the separator-based `.dat`, `u.data` and `u.item`;
//! - `fields`: turning one row's fields into a rating or movie fields, with
//!   the problem named when a field is wrong;
//! - `sinks`: collecting rows, applying `--skip-invalid`, and catching what
//!   needs more than one row (duplicates, movies the movie file lacks).

mod csv_file;
mod detect;
mod fields;
mod layout;
mod lines;
mod sinks;
mod source;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use super::{Dataset, Format, InputError, IssueKind, ReadOptions, SkipReport};
use crate::types::{Movie, Rating};
use csv_file::{movies_csv, ratings_csv};
pub use detect::detect_format;
use detect::{layout_from_content, layout_from_name};
use layout::Layout;
use lines::{movies_lines, ratings_lines};
use sinks::{Issues, MovieFilter, MovieSink, RatingSink};
use source::Source;

/// `movies.title` is VARCHAR(500): longer titles would fail at insert time,
/// far from the line that caused them.
pub const TITLE_MAX_CHARS: usize = 500;
/// `movies.genres` is VARCHAR(200), for the same reason.
pub const GENRES_MAX_CHARS: usize = 200;

/// What MovieLens writes for a movie without genres; also what we store when
/// a source gives none, so every backend sees one spelling.
pub const NO_GENRES: &str = "(no genres listed)";

/// One call for the common case: a release directory in, validated data out.
pub fn read_dir(dir: &Path, opts: ReadOptions) -> crate::Result<Dataset> {
    let (format, ratings, movies) = detect_format(dir)?;
    tracing::debug!(dir = %dir.display(), %format, "reading MovieLens release");
    let (r_layout, m_layout) = match format {
        Format::Csv => (Layout::Csv, Layout::Csv),
        Format::Dat => (Layout::Dat, Layout::Dat),
        Format::Ml100k => (Layout::Tab, Layout::Item),
    };
    read_pair(&ratings, Some(r_layout), &movies, Some(m_layout), opts)
}

/// For files that do not sit in a standard release directory (renamed
/// exports, a subset cut for testing). Each file's layout comes from its name
/// (`u.data`/`.tsv` tab, `.dat` `::`, `.csv` comma, `u.item` pipe) or, for an
/// unknown name, from its first line. Ratings for movies the movie file does
/// not list are `UnknownMovie` issues, so the store never holds orphans.
pub fn read_files(ratings: &Path, movies: &Path, opts: ReadOptions) -> crate::Result<Dataset> {
    read_pair(ratings, None, movies, None, opts)
}

/// Movies alone, for refreshing titles and genres without touching ratings.
pub fn read_movies(
    path: &Path,
    opts: ReadOptions,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Movie>> {
    read_movies_as(path, None, opts, skipped)
}

/// Ratings alone: the initial load and the weekly batch files share this, so
/// a batch is held to the same rules as the original release. With
/// `known_movies`, ratings of unlisted movies are `UnknownMovie` issues.
/// A repeated (user, movie) pair is a `DuplicateRating` on the later line.
pub fn read_ratings(
    path: &Path,
    opts: ReadOptions,
    known_movies: Option<&HashSet<i32>>,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Rating>> {
    let filter = known_movies.map(MovieFilter::from_set);
    read_ratings_as(path, None, opts, filter.as_ref(), skipped)
}

fn read_pair(
    ratings: &Path,
    r_layout: Option<Layout>,
    movies: &Path,
    m_layout: Option<Layout>,
    opts: ReadOptions,
) -> crate::Result<Dataset> {
    let mut skipped = SkipReport::default();
    let movies_v = read_movies_as(movies, m_layout, opts, &mut skipped)?;
    let filter = MovieFilter::from_ids(movies_v.iter().map(|m| m.movie_id));
    let ratings_v = read_ratings_as(ratings, r_layout, opts, Some(&filter), &mut skipped)?;
    Ok(Dataset {
        movies: movies_v,
        ratings: ratings_v,
        skipped,
    })
}

fn read_movies_as(
    path: &Path,
    layout: Option<Layout>,
    opts: ReadOptions,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Movie>> {
    let start = Instant::now();
    let src = Source::open(path)?;
    let layout = layout
        .or_else(|| layout_from_name(path))
        .unwrap_or_else(|| layout_from_content(&src.head));
    let mut sink = MovieSink::new(Issues::new(path, opts, skipped));
    let rows = match layout {
        Layout::Csv => movies_csv(src, &mut sink)?,
        Layout::Dat | Layout::Item => movies_lines(src, layout, &mut sink)?,
        Layout::Tab => {
            return Err(crate::Error::InvalidArgument(format!(
                "{} is tab-separated like a u.data ratings file; a movie file must be \
                 movies.csv, movies.dat or u.item",
                path.display()
            )))
        }
    };
    if rows == 0 {
        return Err(empty_file(path));
    }
    if sink.rejoined > 0 {
        tracing::debug!(
            file = %path.display(),
            rows = sink.rejoined,
            "rejoined titles with unquoted commas"
        );
    }
    tracing::debug!(
        file = %path.display(),
        movies = sink.out.len(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "read movies"
    );
    Ok(sink.out)
}

fn read_ratings_as(
    path: &Path,
    layout: Option<Layout>,
    opts: ReadOptions,
    known: Option<&MovieFilter<'_>>,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Rating>> {
    let start = Instant::now();
    let src = Source::open(path)?;
    let layout = layout
        .or_else(|| layout_from_name(path))
        .unwrap_or_else(|| layout_from_content(&src.head));
    // Roughly 20 bytes per row in every release; reserving up front avoids
    // copying a multi-gigabyte vector while it grows. Untouched capacity
    // costs no physical memory.
    let capacity = ((src.len / 20) as usize).min(1 << 26);
    let mut sink = RatingSink::new(Issues::new(path, opts, skipped), known, capacity);
    let rows = match layout {
        Layout::Csv => ratings_csv(src, &mut sink)?,
        Layout::Dat | Layout::Tab => ratings_lines(src, layout, &mut sink)?,
        Layout::Item => {
            return Err(crate::Error::InvalidArgument(format!(
                "{} looks like a u.item movie list, not a ratings file",
                path.display()
            )))
        }
    };
    if rows == 0 {
        return Err(empty_file(path));
    }
    let out = sink.finish()?;
    tracing::debug!(
        file = %path.display(),
        ratings = out.len(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "read ratings"
    );
    Ok(out)
}

fn empty_file(path: &Path) -> crate::Error {
    let bytes = std::fs::metadata(path).map_or(1, |m| m.len());
    InputError {
        file: path.to_path_buf(),
        line: 0,
        kind: IssueKind::EmptyFile,
        detail: if bytes == 0 {
            "the file is empty (0 bytes)".into()
        } else {
            "the file has no data rows (at most a header)".into()
        },
    }
    .into()
}
