//! Faults: nothing lost.
//!
//! The real `cinematch` binary, run as a child process, is killed with
//! SIGKILL in the middle of `load`, `ingest`, `retrain` and `buffer merge`:
//! at named failpoints (`src/failpoint.rs`: the process reports the point
//! and pauses there) and at random moments on larger synthetic data.
//! PostgreSQL is stopped under a running pipeline cycle, two cycles run at
//! once, and the HTTP API takes ratings from several clients while
//! retraining merges the buffer. After every fault the invariants are
//! checked: no partial dataset or batch, no rating lost or doubled, and an
//! audit trail (`ingestion_metadata`, `pipeline_runs`) that tells the truth.
//!
//! PostgreSQL tests use `CINEMATCH_TEST_PG` like every suite; the restart
//! test needs a cluster of its own that it may stop
//! (`CINEMATCH_TEST_PG_FAULTS_URL`, `_STOP`, `_START`, set by
//! `scripts/test.sh`). `CINEMATCH_FAULTS_API_RATINGS` sizes the API test
//! (60,000 by default; `scripts/bench/faults_1m.sh` runs 1,000,000).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cinematch::store::{self, Ingestion, Store};
use cinematch::{IngestionStatus, PipelineStatus, Rating, Split};
use common::{PgDb, SqliteDb, TestDb};
use rand::{Rng, SeedableRng};

// --- the binary as a child process ------------------------------------------

/// How long any single step may take before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

fn cinematch(db: &str, args: &[&str]) -> Command {
    common::cinematch_command(db, args)
}

/// A running `cinematch` whose output is collected as it comes.
struct Proc {
    child: Child,
    what: String,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.success()
    }
}

fn pump(from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let what = format!(
            "cinematch {}",
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), out.clone()),
            pump(child.stderr.take().unwrap(), err.clone()),
        ];
        Proc {
            child,
            what,
            out,
            err,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Waits until the process writes `needle` on stderr; panics if it
    /// exits first or takes longer than [`STEP_TIMEOUT`].
    fn wait_for(&mut self, needle: &str) {
        let t = Instant::now();
        loop {
            if self.err.lock().unwrap().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                if self.err.lock().unwrap().contains(needle) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.out.lock().unwrap(),
                    self.stderr()
                );
            }
            assert!(
                t.elapsed() < STEP_TIMEOUT,
                "{} did not print {needle:?} within {STEP_TIMEOUT:?}\nstderr:\n{}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `kill -9`: SIGKILL, nothing to clean up.
    fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        assert_eq!(
            status.signal(),
            Some(9),
            "{} was not killed by SIGKILL but ended with {status}\nstderr:\n{}",
            self.what,
            self.stderr()
        );
        self.stderr()
    }

    /// SIGKILL, unless the process has just ended on its own (successfully);
    /// whether it was killed.
    fn kill9_unless_done(mut self) -> bool {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        if status.signal() == Some(9) {
            return true;
        }
        assert!(
            status.success(),
            "{} failed ({status}):\n{}",
            self.what,
            self.stderr()
        );
        false
    }

    /// Sends a signal by name (`STOP`, `CONT`), as `kill -STOP` does.
    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.what);
    }

    /// Whether the process has ended on its own.
    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn finish(mut self) -> Outcome {
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > STEP_TIMEOUT {
                let _ = self.child.kill();
                panic!(
                    "{} did not finish within {STEP_TIMEOUT:?}\nstderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Outcome {
            status,
            stdout: self.out.lock().unwrap().clone(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(db: &str, args: &[&str]) -> Outcome {
    Proc::spawn(cinematch(db, args)).finish()
}

fn run_ok(db: &str, args: &[&str]) -> Outcome {
    let o = run(db, args);
    assert!(
        o.ok(),
        "cinematch {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

/// Arms `failpoint` in `cmd`. Only a binary built with the `failpoints`
/// feature has them (the test binary and `cinematch` are built with the
/// same features): without it the test would wait for a marker that never
/// comes, so it fails at once and says how to build.
fn arm<'a>(cmd: &'a mut Command, failpoint: &str) -> &'a mut Command {
    if !cfg!(feature = "failpoints") {
        panic!(
            "tests/faults.rs needs failpoints in the binary: \
             `cargo test --features failpoints` (scripts/test.sh does this)"
        );
    }
    cmd.env("CINEMATCH_FAILPOINT", failpoint)
}

/// Starts `cinematch ARGS` with a failpoint armed.
fn spawn_at(db: &str, args: &[&str], failpoint: &str, resume_after_ms: Option<u64>) -> Proc {
    let mut cmd = cinematch(db, args);
    arm(&mut cmd, failpoint);
    if let Some(ms) = resume_after_ms {
        cmd.env("CINEMATCH_FAILPOINT_SLEEP_MS", ms.to_string());
    }
    Proc::spawn(cmd)
}

fn marker(failpoint: &str) -> String {
    let name = failpoint.split('#').next().unwrap();
    format!("failpoint {name} reached")
}

/// Runs `cinematch ARGS` until it reaches `failpoint`, then kills it with SIGKILL.
fn kill_at(db: &str, args: &[&str], failpoint: &str) {
    let mut p = spawn_at(db, args, failpoint, None);
    p.wait_for(&marker(failpoint));
    p.kill9();
}

// --- test data --------------------------------------------------------------

struct Data {
    /// 30,000 ratings of 600 movies; batches w1, w2 (3,000 each, clean) and
    /// w3 (drifted: everyone rates higher, Comedy most).
    small: PathBuf,
    /// 120,000 ratings of 2,000 movies and one batch of 40,000.
    big: PathBuf,
}

impl Data {
    fn batch(&self, n: u32) -> String {
        path_str(&self.small.join(format!("batches/batch_w{n}.csv")))
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// The two data sets as `cinematch data synth` arguments: `small`, then `big`.
const SMALL_SYNTH: &[&str] = &[
    "--users",
    "400",
    "--movies",
    "600",
    "--ratings",
    "30000",
    "--weeks",
    "3",
    "--weekly-ratings",
    "3000",
    "--drift-week",
    "3",
    "--drift",
    "mean:+0.6,genre:Comedy:+0.5",
];
const BIG_SYNTH: &[&str] = &[
    "--users",
    "2000",
    "--movies",
    "2000",
    "--ratings",
    "120000",
    "--weeks",
    "1",
    "--weekly-ratings",
    "40000",
    "--seed",
    "7",
];

/// Runs `cinematch data synth --out OUT ARGS`.
fn synth(out: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args(["-q", "data", "synth", "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "data synth {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under `dir` (relative path and content), in path order.
fn hash_tree(dir: &Path, h: &mut impl std::hash::Hasher) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        std::hash::Hash::hash(p.file_name().unwrap().as_encoded_bytes(), h);
        if p.is_dir() {
            hash_tree(&p, h);
        } else {
            std::hash::Hash::hash(&std::fs::read(&p).unwrap(), h);
        }
    }
}

/// The key of the cached data: the generator's arguments and what this
/// build's generator writes for the same options at a tiny size. A changed
/// generator writes a different probe, so it never meets data an older
/// one wrote.
fn data_key() -> String {
    use std::hash::Hasher;
    let probe = tempfile::tempdir().unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, args) in [("small", SMALL_SYNTH), ("big", BIG_SYNTH)] {
        std::hash::Hash::hash(args, &mut h);
        // The same options with the sizes cut down.
        let tiny: Vec<&str> = args
            .chunks(2)
            .flat_map(|kv| match kv[0] {
                "--users" => [kv[0], "40"],
                "--movies" => [kv[0], "60"],
                "--ratings" => [kv[0], "600"],
                "--weekly-ratings" => [kv[0], "40"],
                _ => [kv[0], kv[1]],
            })
            .collect();
        synth(&probe.path().join(name), &tiny);
    }
    hash_tree(probe.path(), &mut h);
    format!("{:016x}", h.finish())
}

/// Synthetic MovieLens data, written by `cinematch data synth` (the
/// generator is seeded, so every run sees the same files) and kept in
/// `target/` under a key of the generator's arguments and output
/// ([`data_key`]).
fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let tmpdir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let root = tmpdir.join(format!("faults-data-{}", data_key()));
        let small = root.join("small");
        let big = root.join("big");
        if !root.join("done").exists() {
            let tmp = tmpdir.join(format!("faults-data-tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            synth(&tmp.join("small"), SMALL_SYNTH);
            synth(&tmp.join("big"), BIG_SYNTH);
            std::fs::write(tmp.join("done"), b"").unwrap();
            // Another test process may have won the race; either copy is the same.
            if std::fs::rename(&tmp, &root).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        assert!(
            root.join("done").exists(),
            "test data in {}",
            root.display()
        );
        Data { small, big }
    })
}

/// A rating as compared here: (user, movie, timestamp, stars x 2).
type Key = (i32, i32, i64, u8);

fn key(r: &Rating) -> Key {
    (
        r.user_id,
        r.movie_id,
        r.timestamp,
        (r.rating * 2.0).round() as u8,
    )
}

fn keys(ratings: &[Rating]) -> Vec<Key> {
    let mut k: Vec<Key> = ratings.iter().map(key).collect();
    k.sort_unstable();
    k
}

fn union(a: &[Key], b: &[Key]) -> Vec<Key> {
    let mut u = [a, b].concat();
    u.sort_unstable();
    u
}

/// The ratings of a CSV file `data synth` wrote.
fn file_keys(path: &str) -> Vec<Key> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut k: Vec<Key> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let stars: f64 = f[2].parse().unwrap();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[3].parse().unwrap(),
                (stars * 2.0).round() as u8,
            )
        })
        .collect();
    k.sort_unstable();
    k
}

fn data_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .count()
}

// --- the database as the invariants see it ----------------------------------

/// batch id -> (status, record_count, rows in the buffer)
type Batches = BTreeMap<String, (Option<String>, Option<i64>, i64)>;

/// Everything the invariants talk about.
#[derive(Debug, Clone, PartialEq)]
struct Snap {
    train: Vec<Key>,
    test: Vec<Key>,
    buffer: Vec<Key>,
    movies: usize,
    model_runs: usize,
    champion: Option<String>,
    batches: Batches,
}

fn open(url: &str) -> Box<dyn Store> {
    store::open(url).unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

fn snap(url: &str) -> Snap {
    let mut s = open(url);
    let mut batches: Batches = s
        .ingestions()
        .unwrap()
        .into_iter()
        .map(|i| {
            (
                i.batch_id,
                (i.status.map(|s| s.to_string()), i.record_count, 0),
            )
        })
        .collect();
    for (batch, n) in s.buffer_counts().unwrap() {
        let b = batch.unwrap_or_default();
        batches.entry(b).or_insert((None, None, 0)).2 = n;
    }
    Snap {
        train: keys(&s.ratings(Split::Train).unwrap()),
        test: keys(&s.ratings(Split::Test).unwrap()),
        buffer: keys(&s.buffer_ratings(None).unwrap()),
        movies: s.movies().unwrap().len(),
        model_runs: s.model_runs().unwrap().len(),
        champion: s.champion().unwrap(),
        batches,
    }
}

fn ingestion(url: &str, batch: &str) -> Ingestion {
    open(url)
        .ingestions()
        .unwrap()
        .into_iter()
        .find(|i| i.batch_id == batch)
        .unwrap_or_else(|| panic!("no ingestion_metadata row for {batch}"))
}

fn status(url: &str, batch: &str) -> String {
    ingestion(url, batch)
        .status
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// SQLite: the file survived the kill intact.
fn assert_integrity(db: &TestDb) {
    if let TestDb::Sqlite(d) = db {
        let check: String = d
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "SQLite integrity_check after a kill");
    }
}

/// Waits until no other session is connected to a PostgreSQL database, so
/// the locks of a killed process's session are released (the server ends
/// the session as soon as it notices the closed socket).
fn settle(db: &TestDb) {
    if let TestDb::Pg(d) = db {
        let mut c = d.client();
        let t = Instant::now();
        loop {
            let others: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            if others == 0 {
                return;
            }
            assert!(
                t.elapsed() < STEP_TIMEOUT,
                "sessions of killed processes linger"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A fresh database on the same backend.
fn another(db: &TestDb) -> TestDb {
    match db {
        TestDb::Pg(_) => TestDb::Pg(PgDb::new()),
        TestDb::Sqlite(_) => TestDb::Sqlite(SqliteDb::new()),
    }
}

fn is_sqlite(db: &TestDb) -> bool {
    matches!(db, TestDb::Sqlite(_))
}

/// The small dataset loaded and a first (baseline) model trained.
fn setup_small(url: &str) {
    run_ok(url, &["-q", "load", &path_str(&data().small)]);
    run_ok(url, &["-q", "train", "--algo", "baseline", "--no-ranking"]);
}

// --- kill -9 at failpoints --------------------------------------------------

/// `load` killed before its transaction commits leaves the database as it
/// was (empty, or the previous dataset when replacing); killed after, the
/// whole dataset is there and a second load is refused.
fn load_killed_anywhere_leaves_nothing_or_everything(db: TestDb) {
    let url = db.url();
    let dir = path_str(&data().big);
    let n_ratings = data_lines(&data().big.join("ratings.csv"));
    let n_movies = data_lines(&data().big.join("movies.csv"));
    let all = file_keys(&path_str(&data().big.join("ratings.csv")));
    for fp in [
        "load:before_write",
        "load:after_movies",
        "load:mid_ratings#2",
        "load:after_copy_before_commit",
    ] {
        kill_at(url, &["load", &dir], fp);
        let s = snap(url);
        assert!(
            s.train.is_empty() && s.test.is_empty() && s.movies == 0,
            "load killed at {fp} left {} train, {} test ratings and {} movies",
            s.train.len(),
            s.test.len(),
            s.movies
        );
        assert_integrity(&db);
    }
    // Killed just after the commit: all of it.
    kill_at(url, &["load", &dir], "load:after_commit");
    let full = snap(url);
    assert_eq!(full.movies, n_movies);
    assert_eq!(full.train.len() + full.test.len(), n_ratings);
    assert_eq!(
        union(&full.train, &full.test),
        all,
        "exactly the file's ratings"
    );
    // Loading again is refused rather than doubling the data.
    let again = run(url, &["load", &dir]);
    assert!(
        !again.ok() && again.stderr.contains("already holds a dataset"),
        "{}",
        again.stderr
    );
    assert_eq!(snap(url), full);
    // --replace killed mid-way (PostgreSQL: after TRUNCATE, inside the COPY)
    // or before its commit: the previous dataset is untouched.
    for fp in ["load:mid_ratings#1", "load:after_copy_before_commit"] {
        kill_at(url, &["load", &dir, "--replace", "--seed", "7"], fp);
        assert_eq!(snap(url), full, "load --replace killed at {fp}");
        assert_integrity(&db);
    }
    run_ok(url, &["-q", "load", &dir, "--replace", "--seed", "7"]);
    let replaced = snap(url);
    assert_eq!(union(&replaced.train, &replaced.test), all);
    assert_ne!(replaced.train, full.train, "another seed, another split");
}

/// `ingest` killed after its audit row or after its rows (before the
/// commit) leaves nothing of the batch; the audit row shows the batch as in
/// progress until the next ingestion marks it interrupted (never while its
/// process lives); the batch can then be retried, once.
fn ingest_killed_leaves_no_partial_batch_and_an_honest_audit_trail(db: TestDb) {
    let url = db.url();
    let d = data();
    run_ok(url, &["-q", "load", &path_str(&d.small)]);
    let (w1, w2, w3) = (d.batch(1), d.batch(2), d.batch(3));
    let (k1, k2, k3) = (file_keys(&w1), file_keys(&w2), file_keys(&w3));

    // Killed right after 'in_progress' was committed.
    kill_at(
        url,
        &["ingest", &w1, "--batch-id", "w1"],
        "ingest:after_metadata_in_progress",
    );
    assert!(snap(url).buffer.is_empty());
    assert_eq!(
        status(url, "w1"),
        "in_progress",
        "the interrupted batch is visible"
    );
    settle(&db);

    // The next ingestion (w3) finds no process ingesting, so w1 is marked
    // failed as interrupted. w3's process stays alive (paused) while w2 is
    // ingested: w3's row is left alone.
    let mut live = spawn_at(
        url,
        &["ingest", &w3, "--batch-id", "w3"],
        "ingest:after_metadata_in_progress",
        None,
    );
    live.wait_for(&marker("ingest:after_metadata_in_progress"));
    let w1_row = ingestion(url, "w1");
    assert_eq!(w1_row.status, Some(IngestionStatus::Failed));
    assert_eq!(w1_row.notes.as_deref(), Some(store::INTERRUPTED_NOTE));
    run_ok(url, &["ingest", &w2, "--batch-id", "w2"]);
    assert_eq!(
        status(url, "w3"),
        "in_progress",
        "a live ingestion is not marked"
    );
    assert_eq!(snap(url).buffer, k2);
    live.kill9();
    settle(&db);

    // The next ingestion finds w3's owner dead: w3 is marked failed as
    // interrupted. It is killed itself after its rows, before its commit.
    kill_at(
        url,
        &["ingest", &w1, "--batch-id", "w1"],
        "ingest:after_rows_before_commit",
    );
    settle(&db);
    let w3_row = ingestion(url, "w3");
    assert_eq!(w3_row.status, Some(IngestionStatus::Failed));
    let notes = w3_row.notes.unwrap_or_default();
    assert!(notes.contains("interrupted"), "w3 notes: {notes}");
    assert_eq!(w3_row.record_count, None);
    let s = snap(url);
    assert_eq!(s.buffer, k2, "no partial w1");
    assert_eq!(status(url, "w1"), "in_progress");
    assert_eq!(status(url, "w2"), "completed");

    // Retries complete, each batch exactly once.
    let o = run_ok(url, &["ingest", &w1, "--batch-id", "w1"]);
    assert!(o.stdout.contains("ingested 3,000 ratings"), "{}", o.stdout);
    let w1_row = ingestion(url, "w1");
    assert_eq!(w1_row.status, Some(IngestionStatus::Completed));
    assert_eq!(w1_row.record_count, Some(k1.len() as i64));
    run_ok(url, &["ingest", &w3, "--batch-id", "w3"]);
    let s = snap(url);
    assert_eq!(s.buffer, union(&union(&k1, &k2), &k3));
    for (b, k) in [("w1", &k1), ("w2", &k2), ("w3", &k3)] {
        assert_eq!(
            s.batches[b],
            (
                Some("completed".into()),
                Some(k.len() as i64),
                k.len() as i64
            ),
            "{b}"
        );
    }
    // A completed batch is refused; nothing doubles.
    let again = run(url, &["ingest", &w1, "--batch-id", "w1"]);
    assert!(
        again.status.code() == Some(3) && again.stderr.contains("already ingested"),
        "exit 3 (already done) expected: {}\n{}",
        again.status,
        again.stderr
    );
    assert!(
        again.stderr.contains("cinematch buffer clear --batch w1"),
        "the hint names the scoped clear: {}",
        again.stderr
    );
    assert_eq!(snap(url), s);
    assert_integrity(&db);
}

/// `retrain` and `buffer merge` killed at any point before their commit
/// change nothing; the retrain that completes moves every buffered rating
/// into the train split exactly once.
fn retrain_and_merge_killed_lose_and_double_nothing(db: TestDb) {
    let url = db.url();
    setup_small(url);
    run_ok(url, &["-q", "ingest", &data().batch(3), "--batch-id", "w3"]);
    let before = snap(url);
    assert_eq!(before.buffer.len(), 3000);
    let mut retrain_points = vec![
        "retrain:before_record",
        "retrain:after_promote_before_merge",
        "merge:before_commit",
    ];
    let mut merge_points = vec!["merge:before_commit"];
    if is_sqlite(&db) {
        // PostgreSQL moves the rows with one DELETE ... RETURNING statement.
        retrain_points.insert(2, "merge:after_insert_before_delete");
        merge_points.insert(0, "merge:after_insert_before_delete");
    }
    for fp in retrain_points {
        kill_at(url, &["retrain"], fp);
        assert_eq!(snap(url), before, "retrain killed at {fp}");
        assert_integrity(&db);
    }
    for fp in merge_points {
        kill_at(url, &["buffer", "merge"], fp);
        assert_eq!(snap(url), before, "buffer merge killed at {fp}");
    }
    run_ok(url, &["retrain"]);
    let after = snap(url);
    assert_eq!(
        after.train,
        union(&before.train, &before.buffer),
        "train after = train before + buffer before"
    );
    assert_eq!(after.test, before.test);
    assert!(after.buffer.is_empty());
    assert_eq!(after.model_runs, before.model_runs + 1);
    assert_eq!(
        after.batches["w3"].0.as_deref(),
        Some("completed"),
        "the audit trail keeps the merged batch"
    );
}

// --- kill -9 at random moments ----------------------------------------------

/// Runs `args` on `url` up to `attempts` times, killing it after a random
/// share of `typical`; after each attempt `check` sees the state and says
/// whether the operation has taken effect (then the loop stops). Runs it
/// undisturbed at the end if no attempt got through. `writing` is the
/// failpoint where the operation starts to write: armed to report and go on
/// at once, it tells whether a kill landed inside the write. Returns what
/// happened: per attempt the kill time as a share of `typical` (`w` when
/// the write had begun, `*` once the operation had taken effect), or `ran
/// through`; and how many kills landed inside the write, before it took effect.
fn kill_randomly(
    rng: &mut rand_chacha::ChaCha8Rng,
    url: &str,
    args: &[&str],
    writing: &str,
    typical: Duration,
    attempts: usize,
    mut check: impl FnMut(&str) -> bool,
) -> (Vec<String>, usize) {
    let mut events = Vec::new();
    let mut inside = 0;
    for _ in 0..attempts {
        let mut cmd = cinematch(url, args);
        arm(&mut cmd, writing).env("CINEMATCH_FAILPOINT_SLEEP_MS", "0");
        let mut p = Proc::spawn(cmd);
        let share = rng.random_range(0.02..0.85);
        let t = Instant::now();
        while t.elapsed() < typical.mul_f64(share) && !p.exited() {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Read before the kill: a marker printed in the last instant may be
        // missed, which only undercounts.
        let wrote = p.stderr().contains(&marker(writing));
        let killed = p.kill9_unless_done();
        let took_effect = check(url);
        if killed {
            events.push(format!("{share:.2}{}", if wrote { "w" } else { "" }));
            if wrote && !took_effect {
                inside += 1;
            }
        } else {
            events.push("ran through".to_string());
        }
        if took_effect {
            if let Some(last) = events.last_mut().filter(|e| !e.starts_with('r')) {
                last.push('*');
            }
            return (events, inside);
        }
    }
    run_ok(url, args);
    assert!(
        check(url),
        "cinematch {} did not take effect",
        args.join(" ")
    );
    events.push("then undisturbed".to_string());
    (events, inside)
}

fn timed(url: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    run_ok(url, args);
    t.elapsed()
}

/// The same sequence (load, train, ingest, retrain) undisturbed on a
/// control database and with kills at random moments on another: every
/// intermediate state is one of the undisturbed ones, and the end states match.
fn random_kills_keep_every_invariant(db: TestDb) {
    let control = another(&db);
    let (c, url) = (control.url(), db.url());
    let dir = path_str(&data().big);
    let batch = path_str(&data().big.join("batches/batch_w1.csv"));
    let load = ["-q", "load", dir.as_str()];
    let train = ["-q", "train", "--algo", "baseline", "--no-ranking"];
    let ingest = ["-q", "ingest", batch.as_str(), "--batch-id", "w1"];
    let retrain = ["-q", "retrain"];

    let t_load = timed(c, &load);
    let loaded = snap(c);
    run_ok(c, &train);
    let trained = snap(c);
    let t_ingest = timed(c, &ingest);
    let ingested = snap(c);
    let t_retrain = timed(c, &retrain);
    let retrained = snap(c);
    assert_eq!(retrained.train, union(&ingested.train, &ingested.buffer));

    let seed = 0x5eed_u64 ^ u64::from(is_sqlite(&db));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let empty = Snap {
        train: vec![],
        test: vec![],
        buffer: vec![],
        movies: 0,
        model_runs: 0,
        champion: None,
        batches: BTreeMap::new(),
    };
    let (load_events, load_inside) =
        kill_randomly(&mut rng, url, &load, "load:before_write", t_load, 5, |u| {
            let s = snap(u);
            assert!(
                s == empty || s == loaded,
                "a partial load: {} train, {} test, {} movies",
                s.train.len(),
                s.test.len(),
                s.movies
            );
            s == loaded
        });
    assert_integrity(&db);
    run_ok(url, &train);
    let (ingest_events, ingest_inside) = kill_randomly(
        &mut rng,
        url,
        &ingest,
        "ingest:after_metadata_in_progress",
        t_ingest,
        5,
        |u| {
            let s = snap(u);
            if s.buffer.is_empty() {
                assert_eq!(s.train, trained.train);
                assert_ne!(
                    s.batches.get("w1").and_then(|b| b.0.as_deref()),
                    Some("completed"),
                    "completed without its rows"
                );
                false
            } else {
                assert_eq!(s.buffer, ingested.buffer, "a partial batch");
                assert_eq!(s.batches["w1"], ingested.batches["w1"]);
                true
            }
        },
    );
    assert_integrity(&db);
    let (retrain_events, retrain_inside) = kill_randomly(
        &mut rng,
        url,
        &retrain,
        "retrain:before_record",
        t_retrain,
        5,
        |u| {
            let s = snap(u);
            if s.buffer.is_empty() {
                assert_eq!(s.train, retrained.train, "merged, but not exactly once");
                assert_eq!(s.model_runs, retrained.model_runs);
                true
            } else {
                assert_eq!(
                    s.train, ingested.train,
                    "train changed but the buffer did not empty"
                );
                assert_eq!(s.buffer, ingested.buffer);
                assert_eq!(
                    s.model_runs, ingested.model_runs,
                    "a run recorded without its merge"
                );
                false
            }
        },
    );
    assert_integrity(&db);
    let end = snap(url);
    assert_eq!(
        (
            &end.train,
            &end.test,
            &end.buffer,
            end.movies,
            end.model_runs
        ),
        (
            &retrained.train,
            &retrained.test,
            &retrained.buffer,
            retrained.movies,
            retrained.model_runs
        )
    );
    assert_eq!(end.batches["w1"].0.as_deref(), Some("completed"));
    assert_eq!(end.batches["w1"].1, retrained.batches["w1"].1);
    let report = format!(
        "random kills ({}), as shares of the undisturbed time (w = the write had begun, \
         * = had taken effect): load ({t_load:.1?}) {load_events:?}; ingest ({t_ingest:.1?}) \
         {ingest_events:?}; retrain ({t_retrain:.1?}) {retrain_events:?}",
        if is_sqlite(&db) {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    eprintln!("{report}");
    // The invariants above were checked after kills that landed inside the
    // writes, not only after runs that got through or kills before them.
    let inside = load_inside + ingest_inside + retrain_inside;
    assert!(
        inside >= 3,
        "only {inside} kills landed inside a write: {report}"
    );
}

// --- two pipeline cycles at once --------------------------------------------

/// Train, test, buffer, model runs and batches: what a disturbed run must
/// agree on with its undisturbed control.
type EndState = (Vec<Key>, Vec<Key>, Vec<Key>, usize, Batches);

fn end_state(url: &str) -> EndState {
    let s = snap(url);
    (s.train, s.test, s.buffer, s.model_runs, s.batches)
}

/// Two `pipeline run` processes against one database: the second refuses
/// with a clear message while the first holds the cycle; after a re-run the
/// data is exactly what running them one after the other gives. Started at
/// the same instant with the same batch, the batch lands once.
fn two_pipeline_runs_at_once_are_serialized(db: TestDb) {
    let d = data();
    let (w1, w3) = (d.batch(1), d.batch(3));
    let run_w1 = [
        "pipeline",
        "run",
        "--batch",
        w1.as_str(),
        "--batch-id",
        "w1",
    ];
    let run_w3 = [
        "pipeline",
        "run",
        "--batch",
        w3.as_str(),
        "--batch-id",
        "w3",
    ];

    let control = another(&db);
    setup_small(control.url());
    run_ok(control.url(), &run_w1);
    run_ok(control.url(), &run_w3);
    let serial = end_state(control.url());

    let url = db.url();
    setup_small(url);
    // A reaches a failpoint holding the pipeline lock, pauses there (3 s)
    // and is frozen (SIGSTOP) meanwhile, so B surely finds the lock taken
    // however slow the machine; SIGCONT lets A go on.
    let mut a = spawn_at(url, &run_w1, "pipeline:locked", Some(3000));
    a.wait_for(&marker("pipeline:locked"));
    a.signal("STOP");
    let b = run(url, &run_w3);
    a.signal("CONT");
    assert!(!b.ok(), "B ran while A held the cycle:\n{}", b.stdout);
    assert_busy(&b, "B's refusal");
    let a = a.finish();
    assert!(a.ok(), "A failed: {}", a.stderr);
    let refused = open(url).pipeline_runs().unwrap();
    assert_eq!(refused.len(), 1, "a refused cycle records nothing");
    run_ok(url, &run_w3);
    assert_eq!(end_state(url), serial, "as if run one after the other");
    let runs = open(url).pipeline_runs().unwrap();
    assert!(
        runs.iter().all(|r| r.status == PipelineStatus::Succeeded),
        "{runs:?}"
    );

    // Both at the same instant, same batch: whichever order, w3 lands once.
    let control2 = another(&db);
    setup_small(control2.url());
    run_ok(control2.url(), &run_w3);
    run_ok(control2.url(), &run_w3);
    let serial2 = end_state(control2.url());
    let db2 = another(&db);
    setup_small(db2.url());
    let p = Proc::spawn(cinematch(db2.url(), &run_w3));
    let q = Proc::spawn(cinematch(db2.url(), &run_w3));
    let (p, q) = (p.finish(), q.finish());
    for o in [&p, &q] {
        assert!(
            o.ok() || (o.status.code() == Some(75) && o.stderr.contains("another pipeline cycle")),
            "neither success nor a clear refusal: {}",
            o.stderr
        );
    }
    assert!(p.ok() || q.ok());
    if !(p.ok() && q.ok()) {
        run_ok(db2.url(), &run_w3);
    }
    assert_eq!(end_state(db2.url()), serial2);
}

// --- the API under load while retraining merges -----------------------------

const TOKEN: &str = "faults-test-token";
/// API ratings carry timestamps from here on: timestamp - API_TS is the
/// rating's sequence number, so each one can be found again.
const API_TS: i64 = 1_600_000_000;

struct Server {
    _proc: Proc,
    addr: SocketAddr,
}

/// `cinematch serve` with a 4 s request timeout (3 s per statement): a
/// write stuck behind a merge runs out of time, is rolled back and says so,
/// and the client retries it.
/// `env`: extra environment (a failpoint).
fn serve(url: &str, env: &[(&str, &str)]) -> Server {
    let mut cmd = cinematch(
        url,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--timeout-secs",
            "4",
            "--pool",
            "4",
        ],
    );
    cmd.env("CINEMATCH_API_TOKEN", TOKEN);
    cmd.envs(env.iter().copied());
    let mut proc = Proc::spawn(cmd);
    // The start-up line "serving addr=Some(127.0.0.1:PORT) ...": waiting
    // for "serving" alone races "serving a new snapshot".
    proc.wait_for("addr=Some(");
    let err = proc.stderr();
    // "serving addr=Some(127.0.0.1:PORT) ..." (the line before names port 0)
    let at = err.find("addr=Some(").expect("the server logs its address") + "addr=Some(".len();
    let addr: String = err[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    Server {
        _proc: proc,
        addr: addr.parse().unwrap(),
    }
}

/// What a client saw of one POST: the status and whether it was the
/// replay of an earlier attempt with the same key.
struct Answer {
    status: u16,
    replayed: bool,
}

/// POST /api/ratings with an Idempotency-Key on a fresh connection, giving
/// up after `patience` (as a client with a timeout does); the answer, or an
/// I/O error (refused while the server restarts, a reset, the timeout).
fn post_ratings(
    addr: SocketAddr,
    body: &str,
    key: &str,
    patience: Duration,
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, patience)?;
    s.set_read_timeout(Some(patience))?;
    s.set_write_timeout(Some(patience))?;
    write!(
        s,
        "POST /api/ratings HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {head:?}")))?;
    Ok(Answer {
        status,
        replayed: head.contains("idempotent-replayed: true"),
    })
}

/// Rating number `seq`: a unique (user, movie) pair and timestamp.
fn api_rating(seq: u64, movies: &[i32]) -> Key {
    let m = movies.len() as u64;
    (
        1_000_000 + (seq / m) as i32,
        movies[(seq % m) as usize],
        API_TS + seq as i64,
        (seq % 10) as u8 + 1,
    )
}

fn merged_count(stdout: &str) -> u64 {
    // "merged 1,234 buffered ratings ..." (buffer merge and retrain alike)
    stdout
        .split("merged ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Several clients POST ratings to `cinematch serve` while `retrain` and
/// `buffer merge` run again and again, and the server is stopped with
/// SIGTERM (it drains) and started again six times along the way; clients
/// give up on a request after a second and retry it (same
/// Idempotency-Key) after that, a refused or reset connection or a 503.
/// Each server process holds its third write for 1.5 s before the commit
/// (a failpoint standing for a slow disk or a long lock), so in every
/// server's life a client gives up on a write that then commits, and its
/// retry must get the first answer, not a second copy. Afterwards every
/// request was accepted and every rating is in exactly one of `ratings`
/// (train) or `ratings_buffer`, once.
fn api_ratings_under_load_survive_concurrent_merges(db: TestDb) {
    let total: u64 = std::env::var("CINEMATCH_FAULTS_API_RATINGS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(60_000);
    let per_request: u64 = if total >= 500_000 { 1000 } else { 500 };
    let clients: u64 = 4;
    // How long a client waits for an answer before it gives up and retries.
    let patience = Duration::from_millis(
        std::env::var("CINEMATCH_FAULTS_CLIENT_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let slow_write = [
        ("CINEMATCH_FAILPOINT", "append:before_commit#3"),
        ("CINEMATCH_FAILPOINT_SLEEP_MS", "1500"),
    ];
    let url = db.url().to_string();
    setup_small(&url);
    let movies: Arc<Vec<i32>> = Arc::new(
        open(&url)
            .movies()
            .unwrap()
            .iter()
            .map(|m| m.movie_id)
            .collect(),
    );
    let base = snap(&url);
    let first = serve(&url, &slow_write);
    let current = Arc::new(Mutex::new(first.addr));

    let requests = total.div_ceil(per_request);
    let next = Arc::new(AtomicU64::new(0));
    // Per request: 0 = not sent, 201 = accepted, other = the status that
    // ended it.
    let outcome: Arc<Vec<AtomicU64>> = Arc::new((0..requests).map(|_| AtomicU64::new(0)).collect());
    let posting = Arc::new(AtomicBool::new(true));
    let t0 = Instant::now();
    let max_latency = Arc::new(AtomicU64::new(0));
    // What the clients went through: (attempts, gave up waiting, refused
    // or reset, 503 or 408, replayed answers).
    let tally: Arc<[AtomicU64; 5]> = Arc::new(Default::default());

    // The merger: retrain and buffer merge, alternately, while clients post.
    let merger = {
        let (url, posting) = (url.clone(), posting.clone());
        std::thread::spawn(move || {
            // Stops with the clients, so the buffer keeps what came last and
            // the check below covers both tables.
            let mut merges = Vec::new();
            let mut i = 0;
            while posting.load(Ordering::SeqCst) {
                let args: &[&str] = if i % 2 == 0 {
                    &["-q", "retrain"]
                } else {
                    &["-q", "buffer", "merge"]
                };
                let o = run_ok(&url, args);
                merges.push((args[1], merged_count(&o.stdout)));
                i += 1;
            }
            merges
        })
    };
    // The restarter: SIGTERM, the drain (exit 0), a new server on a new
    // port, each time another sixth of the requests is done.
    let done = Arc::new(AtomicU64::new(0));
    let restarter = {
        let (url, posting, current, done) =
            (url.clone(), posting.clone(), current.clone(), done.clone());
        std::thread::spawn(move || {
            let mut server = first;
            let mut restarts = 0u64;
            loop {
                let due = requests * (restarts + 1) / 7;
                while (restarts == 6 || done.load(Ordering::SeqCst) < due)
                    && posting.load(Ordering::SeqCst)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if !posting.load(Ordering::SeqCst) {
                    return (server, restarts);
                }
                server._proc.signal("TERM");
                let done = server._proc.finish();
                assert!(
                    done.ok(),
                    "the server did not stop cleanly on SIGTERM ({}):\n{}",
                    done.status,
                    done.stderr
                );
                server = serve(&url, &slow_write);
                *current.lock().unwrap() = server.addr;
                restarts += 1;
            }
        })
    };
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, outcome, movies, max_latency, current, tally, done) = (
                next.clone(),
                outcome.clone(),
                movies.clone(),
                max_latency.clone(),
                current.clone(),
                tally.clone(),
                done.clone(),
            );
            std::thread::spawn(move || loop {
                let r = next.fetch_add(1, Ordering::SeqCst);
                if r >= requests {
                    return;
                }
                let (from, to) = (r * per_request, ((r + 1) * per_request).min(total));
                let mut body = String::with_capacity(80 * per_request as usize);
                body.push('[');
                for seq in from..to {
                    let (u, m, ts, stars) = api_rating(seq, &movies);
                    if seq > from {
                        body.push(',');
                    }
                    body.push_str(&format!(
                        r#"{{"userId":{u},"movieId":{m},"rating":{},"timestamp":{ts}}}"#,
                        f64::from(stars) / 2.0
                    ));
                }
                body.push(']');
                let key = format!("faults-request-{r}");
                let started = Instant::now();
                let code = loop {
                    assert!(
                        started.elapsed() < STEP_TIMEOUT,
                        "request {r} not accepted within {STEP_TIMEOUT:?}"
                    );
                    tally[0].fetch_add(1, Ordering::SeqCst);
                    let addr = *current.lock().unwrap();
                    let t = Instant::now();
                    let answer = post_ratings(addr, &body, &key, patience);
                    max_latency.fetch_max(t.elapsed().as_millis() as u64, Ordering::SeqCst);
                    match answer {
                        Ok(a) if a.status == 201 => {
                            if a.replayed {
                                tally[4].fetch_add(1, Ordering::SeqCst);
                            }
                            break 201;
                        }
                        Ok(a) if a.status == 503 || a.status == 408 => {
                            tally[3].fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(a) => break u64::from(a.status),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            tally[1].fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            tally[2].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                outcome[r as usize].store(code, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let posting_time = t0.elapsed();
    posting.store(false, Ordering::SeqCst);
    let merges = merger.join().unwrap();
    let (server, restarts) = restarter.join().unwrap();
    drop(server);

    // Every rating sent, by sequence number: how often it is stored.
    let mut s = open(&url);
    let mut seen = vec![0u8; total as usize];
    let mut wrong = 0usize;
    let mut count = |r: &Rating, seen: &mut Vec<u8>| {
        if r.timestamp >= API_TS {
            let seq = (r.timestamp - API_TS) as u64;
            if api_rating(seq, &movies) != key(r) {
                wrong += 1;
            }
            seen[seq as usize] = seen[seq as usize].saturating_add(1);
        }
    };
    let train = s.ratings(Split::Train).unwrap();
    let test = s.ratings(Split::Test).unwrap();
    let buffer = s.buffer_ratings(None).unwrap();
    assert!(
        test.iter().all(|r| r.timestamp < API_TS),
        "API ratings in the test split"
    );
    for r in train.iter().chain(&buffer) {
        count(r, &mut seen);
    }
    assert_eq!(wrong, 0, "stored ratings differ from what was sent");
    let mut accepted = 0u64;
    let mut other: BTreeMap<u64, u64> = BTreeMap::new();
    for (r, o) in outcome.iter().enumerate() {
        let code = o.load(Ordering::SeqCst);
        let range = (r as u64 * per_request)..((r as u64 + 1) * per_request).min(total);
        let n = range.end - range.start;
        if code == 201 {
            accepted += n;
            for seq in range {
                assert_eq!(
                    seen[seq as usize], 1,
                    "accepted rating {seq} stored {} times",
                    seen[seq as usize]
                );
            }
        } else {
            *other.entry(code).or_default() += n;
            for seq in range {
                assert!(
                    seen[seq as usize] <= 1,
                    "rating {seq} (answer {code}) stored twice"
                );
            }
        }
    }
    let stored: u64 = seen.iter().map(|&n| u64::from(n)).sum();
    let api_train = train.iter().filter(|r| r.timestamp >= API_TS).count();
    assert_eq!(
        train.len() - api_train,
        base.train.len(),
        "the loaded train ratings are untouched"
    );
    assert_eq!(
        accepted, total,
        "every request accepted (answers other than 201: {other:?})"
    );
    let moved: u64 = merges.iter().map(|m| m.1).sum();
    assert!(
        merges.iter().any(|m| m.1 > 0),
        "no merge moved ratings while clients were posting: {merges:?}"
    );
    let api_buffer = buffer.iter().filter(|r| r.timestamp >= API_TS).count();
    assert_eq!(moved, api_train as u64, "the merges report what they moved");
    // The rest merges too, once.
    run_ok(&url, &["-q", "buffer", "merge"]);
    let train_end = s.ratings(Split::Train).unwrap();
    assert_eq!(train_end.len(), base.train.len() + total as usize);
    assert!(s.buffer_ratings(None).unwrap().is_empty());
    let t = |i: usize| tally[i].load(Ordering::SeqCst);
    eprintln!(
        "API under load ({}): {total} ratings in {requests} requests of {per_request} from {clients} clients \
         in {posting_time:.1?} ({:.0} ratings/s, slowest attempt {} ms); {} attempts: {} gave up after \
         {patience:?} and retried, {} refused or reset (restarts), {} answered 503/408 and retried, {} \
         answered by replay; {restarts} SIGTERM restarts; meanwhile {} merges ({} by retrain) \
         moved {moved}; at the end {api_train} in ratings + {api_buffer} in ratings_buffer = {stored} \
         stored of {accepted} accepted",
        if is_sqlite(&db) { "SQLite" } else { "PostgreSQL" },
        total as f64 / posting_time.as_secs_f64(),
        max_latency.load(Ordering::SeqCst),
        t(0),
        t(1),
        t(2),
        t(3),
        t(4),
        merges.len(),
        merges.iter().filter(|m| m.0 == "retrain").count(),
    );
    assert_eq!(stored, total, "every rating stored once");
    assert_eq!(restarts, 6, "the server was restarted along the way");
    assert!(
        t(1) > 0 && t(4) > 0,
        "no client gave up on a write that then committed (gave up {}, replays {})",
        t(1),
        t(4)
    );
}

// --- the pipeline lease (issue 10, items 5 and 6) -----------------------------

/// Ends every other session on the test database, as an administrator (or
/// a server restart, or a pooler recycling connections) would.
/// Moves every lease `secs` seconds into the past, as if that much time had
/// passed for its holder without a renewal (a frozen holder renews nothing).
fn age_leases(db: &TestDb, secs: u32) {
    match db {
        TestDb::Pg(d) => {
            d.client()
                .execute(
                    "UPDATE cinematch_leases
                        SET acquired_at = acquired_at - make_interval(secs => $1),
                            expires_at = expires_at - make_interval(secs => $1)",
                    &[&f64::from(secs)],
                )
                .expect("age the leases");
        }
        TestDb::Sqlite(d) => {
            let shift = format!("-{secs} seconds");
            d.conn()
                .execute(
                    "UPDATE cinematch_leases
                        SET acquired_at = strftime('%Y-%m-%d %H:%M:%f', acquired_at, ?1),
                            expires_at = strftime('%Y-%m-%d %H:%M:%f', expires_at, ?1)",
                    [shift],
                )
                .expect("age the leases");
        }
    }
}

fn terminate_backends(db: &TestDb) -> u64 {
    match db {
        TestDb::Pg(d) => d
            .client()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .len() as u64,
        TestDb::Sqlite(_) => 0,
    }
}

fn pipeline_lease(url: &str) -> Option<cinematch::store::Lease> {
    open(url)
        .lease(cinematch::pipeline::lease::PIPELINE_LEASE)
        .unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics after [`STEP_TIMEOUT`].
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < STEP_TIMEOUT,
            "{what}: not within {STEP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn assert_busy(o: &Outcome, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(75),
        "{what}: exit 75 (busy) expected, got {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    assert!(
        o.stderr
            .contains("another pipeline cycle or retrain is running"),
        "{what}: {}",
        o.stderr
    );
}

/// The holder of the pipeline lease is killed (`kill -9`) and its database
/// sessions terminated (`pg_terminate_backend`): the next cycle runs at
/// once, well within the holder's 60 s lease, because its process on this
/// machine is provably gone; the cycle's data ends as if undisturbed.
fn a_killed_lease_holder_is_taken_over_at_once(db: TestDb) {
    let url = db.url();
    setup_small(url);
    let w1 = data().batch(1);
    let cycle = [
        "pipeline",
        "run",
        "--batch",
        w1.as_str(),
        "--batch-id",
        "w1",
    ];
    let mut a = spawn_at(url, &cycle, "pipeline:locked", None);
    a.wait_for(&marker("pipeline:locked"));
    let held = pipeline_lease(url).expect("A holds the lease");
    assert!(held.remaining_secs > 30.0, "{held:?}");
    let terminated = terminate_backends(&db);
    if !is_sqlite(&db) {
        assert!(
            terminated >= 2,
            "A's main and renewer sessions: {terminated}"
        );
    }
    a.kill9();
    let b = run_ok(url, &cycle);
    assert!(
        b.stderr.contains("took over the pipeline lease")
            && b.stderr.contains(&held.holder)
            && b.stderr.contains("process on this machine is gone"),
        "{}",
        b.stderr
    );
    let s = snap(url);
    assert_eq!(s.batches["w1"].0.as_deref(), Some("completed"));
    assert_eq!(pipeline_lease(url), None, "B released the lease");
}

/// The holder vanishes without dying here (frozen with SIGSTOP: a machine
/// that dropped off the network) and its sessions are terminated: the next
/// cycle is refused (exit 75) while the lease runs, and runs once it has
/// expired, although the old holder still exists.
fn a_vanished_lease_holder_is_taken_over_after_the_lease(db: TestDb) {
    let url = db.url();
    setup_small(url);
    let w1 = data().batch(1);
    let cycle = |lease: &'static str| {
        vec![
            "pipeline".to_string(),
            "run".into(),
            "--batch".into(),
            w1.clone(),
            "--batch-id".into(),
            "w1".into(),
            "--lease-secs".into(),
            lease.into(),
        ]
    };
    // A long lease, so that B is refused however slow the machine; its
    // expiry is then brought forward in the database (whose clock the
    // lease is judged by) rather than waited for on the wall clock.
    let a_args = cycle("600");
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let mut a = spawn_at(url, &a_args, "pipeline:locked", None);
    a.wait_for(&marker("pipeline:locked"));
    a.signal("STOP");
    terminate_backends(&db);
    let lease = pipeline_lease(url).expect("A holds the lease");
    assert_eq!(
        (lease.expires_at - lease.acquired_at).num_seconds(),
        600,
        "taken for its length"
    );
    let b_args = cycle("60");
    let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let refused = run(url, &b_args);
    assert_busy(&refused, "while A's lease runs");
    assert!(open(url).pipeline_runs().unwrap().is_empty());
    age_leases(&db, 601);
    assert!(
        pipeline_lease(url).is_some_and(|l| l.remaining_secs < 0.0),
        "the lease should have expired"
    );
    let b = run_ok(url, &b_args);
    assert!(
        !b.stderr.contains("took over"),
        "expiry, not a dead pid: {}",
        b.stderr
    );
    assert_eq!(snap(url).batches["w1"].0.as_deref(), Some("completed"));
    a.kill9();
}

/// A cycle that works longer than its lease keeps it: the renewer extends
/// it (by more than the lease length since it was taken) and other cycles
/// stay refused until it finishes and releases it.
fn a_working_cycle_renews_its_lease(db: TestDb) {
    let url = db.url();
    setup_small(url);
    let w1 = data().batch(1);
    let go = tempfile::tempdir().unwrap();
    let go_file = go.path().join("go");
    let mut cmd = cinematch(
        url,
        &[
            "pipeline",
            "run",
            "--batch",
            &w1,
            "--batch-id",
            "w1",
            "--lease-secs",
            "3",
        ],
    );
    arm(&mut cmd, "pipeline:locked").env("CINEMATCH_FAILPOINT_RESUME_FILE", &go_file);
    let mut a = Proc::spawn(cmd);
    a.wait_for(&marker("pipeline:locked"));
    wait_until("renewed past twice its length", || {
        pipeline_lease(url).is_some_and(|l| {
            (l.expires_at - l.acquired_at).num_milliseconds() >= 6000 && l.remaining_secs > 0.0
        })
    });
    let refused = run(url, &["pipeline", "run"]);
    assert_busy(&refused, "while A works past its lease length");
    std::fs::write(&go_file, "").unwrap();
    let a = a.finish();
    assert!(a.ok(), "{}", a.stderr);
    assert_eq!(pipeline_lease(url), None);
}

/// `retrain` holds the pipeline lease (a cycle is refused meanwhile), and
/// its promotion is compare-and-set: a rollback while it trains is not
/// overwritten; the run is recorded unpromoted, the buffer merged, and the
/// command says why and exits 4.
fn retrain_keeps_a_champion_changed_while_it_trained(db: TestDb) {
    let url = db.url();
    setup_small(url);
    run_ok(url, &["-q", "train", "--algo", "baseline", "--no-ranking"]);
    let runs = open(url).model_runs().unwrap();
    let (v1, v2) = (runs[0].model_version.clone(), runs[1].model_version.clone());
    run_ok(url, &["models", "promote", &v2]);
    run_ok(url, &["-q", "ingest", &data().batch(3), "--batch-id", "w3"]);
    let before = snap(url);

    let go = tempfile::tempdir().unwrap();
    let go_file = go.path().join("go");
    // Tolerance 1000: the challenger would be promoted whatever its RMSE.
    let mut cmd = cinematch(url, &["retrain", "--tolerance", "1000"]);
    arm(&mut cmd, "retrain:before_record").env("CINEMATCH_FAILPOINT_RESUME_FILE", &go_file);
    let mut r = Proc::spawn(cmd);
    r.wait_for(&marker("retrain:before_record"));
    let w1 = data().batch(1);
    let cycle = run(
        url,
        &["pipeline", "run", "--batch", &w1, "--batch-id", "w1"],
    );
    assert_busy(&cycle, "a cycle during a retrain");
    let rolled = run_ok(url, &["models", "rollback"]);
    assert!(rolled.stdout.contains(&v1), "{}", rolled.stdout);
    assert_eq!(open(url).champion().unwrap().as_deref(), Some(v1.as_str()));
    std::fs::write(&go_file, "").unwrap();
    let r = r.finish();
    assert_eq!(
        r.status.code(),
        Some(4),
        "exit 4 (champion changed) expected: {}\nstdout:\n{}\nstderr:\n{}",
        r.status,
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains(&format!("champion stays {v1}")),
        "{}",
        r.stdout
    );
    let after = snap(url);
    assert_eq!(
        after.champion.as_deref(),
        Some(v1.as_str()),
        "not overwritten"
    );
    assert_eq!(
        after.model_runs,
        before.model_runs + 1,
        "the run is recorded"
    );
    assert!(after.buffer.is_empty(), "and the buffer merged");
    assert_eq!(after.train, union(&before.train, &before.buffer));
    let run3 = open(url).model_runs().unwrap().pop().unwrap();
    let notes: serde_json::Value = serde_json::from_str(run3.notes.as_deref().unwrap()).unwrap();
    let decision = notes["decision"].as_str().unwrap();
    assert!(
        decision.contains(&format!("the champion changed from {v2} to {v1}")),
        "{decision}"
    );
    assert_eq!(pipeline_lease(url), None);
}

on_both_backends!(
    a_killed_lease_holder_is_taken_over_at_once,
    a_vanished_lease_holder_is_taken_over_after_the_lease,
    a_working_cycle_renews_its_lease,
    retrain_keeps_a_champion_changed_while_it_trained,
    load_killed_anywhere_leaves_nothing_or_everything,
    ingest_killed_leaves_no_partial_batch_and_an_honest_audit_trail,
    retrain_and_merge_killed_lose_and_double_nothing,
    random_kills_keep_every_invariant,
    two_pipeline_runs_at_once_are_serialized,
    api_ratings_under_load_survive_concurrent_merges,
);

// --- PostgreSQL stopped under a pipeline cycle -------------------------------

/// The cluster scripts/test.sh starts for this test alone: it is stopped
/// and started while a cycle runs.
struct FaultsCluster {
    admin: String,
    stop: String,
    start: String,
}

impl FaultsCluster {
    fn from_env() -> FaultsCluster {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the tests with ./scripts/test.sh, which starts a \
                     throwaway PostgreSQL cluster that this test stops and restarts \
                     (CINEMATCH_TEST_PG_FAULTS_URL, _STOP and _START)"
                )
            })
        };
        FaultsCluster {
            admin: var("CINEMATCH_TEST_PG_FAULTS_URL"),
            stop: var("CINEMATCH_TEST_PG_FAULTS_STOP"),
            start: var("CINEMATCH_TEST_PG_FAULTS_START"),
        }
    }

    fn sh(&self, cmd: &str) {
        let st = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}: {st}");
    }

    fn stop(&self) {
        self.sh(&self.stop);
    }

    fn start(&self) {
        self.sh(&self.start);
    }

    fn admin(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.admin, ::postgres::NoTls)
            .expect("connect to the faults cluster")
    }

    fn create(&self, name: &str) -> String {
        self.admin()
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let i = self.admin.rfind('/').unwrap();
        format!("{}/{name}", &self.admin[..i])
    }

    fn drop_db(&self, name: &str) {
        let _ = self
            .admin()
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// PostgreSQL stops while `pipeline run` is inside a step: the cycle fails
/// with a clear error and leaves no partial batch or merge; once PostgreSQL
/// is back, running the cycle again ends exactly where an undisturbed cycle
/// ends, and the history shows the interrupted run as failed.
#[test]
fn postgres_stopped_during_a_pipeline_cycle() {
    let cluster = FaultsCluster::from_env();
    let w3 = data().batch(3);
    let cycle = [
        "pipeline",
        "run",
        "--batch",
        w3.as_str(),
        "--batch-id",
        "w3",
    ];
    let tag = std::process::id();
    let control_name = format!("faults_control_{tag}");
    let control = cluster.create(&control_name);
    setup_small(&control);
    let before = snap(&control);
    run_ok(&control, &cycle);
    let undisturbed = end_state(&control);
    assert!(
        undisturbed.2.is_empty(),
        "the drifted batch triggers a retrain and merge"
    );

    // Down before the cycle even starts: a clear error, nothing else.
    cluster.stop();
    let down = run(&control, &cycle);
    cluster.start();
    assert!(!down.ok());
    eprintln!(
        "PostgreSQL stopped before the cycle: {}",
        down.stderr.trim()
    );
    assert!(
        down.stderr.contains("opening the database")
            && down.stderr.contains("postgres://postgres@127.0.0.1"),
        "{}",
        down.stderr
    );

    for (i, fp) in [
        "ingest:after_rows_before_commit",
        "retrain:before_record",
        "merge:before_commit",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("faults_{tag}_{i}");
        let url = cluster.create(&name);
        setup_small(&url);
        // Frozen (SIGSTOP) at the failpoint while PostgreSQL stops, then let go.
        let mut p = spawn_at(&url, &cycle, fp, Some(2000));
        p.wait_for(&marker(fp));
        p.signal("STOP");
        cluster.stop();
        p.signal("CONT");
        let o = p.finish();
        cluster.start();
        assert!(
            !o.ok(),
            "the cycle succeeded with PostgreSQL stopped at {fp}"
        );
        let err = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("PostgreSQL stopped at {fp}: {err}");
        assert!(
            err.contains("stopped at step") && err.contains("run the cycle again"),
            "not a clear error: {}",
            o.stderr
        );
        // Nothing partial: either before the batch, or the batch buffered whole.
        let s = snap(&url);
        assert_eq!(s.train, before.train, "stopped at {fp}");
        assert_eq!(s.model_runs, before.model_runs);
        if fp.starts_with("ingest") {
            assert!(s.buffer.is_empty());
            assert_ne!(s.batches["w3"].0.as_deref(), Some("completed"));
        } else {
            assert_eq!(s.buffer, file_keys(&w3));
        }
        // The re-run completes, with the same end state as the undisturbed cycle.
        run_ok(&url, &cycle);
        assert_eq!(
            end_state(&url),
            undisturbed,
            "re-run after PostgreSQL stopped at {fp}"
        );
        let runs = open(&url).pipeline_runs().unwrap();
        assert_eq!(runs[0].status, PipelineStatus::Succeeded);
        assert!(
            runs[1..].iter().all(|r| r.status == PipelineStatus::Failed),
            "the interrupted run is recorded as failed: {runs:?}"
        );
        cluster.drop_db(&name);
    }
    cluster.drop_db(&control_name);
}
