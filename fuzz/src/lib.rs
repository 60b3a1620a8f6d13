//! The harness shared by CineMatch's fuzz targets.
//!
//! The MovieLens readers take paths (the layout of a file comes from its
//! name), so each input is written to a file with the name the target fuzzes
//! (`ratings.csv`, `u.item`, ...) in a per-process scratch directory, on
//! tmpfs when there is one, and read back through the library's public
//! functions, strictly and with `--skip-invalid`. The checks are the
//! readers' promises:
//!
//! * no panic (overflow checks are on in fuzz builds);
//! * every row returned passes the validation rules: positive ids, a rating
//!   in 0.5..=5.0 on the 0.5 grid, no (user, movie) pair twice, only known
//!   movies when a movie set is given; movie ids unique, titles trimmed,
//!   non-empty and within the schema's lengths;
//! * every error is an `InputError` (or, for a file whose layout is sniffed
//!   from its content, a refusal of the layout) that names the file and a
//!   line within the input's physical line count;
//! * `--skip-invalid` agrees with the strict read: a file the strict read
//!   accepts reads identically and skips nothing, and the problem a strict
//!   read stops at is among those `--skip-invalid` counts.
//!
//! [`api`] drives the real HTTP router in-process.

pub mod api;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cinematch::data::formats::{self, GENRES_MAX_CHARS, TITLE_MAX_CHARS};
use cinematch::data::{IssueKind, ReadOptions, SkipReport};
use cinematch::{Error, Movie, Rating};

/// A directory private to this process for the files under test. It is
/// created under `$CINEMATCH_FUZZ_TMP` (which `scripts/fuzz.sh` sets and
/// removes afterwards), else `/dev/shm`, else the system temp directory.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("CINEMATCH_FUZZ_TMP")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        tempfile::Builder::new()
            .prefix("cinematch-fuzz-")
            .tempdir_in(base)
            .expect("create a scratch directory")
            // libFuzzer leaves through exit(), so nothing would be dropped
            // anyway; the script removes the parent.
            .keep()
    })
}

/// Writes `data` to `name` in the scratch directory.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, data).expect("write the input file");
    path
}

/// Physical lines as an editor counts them: LF, CRLF and a lone CR each end
/// a line, and a last line without a terminator counts too.
pub fn physical_lines(data: &[u8]) -> u64 {
    let mut lines = 0;
    let mut open = false;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                lines += 1;
                open = false;
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => {
                lines += 1;
                open = false;
            }
            _ => open = true,
        }
        i += 1;
    }
    lines + u64::from(open)
}

/// Whether a reader may refuse the file's layout (`InvalidArgument`): only
/// when the layout is sniffed from the content, never for a standard name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Named,
    Sniffed,
}

/// Reads `data` as the ratings file `name`, strictly and leniently, and
/// checks every promise (see the crate docs).
pub fn check_ratings(name: &str, data: &[u8], known: Option<&HashSet<i32>>, layout: Layout) {
    let path = write_input(name, data);
    let lines = physical_lines(data);
    let read = |skip_invalid| {
        let mut skipped = SkipReport::default();
        formats::read_ratings(&path, ReadOptions { skip_invalid }, known, &mut skipped)
            .map(|rows| (rows, skipped))
    };
    let strict = read(false);
    let lenient = read(true);
    if let Ok((rows, _)) = &lenient {
        check_rating_rows(rows, known, lines);
    }
    check_outcomes(&path, lines, layout, strict, lenient);
}

/// Reads `data` as the movie file `name`, strictly and leniently, and checks
/// every promise (see the crate docs).
pub fn check_movies(name: &str, data: &[u8], layout: Layout) {
    let path = write_input(name, data);
    let lines = physical_lines(data);
    let read = |skip_invalid| {
        let mut skipped = SkipReport::default();
        formats::read_movies(&path, ReadOptions { skip_invalid }, &mut skipped)
            .map(|rows| (rows, skipped))
    };
    let strict = read(false);
    let lenient = read(true);
    if let Ok((movies, _)) = &lenient {
        check_movie_rows(movies, lines);
    }
    check_outcomes(&path, lines, layout, strict, lenient);
}

type Outcome<T> = cinematch::Result<(Vec<T>, SkipReport)>;

fn check_outcomes<T: PartialEq + std::fmt::Debug>(
    path: &Path,
    lines: u64,
    layout: Layout,
    strict: Outcome<T>,
    lenient: Outcome<T>,
) {
    match &lenient {
        Ok((_, skipped)) => check_skips(skipped, path, lines),
        Err(e) => {
            check_error(e, path, lines, layout);
            // File-level problems (line 0: empty, UTF-16) stop any read.
            if let Error::Input(ie) = e {
                assert!(
                    !ie.kind.skippable() || ie.line == 0,
                    "--skip-invalid failed on a skippable problem: {ie}"
                );
            }
        }
    }
    match strict {
        Ok((rows, skipped)) => {
            assert!(
                skipped.is_empty(),
                "a strict read skipped rows: {skipped:?}"
            );
            match lenient {
                Ok((lrows, lskipped)) => {
                    assert!(
                        lskipped.is_empty(),
                        "the strict read accepted the file, --skip-invalid skipped {lskipped:?}"
                    );
                    assert_eq!(rows, lrows, "--skip-invalid read different rows");
                }
                Err(e) => panic!("the strict read accepted the file, --skip-invalid failed: {e}"),
            }
        }
        Err(e) => {
            check_error(&e, path, lines, layout);
            let Error::Input(ie) = &e else { return };
            if !ie.kind.skippable() || ie.line == 0 {
                return;
            }
            let skipped = match &lenient {
                Ok((_, skipped)) => skipped,
                Err(le) => {
                    panic!("strict read stopped at a skippable problem ({ie}), --skip-invalid failed: {le}")
                }
            };
            assert!(
                skipped.counts.get(&ie.kind).copied().unwrap_or(0) >= 1,
                "strict read stopped at {ie}, --skip-invalid counted no {:?}: {skipped:?}",
                ie.kind
            );
            if skipped.total() as usize <= SkipReport::MAX_EXAMPLES {
                assert!(
                    skipped.examples.contains(ie),
                    "strict read stopped at {ie}, which --skip-invalid does not list: {:?}",
                    skipped.examples
                );
            }
        }
    }
}

/// Errors: an `InputError` naming the file and a line of it (0 only for
/// problems with the whole file), or a layout refusal for sniffed files.
pub fn check_error(e: &Error, path: &Path, lines: u64, layout: Layout) {
    match e {
        Error::Input(ie) => {
            assert_eq!(ie.file, path, "the error names another file: {ie}");
            assert!(
                ie.line <= lines,
                "line {} is past the input's {lines} lines: {ie}",
                ie.line
            );
            if ie.line == 0 {
                assert!(
                    matches!(ie.kind, IssueKind::EmptyFile | IssueKind::Encoding),
                    "a {:?} problem without a line: {ie}",
                    ie.kind
                );
            } else {
                assert_ne!(ie.kind, IssueKind::EmptyFile, "{ie}");
            }
            assert!(!ie.detail.is_empty(), "an error without detail: {ie}");
        }
        Error::InvalidArgument(_) if layout == Layout::Sniffed => {}
        other => panic!("unexpected error kind: {other:?}"),
    }
}

fn check_skips(skipped: &SkipReport, path: &Path, lines: u64) {
    assert!(skipped.examples.len() <= SkipReport::MAX_EXAMPLES);
    assert!(skipped.examples.len() as u64 <= skipped.total());
    assert!(skipped.counts.values().all(|&n| n > 0));
    for e in &skipped.examples {
        assert_eq!(e.file, path, "a skipped row names another file: {e}");
        assert!(e.kind.skippable(), "skipped an unskippable problem: {e}");
        assert!(
            (1..=lines).contains(&e.line),
            "skipped row's line {} is not within 1..={lines}: {e}",
            e.line
        );
        assert!(skipped.counts.get(&e.kind).copied().unwrap_or(0) >= 1);
    }
}

/// The validation rules every returned rating satisfies.
pub fn check_rating_rows(rows: &[Rating], known: Option<&HashSet<i32>>, lines: u64) {
    assert!(
        rows.len() as u64 <= lines,
        "{} ratings from {lines} lines",
        rows.len()
    );
    let mut pairs = HashSet::with_capacity(rows.len());
    for r in rows {
        assert!(r.user_id > 0, "userId not positive: {r:?}");
        assert!(r.movie_id > 0, "movieId not positive: {r:?}");
        assert!(
            (0.5..=5.0).contains(&r.rating),
            "rating outside 0.5..=5.0: {r:?}"
        );
        assert_eq!(
            (r.rating * 2.0).fract(),
            0.0,
            "rating off the 0.5 grid: {r:?}"
        );
        if let Some(known) = known {
            assert!(known.contains(&r.movie_id), "unknown movie: {r:?}");
        }
        assert!(
            pairs.insert((r.user_id, r.movie_id)),
            "(user, movie) twice: {r:?}"
        );
    }
}

/// The validation rules every returned movie satisfies.
pub fn check_movie_rows(movies: &[Movie], lines: u64) {
    assert!(
        movies.len() as u64 <= lines,
        "{} movies from {lines} lines",
        movies.len()
    );
    let mut ids = HashSet::with_capacity(movies.len());
    for m in movies {
        assert!(m.movie_id > 0, "movieId not positive: {m:?}");
        assert!(ids.insert(m.movie_id), "movieId twice: {m:?}");
        assert!(!m.title.is_empty(), "empty title: {m:?}");
        assert_eq!(m.title.trim(), m.title, "untrimmed title: {m:?}");
        assert!(m.title.chars().count() <= TITLE_MAX_CHARS, "title too long");
        assert!(!m.genres.is_empty(), "empty genres: {m:?}");
        assert!(
            m.genres.chars().count() <= GENRES_MAX_CHARS,
            "genres too long: {m:?}"
        );
        assert!(m.pca_features.is_none());
    }
}

/// The movie ids the batch target treats as the catalogue: those of the seed
/// corpora (fixtures and the ml-latest-small slice) plus 1..=100.
pub fn batch_catalogue() -> &'static HashSet<i32> {
    static IDS: OnceLock<HashSet<i32>> = OnceLock::new();
    IDS.get_or_init(|| {
        (1..=100)
            .chain([
                110, 114, 151, 157, 163, 216, 223, 231, 235, 260, 267, 296, 1193, 1309, 3952, 7789,
                182727,
            ])
            .collect()
    })
}
