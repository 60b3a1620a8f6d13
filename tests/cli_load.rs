//! `cinematch load` as a user runs it: bad input gets an error naming the
//! file, line and problem, a non-zero exit, and leaves the database exactly
//! as it was, on both backends. `--skip-invalid` loads the rest and counts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestDb;

fn cinematch(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("CINEMATCH_DB")
        .env_remove("DATABASE_URL")
        .env_remove("NEON_CONNECTION_STRING")
        .output()
        .expect("run cinematch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MOVIES: &str = "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n2,\"American President, The (1995)\",Comedy|Drama|Romance\n3,Heat (1995),Action|Crime|Thriller\n";
const RATINGS: &str = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964981247\n2,1,5.0,964982224\n2,3,0.5,964983815\n3,2,2.0,964982931\n";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Every table's row count plus every rating (user, movie, stars x 2).
type Snapshot = (Vec<(String, i64)>, Vec<(i32, i32, u32)>);

/// A bad input case: (name, ratings file, movies file, file named in the
/// error, line, words in the message).
type BadCase = (
    &'static str,
    Vec<u8>,
    Vec<u8>,
    &'static str,
    &'static str,
    &'static str,
);

/// Every table's row count plus a fingerprint of the ratings, to prove "unchanged".
fn snapshot(db: &TestDb) -> Snapshot {
    let mut s = db.store();
    let counts = s
        .table_counts()
        .unwrap()
        .into_iter()
        .map(|t| (t.table, t.rows))
        .collect();
    let mut r: Vec<(i32, i32, u32)> = s
        .ratings(cinematch::Split::Train)
        .unwrap()
        .into_iter()
        .chain(s.ratings(cinematch::Split::Test).unwrap())
        .map(|r| (r.user_id, r.movie_id, (r.rating * 2.0) as u32))
        .collect();
    r.sort();
    (counts, r)
}

fn bad_cases() -> Vec<BadCase> {
    let r = |extra: &str| format!("{RATINGS}{extra}").into_bytes();
    vec![
        (
            "missing column",
            r("4,1,3.0\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "column",
        ),
        (
            "extra column",
            r("4,1,3.0,964982931,x\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "column",
        ),
        (
            "non-numeric user",
            r("abc,1,3.0,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "userId",
        ),
        (
            "non-numeric movie",
            r("4,x1,3.0,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "movieId",
        ),
        (
            "non-numeric rating",
            r("4,1,good,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "rating",
        ),
        (
            "rating too high",
            r("4,1,5.5,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "5.5",
        ),
        (
            "rating zero",
            r("4,1,0.0,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "0.5..5.0",
        ),
        (
            "not half step",
            r("4,1,3.3,964982931\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "0.5 step",
        ),
        (
            "duplicate pair",
            r("2,3,4.0,964983815\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "duplicate",
        ),
        (
            "unknown movie",
            r("4,99,4.0,964983815\n"),
            MOVIES.into(),
            "ratings.csv",
            ":7:",
            "99",
        ),
        (
            "empty ratings",
            Vec::new(),
            MOVIES.into(),
            "ratings.csv",
            "ratings.csv: empty file",
            "empty",
        ),
        (
            "header only",
            b"userId,movieId,rating,timestamp\n".to_vec(),
            MOVIES.into(),
            "ratings.csv",
            "ratings.csv: empty file",
            "empty",
        ),
        (
            "invalid utf-8 title",
            RATINGS.into(),
            [MOVIES.as_bytes(), b"4,Caf\xe9 (1999),Drama\n"].concat(),
            "movies.csv",
            ":5:",
            "encoding",
        ),
        (
            "utf-16 file",
            RATINGS.into(),
            [
                &[0xFFu8, 0xFE][..],
                &MOVIES
                    .encode_utf16()
                    .flat_map(|u| u.to_le_bytes())
                    .collect::<Vec<_>>(),
            ]
            .concat(),
            "movies.csv",
            "movies.csv",
            "UTF-16",
        ),
        (
            "malformed quoting",
            RATINGS.into(),
            format!("{MOVIES}4,\"Unclosed (1999),Drama\n").into_bytes(),
            "movies.csv",
            ":5:",
            "",
        ),
        (
            "duplicate movie",
            RATINGS.into(),
            format!("{MOVIES}3,Heat again (1995),Action\n").into_bytes(),
            "movies.csv",
            ":5:",
            "duplicate",
        ),
    ]
}

fn bad_input_is_refused_and_changes_nothing(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let good_r = write(tmp.path(), "good_ratings.csv", RATINGS.as_bytes());
    let good_m = write(tmp.path(), "good_movies.csv", MOVIES.as_bytes());
    let (ok, out, err) = cinematch(
        db.url(),
        &[
            "load",
            "--ratings",
            good_r.to_str().unwrap(),
            "--movies",
            good_m.to_str().unwrap(),
        ],
    );
    assert!(ok, "valid load failed: {out}{err}");
    let before = snapshot(&db);
    assert_eq!(before.1.len(), 5);

    for (name, ratings, movies, file, line, words) in bad_cases() {
        let dir = tmp.path().join(name.replace(' ', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let r = write(&dir, "ratings.csv", &ratings);
        let m = write(&dir, "movies.csv", &movies);
        // --replace: even permission to overwrite must not lose the old data.
        let (ok, _out, err) = cinematch(
            db.url(),
            &[
                "load",
                "--replace",
                "--ratings",
                r.to_str().unwrap(),
                "--movies",
                m.to_str().unwrap(),
            ],
        );
        assert!(!ok, "{name}: bad input was accepted");
        assert!(
            err.contains(file),
            "{name}: error does not name {file}: {err}"
        );
        assert!(
            err.contains(line),
            "{name}: error does not name line {line}: {err}"
        );
        assert!(
            err.to_lowercase().contains(&words.to_lowercase()),
            "{name}: error does not say {words:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(snapshot(&db), before, "{name}: the database changed");
    }
}

fn skip_invalid_loads_the_rest_and_counts(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let ratings =
        format!("{RATINGS}4,1,5.5,1\n4,2,3.3,1\n4,99,4.0,1\nabc,1,3.0,1\n4,3,4.0,1\n2,3,4.0,1\n");
    let r = write(tmp.path(), "ratings.csv", ratings.as_bytes());
    let m = write(tmp.path(), "movies.csv", MOVIES.as_bytes());
    let (ok, out, err) = cinematch(
        db.url(),
        &[
            "load",
            "--skip-invalid",
            "--ratings",
            r.to_str().unwrap(),
            "--movies",
            m.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    // 5 good + 1 valid (4,3) = 6 stored; 5 skipped, one of each kind.
    assert_eq!(snapshot(&db).1.len(), 6);
    assert!(out.contains("skipped 5 invalid rows"), "{out}");
    for kind in [
        "rating outside 0.5..5.0",
        "rating not on a 0.5 step",
        "rating for a movie not in the catalogue",
        "non-numeric field",
        "duplicate (user, movie) rating",
    ] {
        assert!(
            out.contains(&format!("1  {kind}")),
            "missing count for {kind}: {out}"
        );
    }
}

fn loading_a_directory_twice_is_refused(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "ratings.csv", RATINGS.as_bytes());
    write(tmp.path(), "movies.csv", MOVIES.as_bytes());
    let dir = tmp.path().to_str().unwrap();
    assert!(cinematch(db.url(), &["load", dir]).0);
    let before = snapshot(&db);
    let (ok, _, err) = cinematch(db.url(), &["load", dir]);
    assert!(!ok);
    assert!(err.contains("--replace"), "{err}");
    assert!(
        err.contains("loading again would double it. Pass --replace to replace it."),
        "{err}"
    );
    assert_eq!(snapshot(&db), before);
    let (ok, out, err) = cinematch(db.url(), &["load", "--replace", dir]);
    assert!(ok, "{err}");
    assert!(out.contains("replacing"), "{out}");
    assert_eq!(
        snapshot(&db),
        before,
        "replace with the same data gives the same rows"
    );
}

/// The library's error names no command; the CLI adds where to look.
fn an_unknown_model_version_points_at_the_list(db: TestDb) {
    let (ok, _, err) = cinematch(db.url(), &["models", "promote", "run_nope_v9"]);
    assert!(!ok);
    assert!(
        err.contains("no stored model \"run_nope_v9\"; `cinematch models list` shows the versions"),
        "{err}"
    );
}

on_both_backends!(
    bad_input_is_refused_and_changes_nothing,
    skip_invalid_loads_the_rest_and_counts,
    loading_a_directory_twice_is_refused,
    an_unknown_model_version_points_at_the_list,
);
