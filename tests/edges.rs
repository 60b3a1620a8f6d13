//! The pipeline's own edges (issue 18), on both backends where one is
//! involved: a retrain merges exactly what it trained on, and nothing once
//! it lost its lease.

mod common;
#[path = "browser/support.rs"]
mod support;

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

/// [`common::cinematch_command`], its output collected.
fn cinematch(db: &str, args: &[&str]) -> Command {
    let mut c = common::cinematch_command(db, args);
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
        if !cfg!(feature = "failpoints") {
            panic!(
                "these tests need `cargo test --features failpoints` (scripts/test.sh does this)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let resume = dir.path().join("resume");
        let mut cmd = cinematch(db, args);
        cmd.env("CINEMATCH_FAILPOINT", failpoint)
            .env("CINEMATCH_FAILPOINT_RESUME_FILE", &resume);
        let mut child = cmd.spawn().unwrap();
        let (err, _reader) = common::capture_stderr(&mut child);
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

/// The issue's repro without the clock: a retrain stopped after training
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

// --- items 2, 3 and 8: what the scheduler takes from its inbox -------------------

/// `cinematch scheduler --once` on `inbox`: (exit code, stdout + stderr).
fn scheduler_once(db: &TestDb, inbox: &std::path::Path) -> (i32, String) {
    let out = cinematch(
        db.url(),
        &[
            "scheduler",
            "--inbox",
            inbox.to_str().unwrap(),
            "--once",
            "--settle-ms",
            "20",
            "--attempts",
            "1",
        ],
    )
    .output()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn ingestion_row(s: &mut dyn Store, batch: &str) -> Option<cinematch::store::Ingestion> {
    s.ingestions()
        .unwrap()
        .into_iter()
        .find(|i| i.batch_id == batch)
}

/// The newest failed pipeline run's steps for a batch.
fn failed_run(s: &mut dyn Store, batch: &str) -> String {
    s.pipeline_runs()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.batch_id.as_deref() == Some(batch) && r.status == cinematch::PipelineStatus::Failed
        })
        .max_by_key(|r| r.id)
        .and_then(|r| r.steps)
        .unwrap_or_else(|| panic!("no failed pipeline run for {batch}"))
}

const WEEK1_CSV: &str =
    "userId,movieId,rating,timestamp\n2001,1,4.0,1700000001\n2001,2,3.5,1700000002\n";
const WEEK1_TSV: &str = "2002\t1\t4\t1700000003\n2002\t2\t3\t1700000004\n2002\t3\t5\t1700000005\n";

/// Two files with one stem (`week1.csv`, 2 ratings; `week1.tsv`, 3) are
/// both refused, with an error row naming them, a non-zero exit and the
/// files left in place; once one is removed the other is taken, and its
/// name, size and SHA-256 are recorded. The same name delivered again with
/// other content (a corrected file) is refused the same way, never
/// skipped; the same content again is nothing to do. A file named like the
/// API's daily batch is refused: that prefix is reserved.
fn inbox_collisions_and_changed_files_are_errors(db: TestDb) {
    let mut s = seeded(&db);
    let inbox = tempfile::tempdir().unwrap();
    let csv = inbox.path().join("week1.csv");
    let tsv = inbox.path().join("week1.tsv");
    std::fs::write(&csv, WEEK1_CSV).unwrap();
    std::fs::write(&tsv, WEEK1_TSV).unwrap();
    std::fs::write(inbox.path().join("api_2025-01-06.csv"), WEEK1_CSV).unwrap();

    let stored_before = stored(s.as_mut());
    let (code, out) = scheduler_once(&db, inbox.path());
    assert_ne!(code, 0, "{out}");
    assert_eq!(stored(s.as_mut()), stored_before, "{out}");
    assert!(csv.exists() && tsv.exists(), "files left in place");
    let steps = failed_run(s.as_mut(), "week1");
    assert!(
        steps.contains("week1.csv") && steps.contains("week1.tsv"),
        "{steps}"
    );
    let row = ingestion_row(s.as_mut(), "week1").expect("an error row");
    assert_eq!(row.status, Some(cinematch::IngestionStatus::Failed));
    assert!(failed_run(s.as_mut(), "api_2025-01-06").contains("reserved"));
    assert_eq!(
        ingestion_row(s.as_mut(), "api_2025-01-06").unwrap().status,
        Some(cinematch::IngestionStatus::Failed)
    );
    std::fs::remove_file(inbox.path().join("api_2025-01-06.csv")).unwrap();

    std::fs::remove_file(&tsv).unwrap();
    let (code, out) = scheduler_once(&db, inbox.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(stored(s.as_mut()), stored_before + 2);
    let row = ingestion_row(s.as_mut(), "week1").unwrap();
    assert_eq!(row.status, Some(cinematch::IngestionStatus::Completed));
    let notes = row.notes.unwrap();
    let sha = sha256_hex(WEEK1_CSV.as_bytes());
    assert!(
        notes.contains(&format!(
            "week1.csv ({} bytes, sha256 {sha})",
            WEEK1_CSV.len()
        )),
        "{notes}"
    );
    assert!(!notes.contains(inbox.path().to_str().unwrap()), "{notes}");

    // A corrected file under the same name: an error, not a skip.
    let corrected = format!("{WEEK1_CSV}2001,3,2.0,1700000006\n");
    std::fs::write(&csv, &corrected).unwrap();
    let (code, out) = scheduler_once(&db, inbox.path());
    assert_ne!(code, 0, "{out}");
    let steps = failed_run(s.as_mut(), "week1");
    assert!(
        steps.contains(&sha) && steps.contains(&sha256_hex(corrected.as_bytes())),
        "{steps}"
    );
    assert_eq!(stored(s.as_mut()), stored_before + 2);
    assert_eq!(
        ingestion_row(s.as_mut(), "week1").unwrap().status,
        Some(cinematch::IngestionStatus::Completed),
        "the completed batch is untouched"
    );

    // The same content again: nothing to do.
    std::fs::write(&csv, WEEK1_CSV).unwrap();
    let runs = s.pipeline_runs().unwrap().len();
    let (code, out) = scheduler_once(&db, inbox.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.pipeline_runs().unwrap().len(), runs);

    // `ingest` by hand under the API's prefix is refused too.
    let out = cinematch(
        db.url(),
        &[
            "ingest",
            csv.to_str().unwrap(),
            "--batch-id",
            "api_2025-01-07",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
}

/// Every rating stored: both splits and the buffer.
fn stored(s: &mut dyn Store) -> usize {
    s.ratings(cinematch::Split::Train).unwrap().len()
        + s.ratings(cinematch::Split::Test).unwrap().len()
        + s.buffer_ratings(None).unwrap().len()
}

fn sha256_hex(bytes: &[u8]) -> String {
    cinematch::pipeline::ingest::request_hash(bytes)
}

/// The issue's repro: a mode-600 credentials file linked into the inbox as
/// `w9.csv`, and a regular file whose header line is a secret. The link is
/// refused without being read; the bad file's audit row says what is wrong
/// and where (name, line), never the line, nor the inbox's full path. With a
/// read token, `/api/ingestions` needs it and the dashboard shows no notes.
fn inbox_links_and_bad_files_publish_nothing(db: TestDb) {
    use std::os::unix::fs::PermissionsExt;
    let mut s = seeded(&db);
    let secrets = tempfile::tempdir().unwrap();
    let creds = secrets.path().join("credentials");
    std::fs::write(&creds, "AWS_SECRET=hunter2-linked-credential\nmore\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inbox = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&creds, inbox.path().join("w9.csv")).unwrap();
    std::fs::write(
        inbox.path().join("w8.csv"),
        "DB_PASSWORD=swordfish-in-a-header,x,y,z\n1,1,4.0,1700000000\n",
    )
    .unwrap();

    let (code, out) = scheduler_once(&db, inbox.path());
    assert_ne!(code, 0, "{out}");
    let w9 = ingestion_row(s.as_mut(), "w9").expect("an error row for the link");
    assert_eq!(w9.status, Some(cinematch::IngestionStatus::Failed));
    assert!(w9.notes.unwrap().contains("symbolic link"));
    let w8 = ingestion_row(s.as_mut(), "w8").expect("an error row for the bad file");
    let notes = w8.notes.unwrap();
    assert!(notes.contains("w8.csv:1"), "{notes}");
    assert!(!notes.contains(inbox.path().to_str().unwrap()), "{notes}");

    const READ: &str = "edges-read-token";
    let server = support::TestServer::start(db.url(), |c| c.read_token = Some(READ.into()));
    server.wait_until("the server answers", Duration::from_secs(60), |s| {
        s.get("/healthz").status == 200
    });
    let open = server.get("/api/ingestions");
    assert_eq!(open.status, 401, "{}", open.text());
    let auth = format!("Bearer {READ}");
    let with = support::http(
        server.addr,
        "GET",
        "/api/ingestions",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(with.status, 200, "{}", with.text());
    let page = server.get("/");
    for text in [with.text(), page.text()] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("swordfish"), "{text}");
        assert!(!text.contains(inbox.path().to_str().unwrap()), "{text}");
    }
    assert!(
        !page.text().contains("w8.csv:1"),
        "no notes on a page anyone may load"
    );
}

// --- item 4: load --replace and the buffer, and the champion it leaves -------------

/// The same 40 x 30 catalogue and ratings as `seed_low_rank`, to load again.
fn low_rank_dataset(
    s: &mut dyn Store,
) -> (Vec<cinematch::Movie>, Vec<Rating>, Vec<cinematch::Split>) {
    let movies = s.movies().unwrap();
    let mut ratings = s.ratings(cinematch::Split::Train).unwrap();
    let n_train = ratings.len();
    ratings.extend(s.ratings(cinematch::Split::Test).unwrap());
    let splits = (0..ratings.len())
        .map(|i| {
            if i < n_train {
                cinematch::Split::Train
            } else {
                cinematch::Split::Test
            }
        })
        .collect();
    (movies, ratings, splits)
}

/// `load --replace` is refused while the buffer holds ratings (they would
/// be merged into the new dataset), naming `buffer clear`, and nothing
/// changes. Once the buffer is empty the replace goes through, and the
/// champion, scored on the replaced dataset, no longer gates: a retrain on
/// the new one is promoted even against a perfect recorded score, and says
/// why.
fn a_replaced_dataset_keeps_neither_buffer_nor_gate(db: TestDb) {
    let mut s = seeded(&db);
    let (movies, ratings, splits) = low_rank_dataset(s.as_mut());
    s.append_to_batch("api_2025-01-06", &ratings_of(1001, 1..=2))
        .unwrap();
    let err = s
        .load_dataset(&movies, &ratings, &splits, true, &Silent)
        .unwrap_err();
    assert!(err.to_string().contains("buffer clear"), "{err}");
    assert_eq!(s.buffer_ratings(None).unwrap().len(), 2, "nothing changed");
    assert_eq!(stored(s.as_mut()), ratings.len() + 2);

    s.clear_batch("api_2025-01-06").unwrap();
    s.load_dataset(&movies, &ratings, &splits, true, &Silent)
        .unwrap();
    let champion = s.champion().unwrap().unwrap();
    // A score no run on any dataset can beat.
    exec(
        &db,
        &format!(
            "UPDATE model_evaluations SET ndcg_at_10 = 1.0, recall_at_10 = 1.0 \
              WHERE model_version = '{champion}'; \
             UPDATE model_metrics SET rmse = 0.0, mae = 0.0 WHERE model_version = '{champion}'"
        ),
    );
    let opts = cinematch::pipeline::retrain::RetrainOptions {
        mlflow: None,
        ..Default::default()
    };
    let outcome = cinematch::pipeline::retrain::retrain(s.as_mut(), &opts, &Silent).unwrap();
    match outcome {
        cinematch::pipeline::retrain::RetrainOutcome::Retrained {
            promoted, decision, ..
        } => {
            assert!(promoted, "{decision}");
            assert!(decision.contains("another dataset"), "{decision}");
        }
        other => panic!("{other:?}"),
    }
    assert_ne!(s.champion().unwrap(), Some(champion));
}

// --- item 5: heavy public reads never hold up a write ----------------------------

/// 2,000 movies (every other one a Drama) and 400,000 ratings, 70% train:
/// enough that ranking a genre by a count over the ratings per movie costs
/// a read far more than a write may wait.
fn load_large(s: &mut dyn Store) {
    let movies: Vec<cinematch::Movie> = (1..=2000)
        .map(|m| cinematch::Movie {
            movie_id: m,
            title: format!("Film {m} (2001)"),
            genres: if m % 2 == 0 { "Drama" } else { "Comedy|Action" }.into(),
            pca_features: None,
        })
        .collect();
    let mut ratings = Vec::with_capacity(400_000);
    for u in 1..=4000 {
        for j in 0..100 {
            let m = (u * 37 + j * 19) % 2000 + 1;
            ratings.push(Rating {
                user_id: u,
                movie_id: m,
                rating: f32::from(((u + j) % 10 + 1) as u8) / 2.0,
                timestamp: 1_600_000_000 + i64::from(u * 100 + j),
            });
        }
    }
    ratings.sort_by_key(|r| (r.user_id, r.movie_id));
    ratings.dedup_by_key(|r| (r.user_id, r.movie_id));
    let splits = common::splits_70_30(ratings.len());
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
}

/// A raw `POST /api/ratings` with the write token (and a key).
fn post_request(body: &str, key: Option<&str>) -> String {
    let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
    format!(
        "POST /api/ratings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         {key}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends a request and leaves the answer to [`answer`].
fn send(addr: std::net::SocketAddr, request: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    c
}

/// The status line of the answer on `c`.
fn answer(mut c: std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

/// The issue's repro: eight clients searching a genre (each search a heavy
/// read on today's main: a correlated count over the ratings of every
/// Drama) and, meanwhile, authorized POSTs. Every POST is answered within
/// 100 ms: searches no longer read ratings, and writes have connections
/// reads cannot take.
///
/// On SQLite the searches are heavy by the data (400,000 ratings), and the
/// eight clients search without pause until every POST is answered. On
/// PostgreSQL the reads are made as heavy as can be: another session holds
/// `ratings` and `model_metrics` locked, and eight `/api/models` join the
/// eight searches, so every read connection is stuck (seen in
/// `pg_stat_activity`) before each POST is sent.
fn heavy_reads_leave_a_write_under_100_ms(db: TestDb) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    match &db {
        TestDb::Sqlite(_) => load_large(db.store().as_mut()),
        TestDb::Pg(_) => drop(seeded(&db)),
    }
    let server = support::TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let search = get("/api/movies?genre=Drama&limit=100");
    server.wait_until("the catalogue", Duration::from_secs(60), |s| {
        s.get("/api/movies?genre=Drama&limit=100").status == 200
    });
    let post = post_request(r#"{"userId": 9001, "movieId": 2, "rating": 4.5}"#, None);
    // Warm: the first write opens its connection.
    assert!(answer(send(server.addr, &post)).contains("201"));
    let timed_post = || {
        let t = Instant::now();
        let status = answer(send(server.addr, &post));
        assert!(status.contains("201"), "{status}");
        t.elapsed()
    };
    let mut worst = Duration::ZERO;
    match &db {
        TestDb::Sqlite(_) => {
            let stop = AtomicBool::new(false);
            let answered = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..8 {
                    scope.spawn(|| {
                        while !stop.load(Ordering::SeqCst) {
                            let status = answer(send(server.addr, &search));
                            assert!(status.contains("200"), "{status}");
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
                // The searches run: some have been answered, more wait.
                let t = Instant::now();
                while answered.load(Ordering::SeqCst) < 8 {
                    assert!(t.elapsed() < Duration::from_secs(60), "no search answered");
                    std::thread::sleep(Duration::from_millis(5));
                }
                for _ in 0..5 {
                    worst = worst.max(timed_post());
                }
                stop.store(true, Ordering::SeqCst);
            });
        }
        TestDb::Pg(d) => {
            for _ in 0..3 {
                let lock = common::HeldLock::take(
                    &db,
                    "LOCK TABLE ratings, model_metrics IN ACCESS EXCLUSIVE MODE",
                );
                let mut reads: Vec<_> = (0..8).map(|_| send(server.addr, &search)).collect();
                reads.extend((0..8).map(|_| send(server.addr, &get("/api/models"))));
                let mut c = d.client();
                let t = Instant::now();
                loop {
                    let stuck: i64 = c
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity
                              WHERE datname = current_database() AND wait_event_type = 'Lock'",
                            &[],
                        )
                        .unwrap()
                        .get(0);
                    if stuck >= 4 {
                        break;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(30),
                        "reads never got stuck"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                worst = worst.max(timed_post());
                lock.release();
                for r in reads {
                    let status = answer(r);
                    assert!(status.contains("200"), "{status}");
                }
            }
        }
    }
    assert!(
        worst < Duration::from_millis(100),
        "a write behind eight heavy reads took {worst:?}"
    );
}

// --- item 6: a password with a space ---------------------------------------------

/// The issue's repro: a URL whose password holds a space connects (the test
/// cluster trusts every login) and `db status` prints where it is without
/// the password.
#[test]
fn db_status_hides_a_password_with_a_space() {
    let db = common::PgDb::new();
    let url = db.url.replacen(
        "postgres://postgres@",
        "postgres://postgres:top secret99@",
        1,
    );
    assert!(url.contains("top secret99"), "{url}");
    let out = cinematch(&url, &["db", "status"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("postgres:***@"), "{text}");
    assert!(!text.contains("secret99"), "{text}");
}

// --- item 7: archive-drift moves what it deletes ---------------------------------

/// The issue's repro: 40,000 alerts 0.5 ms apart around the cutoff
/// (`--older-than 1s`, straddling "now minus a second" by ten seconds either
/// way). Every alert ends up in exactly one of `drift_alerts` and
/// `drift_alerts_archive`, and those archived are exactly those deleted.
fn archive_drift_moves_exactly_what_it_deletes(db: TestDb) {
    let mut s = db.store();
    let insert = match &db {
        TestDb::Sqlite(_) => {
            "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 39999)
             INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered)
             SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 seconds',
                             printf('%+.4f seconds', (n - 20000) * 0.0005)),
                    'rating_mean', 0.1, 0.1, 0 FROM i"
        }
        TestDb::Pg(_) => {
            "INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered)
             SELECT (clock_timestamp() AT TIME ZONE 'UTC') - interval '1 second'
                    + (n - 20000) * interval '0.5 milliseconds', 'rating_mean', 0.1, 0.1, false
               FROM generate_series(0, 39999) n"
        }
    };
    exec(&db, insert);
    let moved = s.archive_drift_alerts(1).unwrap();
    let count = |sql: &str| {
        db.query_strings(&format!("SELECT CAST(({sql}) AS TEXT)"))[0]
            .parse::<u64>()
            .unwrap()
    };
    let kept = count("SELECT COUNT(*) FROM drift_alerts");
    let archived = count("SELECT COUNT(*) FROM drift_alerts_archive");
    assert_eq!(archived, moved);
    assert_eq!(kept + archived, 40_000, "{kept} kept, {archived} archived");
    assert!(moved > 1000 && kept > 1000, "{moved} moved, {kept} kept");
    assert_eq!(
        count("SELECT COUNT(*) FROM drift_alerts a JOIN drift_alerts_archive b ON a.id = b.id"),
        0
    );
}

// --- item 8: the smaller ones ---------------------------------------------------

const TOKEN: &str = "edges-write-token";

fn post_with(server: &support::TestServer, key: Option<&str>, body: &str) -> support::Resp {
    server.post_ratings(TOKEN, key, body)
}

/// Timestamps before 1970 or more than a day ahead of the clock are
/// refused, naming the field (the API) or the line (a batch file); an
/// hour ahead is fine. The same Idempotency-Key with the same ratings spelled
/// otherwise (`4` and `4.0`, `userId` and `user_id`, bare and in a list) is
/// a retry, answered again; with other ratings it is 422.
fn timestamps_and_idempotency_keys(db: TestDb) {
    let mut s = seeded(&db);
    let now = chrono::Utc::now().timestamp();
    let dir = tempfile::tempdir().unwrap();
    for (ts, says) in [
        (-99_999_999_999i64, "negative"),
        (now + 2 * 86_400, "ahead"),
    ] {
        let f = dir.path().join("late.csv");
        std::fs::write(
            &f,
            format!("userId,movieId,rating,timestamp\n1,1,4.0,1700000000\n1,2,4.0,{ts}\n"),
        )
        .unwrap();
        let err =
            cinematch::pipeline::ingest::ingest_file(s.as_mut(), &f, "late", Default::default())
                .unwrap_err()
                .to_string();
        assert!(err.contains("late.csv:3") && err.contains(says), "{err}");
    }
    assert!(s.buffer_ratings(None).unwrap().is_empty());

    let server = support::TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_until("the server answers", Duration::from_secs(60), |s| {
        s.get("/healthz").status == 200
    });
    for ts in [
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        "-1".to_string(),
        (now + 2 * 86_400).to_string(),
    ] {
        let body = format!(r#"{{"userId": 5, "movieId": 1, "rating": 4, "timestamp": {ts}}}"#);
        let r = post_with(&server, None, &body);
        assert_eq!(r.status, 422, "{ts}: {}", r.text());
        assert!(r.text().contains("timestamp"), "{}", r.text());
    }
    let body = format!(
        r#"{{"userId": 5, "movieId": 1, "rating": 4, "timestamp": {}}}"#,
        now + 3600
    );
    assert_eq!(post_with(&server, None, &body).status, 201);

    let first = post_with(
        &server,
        Some("k-18"),
        r#"{"userId": 6, "movieId": 2, "rating": 4}"#,
    );
    assert_eq!(first.status, 201, "{}", first.text());
    for same in [
        r#"{"userId": 6, "movieId": 2, "rating": 4.0}"#,
        r#"[{"user_id": 6, "movie_id": 2, "rating": 4.00}]"#,
    ] {
        let r = post_with(&server, Some("k-18"), same);
        assert_eq!(r.status, 201, "{same}: {}", r.text());
        assert_eq!(r.header("idempotent-replayed"), Some("true"), "{same}");
    }
    let other = post_with(
        &server,
        Some("k-18"),
        r#"{"userId": 6, "movieId": 2, "rating": 3.5}"#,
    );
    assert_eq!(other.status, 422, "{}", other.text());
    let of_6 = s
        .buffer_ratings(None)
        .unwrap()
        .iter()
        .filter(|r| r.user_id == 6)
        .count();
    assert_eq!(of_6, 1, "stored once");
}

/// Ends every other session on a PostgreSQL test database, as a restart or
/// a pooler recycling connections would; how many.
fn terminate_backends(db: &common::PgDb) -> usize {
    db.client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .len()
}

/// After every session of the server ended (as a PostgreSQL restart ends
/// them), the first `/readyz` already says the database answers.
#[test]
fn readyz_answers_at_once_after_the_sessions_end() {
    let pg = common::PgDb::new();
    let db = TestDb::Pg(pg);
    drop(seeded(&db));
    let server = support::TestServer::start(db.url(), |_| {});
    server.wait_ready();
    let TestDb::Pg(pg) = &db else { unreachable!() };
    assert!(terminate_backends(pg) > 0);
    let r = server.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["databaseReachable"], true);
}

/// A write whose connection fails at its commit (the server's sessions
/// ended while it was about to commit) is answered 503 saying that the
/// outcome is unknown and a retry may store it twice, recommending the key.
#[test]
fn a_write_whose_commit_fails_says_the_outcome_is_unknown() {
    let pg = common::PgDb::new();
    let db = TestDb::Pg(pg);
    drop(seeded(&db));
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("resume");
    let (mut child, addr, err) = serve_child(
        db.url(),
        &[
            ("CINEMATCH_FAILPOINT", "append:before_commit"),
            ("CINEMATCH_FAILPOINT_RESUME_FILE", resume.to_str().unwrap()),
        ],
    );
    let post = post_request(r#"{"userId": 7, "movieId": 3, "rating": 4.5}"#, None);
    let pending = send(addr, &post);
    let t = Instant::now();
    while !err
        .lock()
        .unwrap()
        .contains("failpoint append:before_commit reached")
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            err.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let TestDb::Pg(pg) = &db else { unreachable!() };
    assert!(terminate_backends(pg) > 0);
    std::fs::write(&resume, b"").unwrap();
    use std::io::Read;
    let mut c = pending;
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("unknown"), "{answer}");
    assert!(answer.contains("twice"), "{answer}");
    assert!(answer.contains("Idempotency-Key"), "{answer}");
}

/// A batch being ingested by a live process is never taken for an orphan,
/// whatever happens to its connection or how its database is named: on
/// PostgreSQL its session ends meanwhile (as a transaction-mode pooler or a
/// restart ends sessions), on SQLite the next ingestion opens the file
/// through another path (a symbolic link). Once its process is gone, the
/// next ingestion marks it interrupted at once.
fn a_live_ingestion_is_never_taken_for_an_orphan(db: TestDb) {
    let mut a = seeded(&db);
    a.begin_ingestion("held").unwrap();
    let other_url = match &db {
        TestDb::Pg(pg) => {
            assert!(terminate_backends(pg) > 0);
            db.url().to_string()
        }
        TestDb::Sqlite(d) => {
            let alias = d.dir.path().join("alias.db");
            std::os::unix::fs::symlink(d.path(), &alias).unwrap();
            format!("sqlite://{}", alias.display())
        }
    };
    let mut b = cinematch::store::open(&other_url).unwrap();
    b.begin_ingestion("other").unwrap();
    let held = ingestion_row(b.as_mut(), "held").unwrap();
    assert_eq!(
        held.status,
        Some(cinematch::IngestionStatus::InProgress),
        "{:?}",
        held.notes
    );
    b.fail_ingestion("other", "test").unwrap();

    // A process that died mid-batch: its batch is marked at the next one.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), WEEK1_CSV).unwrap();
    let mut killed = Paused::start(
        &other_url,
        &["ingest", f.path().to_str().unwrap(), "--batch-id", "killed"],
        "ingest:after_metadata_in_progress",
    );
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    b.begin_ingestion("next").unwrap();
    let row = ingestion_row(b.as_mut(), "killed").unwrap();
    assert_eq!(row.status, Some(cinematch::IngestionStatus::Failed));
    assert_eq!(
        row.notes.as_deref(),
        Some(cinematch::store::INTERRUPTED_NOTE)
    );
    assert_eq!(
        ingestion_row(b.as_mut(), "held").unwrap().status,
        Some(cinematch::IngestionStatus::InProgress)
    );
}

on_both_backends!(
    a_live_ingestion_is_never_taken_for_an_orphan,
    timestamps_and_idempotency_keys,
    archive_drift_moves_exactly_what_it_deletes,
    heavy_reads_leave_a_write_under_100_ms,
    a_replaced_dataset_keeps_neither_buffer_nor_gate,
    a_retrain_merges_only_the_ratings_it_trained_on,
    a_retrain_that_lost_its_lease_commits_nothing,
    inbox_collisions_and_changed_files_are_errors,
    inbox_links_and_bad_files_publish_nothing,
);

// --- the soak (scripts/bench/soak.sh; not part of the test command) -------------

/// API rating `n` of the soak has timestamp `SOAK_API_TS + n`; row `j` of
/// batch file `f` has `SOAK_FILE_TS + 1000 f + j`: every rating can be found
/// again, and told from the seed data's.
const SOAK_API_TS: i64 = 1_600_000_000;
const SOAK_FILE_TS: i64 = 1_650_000_000;

#[test]
#[ignore = "a soak of a minute or more: scripts/bench/soak.sh"]
fn soak_sqlite() {
    soak(TestDb::Sqlite(common::SqliteDb::new()));
}

#[test]
#[ignore = "a soak of a minute or more: scripts/bench/soak.sh"]
fn soak_postgres() {
    soak(TestDb::Pg(common::PgDb::new()));
}

/// `cinematch serve` on an ephemeral port: the child, its address, its log.
fn serve_child(
    url: &str,
    env: &[(&str, &str)],
) -> (Child, std::net::SocketAddr, Arc<Mutex<String>>) {
    let mut cmd = cinematch(
        url,
        &["serve", "--addr", "127.0.0.1:0", "--timeout-secs", "4"],
    );
    cmd.env("CINEMATCH_API_TOKEN", TOKEN)
        .envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let (err, _reader) = common::capture_stderr(&mut child);
    let t = Instant::now();
    loop {
        {
            let log = err.lock().unwrap();
            if let Some(at) = log.find("addr=Some(") {
                let addr = log[at + "addr=Some(".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect::<String>();
                if let Ok(addr) = addr.parse() {
                    drop(log);
                    return (child, addr, err);
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "serve did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One file delivered to the soak's inbox.
struct Delivered {
    name: String,
    batch: String,
    sha256: String,
    keys: Vec<(i32, i32, i64)>,
    at: chrono::NaiveDateTime,
}

/// What the clients and the delivery did.
#[derive(Default)]
struct SoakLog {
    /// (first rating's sequence number, ratings, when first sent).
    acked: Vec<(i64, i64, chrono::NaiveDateTime)>,
    attempts: u64,
    retries: u64,
    replayed: u64,
    files: Vec<Delivered>,
    retrains: Vec<i32>,
    scheduler_runs: u64,
}

/// Ratings through the API with retries (the server holds one write past
/// its client's patience), batch files through the
/// scheduler (some delivered twice, some with colliding stems or changed
/// content, one symbolic link) and `retrain` every two seconds, for
/// `SOAK_SECS` (60); then every acknowledged rating and every row of an
/// accepted file is stored exactly once, every refused file has an error
/// row, and every merge moved only ratings that were stored before the
/// buffer read of the retrain that merged them (and as many as it read).
fn soak(db: TestDb) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    drop(seeded(&db));
    let url = db.url().to_string();
    // The server holds its third write 1.5 s before the commit: its client
    // gives up after 1 s and resends with the same key.
    let (mut server, addr, _server_log) = serve_child(
        &url,
        &[
            ("CINEMATCH_FAILPOINT", "append:before_commit#3"),
            ("CINEMATCH_FAILPOINT_SLEEP_MS", "1500"),
        ],
    );
    let inbox = tempfile::tempdir().unwrap();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "TOKEN=soak-secret-never-published\n").unwrap();
    let stop = AtomicBool::new(false);
    let next_seq = AtomicI64::new(0);
    let log = Mutex::new(SoakLog::default());
    let started = Instant::now();
    const PER_REQUEST: i64 = 50;

    std::thread::scope(|scope| {
        // Clients: 50 ratings a request, each request with its own key,
        // resent with it after a timeout, an error or a 503 until answered.
        for _ in 0..4 {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let first = next_seq.fetch_add(PER_REQUEST, Ordering::SeqCst);
                    let body = serde_json::Value::Array(
                        (first..first + PER_REQUEST)
                            .map(|n| {
                                serde_json::json!({
                                    "userId": 100_000 + n % 5000,
                                    "movieId": 1 + n % 30,
                                    "rating": 0.5 * (1 + n % 10) as f64,
                                    "timestamp": SOAK_API_TS + n,
                                })
                            })
                            .collect(),
                    )
                    .to_string();
                    let request = post_request(&body, Some(&format!("soak-{first}")));
                    let sent = chrono::Utc::now().naive_utc();
                    let mut tries = 0u64;
                    let replayed = loop {
                        tries += 1;
                        let answer = std::net::TcpStream::connect(addr).and_then(|mut c| {
                            c.set_read_timeout(Some(Duration::from_secs(1)))?;
                            c.write_all(request.as_bytes())?;
                            let mut out = String::new();
                            c.read_to_string(&mut out)?;
                            Ok(out)
                        });
                        match answer {
                            Ok(a) if a.starts_with("HTTP/1.1 201") => {
                                break a.to_ascii_lowercase().contains("idempotent-replayed: true");
                            }
                            Ok(a)
                                if a.starts_with("HTTP/1.1 503")
                                    || a.starts_with("HTTP/1.1 408") => {}
                            Ok(a) => panic!("unexpected answer: {a}"),
                            Err(_) => {}
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    let mut l = log.lock().unwrap();
                    l.acked.push((first, PER_REQUEST, sent));
                    l.attempts += tries;
                    l.retries += tries - 1;
                    l.replayed += u64::from(replayed);
                }
            });
        }
        // Deliveries: write-then-rename, one every 300 ms.
        scope.spawn(|| {
            let deliver = |name: &str, rows: &[(i32, i32, i64)], rating: f32| -> Delivered {
                let mut csv = String::from("userId,movieId,rating,timestamp\n");
                for (u, m, t) in rows {
                    csv.push_str(&format!("{u},{m},{rating:.1},{t}\n"));
                }
                let part = inbox.path().join(format!(".{name}.part"));
                std::fs::write(&part, &csv).unwrap();
                let at = chrono::Utc::now().naive_utc();
                std::fs::rename(&part, inbox.path().join(name)).unwrap();
                Delivered {
                    name: name.to_string(),
                    batch: name.rsplit_once('.').unwrap().0.to_string(),
                    sha256: cinematch::pipeline::ingest::request_hash(csv.as_bytes()),
                    keys: rows.to_vec(),
                    at,
                }
            };
            let rows = |f: i64, shift: i64| -> Vec<(i32, i32, i64)> {
                (0..20)
                    .map(|j| {
                        (
                            200_000 + f as i32,
                            1 + j as i32,
                            SOAK_FILE_TS + 1000 * f + j + shift,
                        )
                    })
                    .collect()
            };
            // Waits (up to 30 s) until a batch completed, so that what is
            // delivered next under its name is a second delivery.
            let mut watcher = db.store();
            let mut taken = |batch: &str| -> bool {
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(30) && !stop.load(Ordering::SeqCst) {
                    let done = watcher.ingestions().unwrap().iter().any(|i| {
                        i.batch_id == batch
                            && i.status == Some(cinematch::IngestionStatus::Completed)
                    });
                    if done {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                false
            };
            let mut f = 0i64;
            let mut linked = false;
            while !stop.load(Ordering::SeqCst) {
                let delivered: Vec<Delivered> = match f % 10 {
                    // The same file again, once its first delivery went in.
                    6 => {
                        let mut both = vec![deliver(&format!("f{f}.csv"), &rows(f, 0), 4.0)];
                        if taken(&format!("f{f}")) {
                            both.push(deliver(&format!("f{f}.csv"), &rows(f, 0), 4.0));
                        }
                        both
                    }
                    // Two files, one stem.
                    7 => vec![
                        deliver(&format!("c{f}.tsv"), &rows(f, 500), 3.0),
                        deliver(&format!("c{f}.csv"), &rows(f, 0), 3.0),
                    ],
                    // A corrected file under the same name, later.
                    8 => {
                        let mut both = vec![deliver(&format!("f{f}.csv"), &rows(f, 0), 2.0)];
                        if taken(&format!("f{f}")) {
                            both.push(deliver(&format!("f{f}.csv"), &rows(f, 500), 2.5));
                        }
                        both
                    }
                    9 if !linked => {
                        linked = true;
                        std::os::unix::fs::symlink(secret.path(), inbox.path().join("link.csv"))
                            .unwrap();
                        vec![Delivered {
                            name: "link.csv".into(),
                            batch: "link".into(),
                            sha256: String::new(),
                            keys: Vec::new(),
                            at: chrono::Utc::now().naive_utc(),
                        }]
                    }
                    _ => vec![deliver(&format!("f{f}.csv"), &rows(f, 0), 3.5)],
                };
                log.lock().unwrap().files.extend(delivered);
                f += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        // The scheduler, one pass every half second.
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let _ = scheduler_once(&db, inbox.path());
                log.lock().unwrap().scheduler_runs += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // Retrains every two seconds.
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let out = cinematch(&url, &["-q", "retrain"]).output().unwrap();
                let code = out.status.code().unwrap_or(-1);
                assert!(
                    [0, 4, 75].contains(&code),
                    "retrain: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                log.lock().unwrap().retrains.push(code);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        while started.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::SeqCst);
    });
    // The last files and a last retrain.
    let _ = scheduler_once(&db, inbox.path());
    let last = cinematch(&url, &["-q", "retrain"]).output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let posting = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    let log = log.into_inner().unwrap();

    // Where every rating of the soak is: (key) -> (place, merge time).
    let mut s = db.store();
    let merged_rows = db.query_strings(&format!(
        "SELECT userid || ',' || movieid || ',' || timestamp || ',' || loaded_at \
           FROM ratings WHERE timestamp >= {SOAK_API_TS}"
    ));
    let mut seen: std::collections::HashMap<(i32, i32, i64), u32> = Default::default();
    let mut groups: std::collections::BTreeMap<String, Vec<(i32, i32, i64)>> = Default::default();
    for row in &merged_rows {
        let p: Vec<&str> = row.splitn(4, ',').collect();
        let k = (
            p[0].parse().unwrap(),
            p[1].parse().unwrap(),
            p[2].parse().unwrap(),
        );
        *seen.entry(k).or_default() += 1;
        groups.entry(p[3].to_string()).or_default().push(k);
    }
    let buffered = s.buffer_ratings(None).unwrap();
    for r in buffered.iter().filter(|r| r.timestamp >= SOAK_API_TS) {
        *seen
            .entry((r.user_id, r.movie_id, r.timestamp))
            .or_default() += 1;
    }

    // Every acknowledged API rating, exactly once.
    let mut sent_at: std::collections::HashMap<(i32, i32, i64), chrono::NaiveDateTime> =
        Default::default();
    let mut api_ratings = 0;
    for (first, n, at) in &log.acked {
        for seq in *first..first + n {
            let k = (
                100_000 + (seq % 5000) as i32,
                1 + (seq % 30) as i32,
                SOAK_API_TS + seq,
            );
            assert_eq!(seen.get(&k), Some(&1), "API rating {seq}");
            sent_at.insert(k, *at);
            api_ratings += 1;
        }
    }
    // Every file: accepted (its batch completed with its digest) and stored
    // once, or refused with an error row and stored nowhere.
    let rows = s.ingestions().unwrap();
    let runs = s.pipeline_runs().unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for d in &log.files {
        let completed = rows.iter().any(|i| {
            i.batch_id == d.batch
                && i.status == Some(cinematch::IngestionStatus::Completed)
                && i.notes.as_deref().is_some_and(|n| n.contains(&d.sha256))
                && !d.sha256.is_empty()
        });
        if completed {
            accepted += 1;
            for k in &d.keys {
                assert_eq!(seen.get(k), Some(&1), "{}: row {k:?}", d.name);
                sent_at.entry(*k).or_insert(d.at);
            }
        } else {
            refused += 1;
            let error_row = runs.iter().any(|r| {
                r.batch_id.as_deref() == Some(d.batch.as_str())
                    && r.status == cinematch::PipelineStatus::Failed
            }) || rows.iter().any(|i| {
                i.batch_id == d.batch && i.status == cinematch::IngestionStatus::Failed.into()
            });
            assert!(error_row, "refused {} has no error row", d.name);
            for k in &d.keys {
                assert!(
                    !seen.contains_key(k) || sent_at.contains_key(k),
                    "{}: {k:?}",
                    d.name
                );
            }
        }
    }
    let expected: usize = sent_at.len();
    assert_eq!(
        seen.len(),
        expected,
        "nothing stored that was not sent and accepted"
    );
    assert!(
        !rows
            .iter()
            .any(|i| i.notes.as_deref().unwrap_or("").contains("soak-secret")),
        "the link's target was never read"
    );

    // Every merge: the ratings one retrain read, stored before its read.
    let merges: Vec<RunNotes> = s
        .model_runs()
        .unwrap()
        .into_iter()
        .filter_map(|r| RunNotes::parse(r.notes.as_deref()))
        .filter(|n| n.kind.as_deref() == Some("retrain") && n.buffer_ratings.unwrap_or(0) > 0)
        .collect();
    assert_eq!(
        merges.len(),
        groups.len(),
        "one merge per retrain that read ratings"
    );
    let mut merged = 0;
    for (notes, (_, keys)) in merges.iter().zip(&groups) {
        assert_eq!(notes.buffer_ratings, Some(keys.len() as u64));
        let through = chrono::NaiveDateTime::parse_from_str(
            notes.buffer_through.as_deref().unwrap(),
            "%Y-%m-%d %H:%M:%S%.f",
        )
        .unwrap();
        for k in keys {
            let at = sent_at[k];
            assert!(
                at <= through,
                "{k:?} sent at {at}, merged by a read through {through}"
            );
        }
        merged += keys.len();
    }
    let retrained = log.retrains.iter().filter(|c| **c == 0).count();
    let busy = log.retrains.iter().filter(|c| **c == 75).count();
    println!(
        "soak on {}: {:.0} s; {api_ratings} API ratings in {} requests ({} attempts, {} retries, \
         {} replayed); {} files delivered ({accepted} accepted, {refused} refused) by {} \
         scheduler passes; {} retrains ({retrained} done, {busy} busy), {} merges moving \
         {merged} ratings; {} still buffered; every rating stored once",
        if matches!(db, TestDb::Pg(_)) {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        posting.as_secs_f64(),
        log.acked.len(),
        log.attempts,
        log.retries,
        log.replayed,
        log.files.len(),
        log.scheduler_runs,
        log.retrains.len() + 1,
        groups.len(),
        buffered.len(),
    );
}
