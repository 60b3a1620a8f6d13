//! The pipeline's own edges (issue 18), on both backends where one is
//! involved: a retrain merges exactly what it trained on, and nothing once
//! it lost its lease.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinematch::models::{Hyperparams, SvdParams};
use cinematch::progress::Silent;
use cinematch::registry::{self, RunNotes, TrainOptions};
use cinematch::store::Store;
use cinematch::Rating;
use common::TestDb;

// --- helpers ------------------------------------------------------------------

/// `cinematch --db URL ARGS` with nothing of the test's environment that
/// would change what it does.
fn cinematch(db: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cinematch"));
    c.arg("--db").arg(db).args(args);
    for var in [
        "CINEMATCH_DB",
        "DATABASE_URL",
        "NEON_CONNECTION_STRING",
        "CINEMATCH_FAILPOINT",
        "CINEMATCH_FAILPOINT_SLEEP_MS",
        "CINEMATCH_FAILPOINT_RESUME_FILE",
        "CINEMATCH_LEASE_SECS",
        "MLFLOW_TRACKING_URI",
    ] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A `cinematch` stopped at a failpoint until [`Paused::resume`].
struct Paused {
    child: Child,
    err: Arc<Mutex<String>>,
    resume: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Paused {
    fn start(db: &str, args: &[&str], failpoint: &str) -> Paused {
        assert!(
            cfg!(feature = "failpoints"),
            "these tests need `cargo test --features failpoints` (scripts/test.sh does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let resume = dir.path().join("resume");
        let mut cmd = cinematch(db, args);
        cmd.env("CINEMATCH_FAILPOINT", failpoint)
            .env("CINEMATCH_FAILPOINT_RESUME_FILE", &resume);
        let mut child = cmd.spawn().unwrap();
        let err = common::capture_stderr(&mut child);
        let marker = format!("failpoint {failpoint} reached");
        let t = Instant::now();
        while !err.lock().unwrap().contains(&marker) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "cinematch {args:?} ended ({status}) before {failpoint}:\n{}",
                    err.lock().unwrap()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{failpoint} not reached:\n{}",
                err.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Paused {
            child,
            err,
            resume,
            _dir: dir,
        }
    }

    /// Lets it go on and waits for it: (exit code, stderr).
    fn resume(mut self) -> (i32, String) {
        std::fs::write(&self.resume, b"").unwrap();
        let status = self.child.wait().unwrap();
        // The reader thread drains what is left.
        std::thread::sleep(Duration::from_millis(50));
        let err = self.err.lock().unwrap().clone();
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one statement straight on the database (not through the store).
fn exec(db: &TestDb, sql: &str) {
    match db {
        TestDb::Pg(d) => {
            d.client().batch_execute(sql).unwrap();
        }
        TestDb::Sqlite(d) => d.conn().execute_batch(sql).unwrap(),
    }
}

/// 40 users x 30 movies and a quick SVD champion.
fn seeded(db: &TestDb) -> Box<dyn Store> {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let mut opts = TrainOptions::new(Hyperparams::Svd(SvdParams {
        factors: 4,
        epochs: 5,
        ..SvdParams::default()
    }));
    opts.mlflow = None;
    registry::train(s.as_mut(), &opts, &Silent).unwrap();
    s
}

fn ratings_of(user: i32, movies: std::ops::RangeInclusive<i32>) -> Vec<Rating> {
    movies
        .map(|m| Rating {
            user_id: user,
            movie_id: m,
            rating: 5.0,
            timestamp: 1_700_000_000 + i64::from(m),
        })
        .collect()
}

fn key(r: &Rating) -> (i32, i32, i64) {
    (r.user_id, r.movie_id, r.timestamp)
}

fn sorted_keys(rs: &[Rating]) -> Vec<(i32, i32, i64)> {
    let mut k: Vec<_> = rs.iter().map(key).collect();
    k.sort_unstable();
    k
}

fn last_run_notes(s: &mut dyn Store) -> RunNotes {
    let runs = s.model_runs().unwrap();
    RunNotes::parse(runs.last().unwrap().notes.as_deref()).unwrap()
}

// --- item 1: a retrain merges exactly what it trained on -----------------------

/// The repro without the clock: a retrain stopped after training
/// (before its commit), 15 ratings posted meanwhile for a returning user,
/// then the commit. The 5 ratings buffered before the retrain are merged,
/// and its notes say so (their batch, 5); the 15 it never trained on stay
/// in the buffer, so servers still treat that user as fresh.
fn a_retrain_merges_only_the_ratings_it_trained_on(db: TestDb) {
    let mut s = seeded(&db);
    let before = ratings_of(1001, 1..=5);
    s.append_to_batch("api_2025-01-06", &before).unwrap();
    let train_before = s.ratings(cinematch::Split::Train).unwrap().len();

    let paused = Paused::start(db.url(), &["retrain"], "retrain:before_record");
    let during = ratings_of(7, 1..=15);
    s.append_to_batch("api_2025-01-07", &during).unwrap();
    let (code, err) = paused.resume();
    assert_eq!(code, 0, "{err}");

    assert_eq!(
        sorted_keys(&s.buffer_ratings(None).unwrap()),
        sorted_keys(&during),
        "what arrived while it trained stays buffered"
    );
    let train = s.ratings(cinematch::Split::Train).unwrap();
    assert_eq!(train.len(), train_before + before.len());
    assert!(
        !train
            .iter()
            .any(|r| r.user_id == 7 && r.timestamp >= 1_700_000_000),
        "nothing it did not train on was merged"
    );
    let notes = last_run_notes(s.as_mut());
    assert_eq!(notes.buffer_ratings, Some(5));
    assert_eq!(notes.batches, Some(vec!["api_2025-01-06".to_string()]));
}

// --- item 8: a retrain that lost its lease commits nothing ---------------------

/// The pipeline lease changes hands while the retrain trains (as when it
/// was not renewed in time and another process took it over): the retrain
/// must not record, merge or promote, and says why (exit 75).
fn a_retrain_that_lost_its_lease_commits_nothing(db: TestDb) {
    let mut s = seeded(&db);
    s.append_to_batch("api_2025-01-06", &ratings_of(1001, 1..=5))
        .unwrap();
    let runs = s.model_runs().unwrap().len();
    let champion = s.champion().unwrap();

    let paused = Paused::start(db.url(), &["retrain"], "retrain:before_record");
    exec(
        &db,
        "UPDATE cinematch_leases SET holder = 'elsewhere/1/x/taken-over' WHERE name = 'pipeline'",
    );
    let (code, err) = paused.resume();
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("lease"), "{err}");
    assert_eq!(s.model_runs().unwrap().len(), runs, "nothing recorded");
    assert_eq!(s.champion().unwrap(), champion);
    assert_eq!(s.buffer_ratings(None).unwrap().len(), 5, "nothing merged");
}

on_both_backends!(
    a_retrain_merges_only_the_ratings_it_trained_on,
    a_retrain_that_lost_its_lease_commits_nothing,
);
