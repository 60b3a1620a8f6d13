//! The readers through their public API: `issues` holds one test per
//! [`IssueKind`] and the `--skip-invalid` counts, `layouts` each release
//! layout, detection, and the real releases in `../shared/data`.

mod issues;
mod layouts;

use std::path::{Path, PathBuf};

use super::{detect_format, read_dir, read_files, read_movies, read_ratings, TITLE_MAX_CHARS};
use crate::data::{Format, InputError, IssueKind, ReadOptions, SkipReport};
use crate::types::Rating;

const R_HEAD: &str = "userId,movieId,rating,timestamp\n";
const M_HEAD: &str = "movieId,title,genres\n";

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn strict() -> ReadOptions {
    ReadOptions::default()
}

fn lenient() -> ReadOptions {
    ReadOptions { skip_invalid: true }
}

fn input_err<T: std::fmt::Debug>(r: crate::Result<T>) -> InputError {
    match r {
        Err(crate::Error::Input(e)) => e,
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// Asserts kind and line, and that the message names the file.
fn check(e: &InputError, kind: IssueKind, line: u64, file: &str) {
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.line, line, "{e}");
    let msg = crate::Error::Input(e.clone()).to_string();
    assert!(msg.contains(file), "message {msg:?} should name {file}");
    if line == 0 {
        // A file-level problem names no line: "ratings.csv: empty file: ...".
        assert!(msg.contains(&format!("{file}: ")), "{msg}");
    } else {
        assert!(msg.contains(&format!(":{line}:")), "{msg}");
    }
}

fn ratings_file(content: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ratings.csv", content);
    (dir, p)
}

fn strict_ratings_err(content: impl AsRef<[u8]>) -> InputError {
    let (_dir, p) = ratings_file(content);
    input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()))
}

fn strict_movies_err(content: impl AsRef<[u8]>) -> InputError {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "movies.csv", content);
    input_err(read_movies(&p, strict(), &mut SkipReport::default()))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/movielens")
}

fn shared_data() -> PathBuf {
    let p = crate::test_shared::shared_dir().join("data");
    assert!(
        p.is_dir(),
        "MovieLens sample data not found at {}; it must hold ml-latest-small/ and ml-25m-movies/",
        p.display()
    );
    p
}

fn r(user_id: i32, movie_id: i32, rating: f32, timestamp: i64) -> Rating {
    Rating {
        user_id,
        movie_id,
        rating,
        timestamp,
    }
}
