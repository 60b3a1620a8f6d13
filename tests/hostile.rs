//! Hostile strings through every text input, on both backends: quotes of
//! both kinds, `'; DROP TABLE ratings; --`, backslashes, NUL bytes, very long
//! strings, bytes that are not UTF-8, full-text syntax (`"`, `*`, `NEAR(`),
//! HTML. Each input gets either a correct result (the text stored and read
//! back exactly, found by search) or a clear error (exit code 1 and an
//! `error:` line from the CLI, a JSON 4xx from the API) and never a panic
//! or a 500; afterwards every table is intact (same tables, columns and row
//! counts, apart from what the accepted inputs legitimately added).
//!
//! Inputs covered: movie titles and genres in movie files, file and
//! directory names (also non-UTF-8 ones), batch ids (`ingest`, `pipeline
//! run`, `drift check --batch`, batch file names in a scheduler inbox),
//! model versions (`models show/promote`, `evaluate --model`), promotion
//! reasons, genre filters (`recommend --genre`), durations, thresholds,
//! training parameters, drift specs, cron expressions, database URLs; and
//! over HTTP the search (`q=`, `genre=`), path ids, numeric query
//! parameters, and `POST /api/ratings` bodies.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;

use cinematch::IngestionStatus;
use common::TestDb;
use support::TestServer;

/// Strings that break naive quoting, FTS query syntax or HTML.
const HOSTILE: &[&str] = &[
    "'",
    "\"",
    "''",
    "'; DROP TABLE ratings; --",
    "\"; DROP TABLE movies; --",
    "Robert'); DROP TABLE ratings;--",
    "x' OR '1'='1",
    "\\",
    "\\'; DELETE FROM movies; --",
    "%_%",
    "\"*",
    "NEAR(",
    "title:toy* OR genres:\"",
    "$$; DROP TABLE movies; $$",
    "<script>alert(1)</script>",
    "\u{202e}ünï😀 ✓",
];

/// The long string for arguments (Linux caps one argument at 128 KiB).
fn long_arg() -> String {
    "x'\"".repeat(30_000)
}

const TOKEN: &str = "hostile-test-token";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

fn cinematch_os(db: &str, args: &[OsString]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .arg("--db")
        .arg(db)
        .arg("-q")
        .args(args)
        .env_remove("CINEMATCH_DB")
        .env_remove("DATABASE_URL")
        .env_remove("NEON_CONNECTION_STRING")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run cinematch");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cinematch(db: &str, args: &[&str]) -> Run {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    cinematch_os(db, &args)
}

/// No panic, and either success or exit 1 with an `error:` message.
#[track_caller]
fn clear(what: &str, r: &Run) {
    assert!(
        !r.stderr.contains("panicked") && r.code != Some(101),
        "{what}: PANIC\n{}",
        r.stderr
    );
    match r.code {
        Some(0) => {}
        Some(1) | Some(2) => {
            // Log lines (warnings) may come first; the error line says what failed.
            let line = r
                .stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_else(|| panic!("{what}: failure without an error line: {:?}", r.stderr));
            assert!(line.len() > "error: ".len() + 5, "{what}: {line:?}");
        }
        other => panic!("{what}: exit {other:?}\n{}", r.stderr),
    }
}

#[track_caller]
fn fails(what: &str, r: &Run, mentions: &str) {
    clear(what, r);
    assert!(!r.ok(), "{what}: accepted\n{}", r.stdout);
    assert!(
        r.stderr.to_lowercase().contains(&mentions.to_lowercase()),
        "{what}: the error does not mention {mentions:?}: {}",
        r.stderr
    );
}

#[track_caller]
fn succeeds(what: &str, r: &Run) {
    clear(what, r);
    assert!(r.ok(), "{what}: failed: {}", r.stderr);
}

/// The schema (every table and column) and the row count of every table.
type Fingerprint = (Vec<String>, BTreeMap<String, i64>);

fn fingerprint(db: &TestDb) -> Fingerprint {
    let schema: Vec<String> = match db {
        TestDb::Pg(d) => d
            .client()
            .query(
                "SELECT table_name::text || '.' || column_name::text || ' ' || data_type::text
                   FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect(),
        TestDb::Sqlite(d) => {
            let c = d.conn();
            let mut s = c
                .prepare("SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY name")
                .unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
    };
    // `db archive-drift` creates drift_alerts_archive on first use, as the
    // spec's maintenance query does: that is not a change of the schema.
    let schema = schema
        .into_iter()
        .filter(|s| !s.contains("drift_alerts_archive"))
        .collect();
    let counts = db
        .store()
        .table_counts()
        .unwrap()
        .into_iter()
        .filter(|t| t.table != "drift_alerts_archive")
        .map(|t| (t.table, t.rows))
        .collect();
    (schema, counts)
}

fn csv_line(fields: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(fields).unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// Movies 1..=20 with plain titles, then one movie per hostile string (its
/// title, ids from 100), and one with a hostile genre. Returns the titles.
fn write_release(dir: &Path) -> BTreeMap<i32, String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut titles = BTreeMap::new();
    let mut movies = String::from("movieId,title,genres\n");
    let genres = ["Comedy", "Drama", "Action|Thriller", "Animation|Children"];
    for id in 1..=20 {
        let t = format!("Plain Movie {id} (1999)");
        movies.push_str(&csv_line(&[&id.to_string(), &t, genres[id as usize % 4]]));
        titles.insert(id, t);
    }
    for (i, h) in HOSTILE.iter().enumerate() {
        let id = 100 + i as i32;
        movies.push_str(&csv_line(&[&id.to_string(), h, "Comedy|Drama"]));
        titles.insert(id, h.to_string());
    }
    movies.push_str(&csv_line(&[
        "200",
        "Odd Genre (2001)",
        "Drama|Sci'Fi\"; DROP TABLE movies; --",
    ]));
    titles.insert(200, "Odd Genre (2001)".into());
    std::fs::write(dir.join("movies.csv"), movies).unwrap();

    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=40 {
        for &m in titles.keys() {
            if (u * 7 + m * 13) % 3 == 0 {
                let r = ((u + m) % 10 + 1) as f32 / 2.0;
                ratings.push_str(&format!("{u},{m},{r:.1},{}\n", 1_000_000 + u * 1000 + m));
            }
        }
    }
    std::fs::write(dir.join("ratings.csv"), ratings).unwrap();
    titles
}

/// A batch file of valid new ratings (users 41..=45).
fn write_batch(path: &Path) {
    let mut s = String::from("userId,movieId,rating,timestamp\n");
    for u in 41..=45 {
        for m in [1, 2, 3, 100, 105] {
            s.push_str(&format!("{u},{m},4.0,2000000\n"));
        }
    }
    std::fs::write(path, s).unwrap();
}

/// Loads the hostile release through the CLI, trains a model, and checks
/// every title was stored exactly. Returns the titles.
fn setup(db: &TestDb, dir: &Path) -> BTreeMap<i32, String> {
    let release = dir.join("release");
    let titles = write_release(&release);
    succeeds(
        "load the hostile titles",
        &cinematch(db.url(), &["load", release.to_str().unwrap()]),
    );
    succeeds(
        "train",
        &cinematch(db.url(), &["train", "--algo", "baseline", "--no-ranking"]),
    );
    let stored: BTreeMap<i32, String> = db
        .store()
        .movies()
        .unwrap()
        .into_iter()
        .map(|m| (m.movie_id, m.title))
        .collect();
    for (id, t) in &titles {
        assert_eq!(stored.get(id), Some(&t.trim().to_string()), "title of {id}");
    }
    let odd = db.store().movies_by_id(&[200]).unwrap();
    assert_eq!(odd[0].genres, "Drama|Sci'Fi\"; DROP TABLE movies; --");
    titles
}

fn movie_files_with_bad_text(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    setup(&db, dir.path());
    let before = fingerprint(&db);
    let ratings = "userId,movieId,rating,timestamp\n1,1,4.0,1\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a 1 MB title",
            format!("movieId,title,genres\n1,{},Drama\n", "x'".repeat(500_000)).into_bytes(),
            "characters",
        ),
        (
            "a title that is not UTF-8",
            b"movieId,title,genres\n1,Caf\xe9 \xff\xfe (1999),Drama\n".to_vec(),
            "utf-8",
        ),
        (
            "a 1 MB genre list",
            format!(
                "movieId,title,genres\n1,Long Genres,{}\n",
                "Drama|".repeat(200_000)
            )
            .into_bytes(),
            "genres",
        ),
        (
            "a title with a NUL byte",
            b"movieId,title,genres\n1,Nul\x00Title (1999),Drama\n".to_vec(),
            "",
        ),
    ];
    for (what, movies, mentions) in cases {
        let sub = dir.path().join(what.replace(' ', "_"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("movies.csv"), &movies).unwrap();
        std::fs::write(sub.join("ratings.csv"), ratings).unwrap();
        let r = cinematch(db.url(), &["load", sub.to_str().unwrap(), "--replace"]);
        clear(what, &r);
        if what.contains("NUL") && r.ok() {
            // Accepted: then it must be stored exactly, and the dataset is
            // replaced; restore it for the rest of the test.
            let m = db.store().movies().unwrap();
            assert_eq!(m[0].title, "Nul\0Title (1999)");
            let release = dir.path().join("release");
            succeeds(
                "reload",
                &cinematch(db.url(), &["load", release.to_str().unwrap(), "--replace"]),
            );
            continue;
        }
        fails(what, &r, mentions);
        assert!(
            r.stderr.contains("movies.csv") || what.contains("NUL"),
            "{what}: the error does not name the file: {}",
            r.stderr
        );
        assert_eq!(fingerprint(&db).1, before.1, "{what} changed the data");
    }
    assert_eq!(fingerprint(&db), before);
}

fn cli_text_inputs(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    setup(&db, dir.path());
    let batch = dir.path().join("batch.csv");
    write_batch(&batch);
    let batch_s = batch.to_str().unwrap();
    let url = db.url();
    let before = fingerprint(&db);
    let champion = db.store().champion().unwrap().unwrap();

    let long = long_arg();
    let mut inputs: Vec<&str> = HOSTILE.to_vec();
    inputs.push(&long);
    let mut accepted_batches: Vec<String> = Vec::new();
    for (i, h) in inputs.iter().enumerate() {
        let label = |cmd: &str| format!("{cmd} with {:?}", h.chars().take(40).collect::<String>());

        // Batch ids: stored exactly when they fit VARCHAR(50), else refused.
        let r = cinematch(url, &["ingest", batch_s, "--batch-id", h]);
        clear(&label("ingest --batch-id"), &r);
        if h.chars().count() <= 50 {
            assert!(r.ok(), "{}: {}", label("ingest"), r.stderr);
            accepted_batches.push(h.to_string());
            let r = cinematch(url, &["drift", "check", "--batch", h]);
            succeeds(&label("drift check --batch"), &r);
            assert!(
                r.stdout.contains("compared 25 buffered ratings"),
                "{}",
                r.stdout
            );
        } else {
            fails(&label("ingest --batch-id"), &r, "longer than 50");
        }
        clear(
            &label("drift check --batch (unknown)"),
            &cinematch(url, &["drift", "check", "--batch", &format!("{h}-none")]),
        );

        // Model versions: unknown, said so.
        for args in [
            vec!["models", "show", h],
            vec!["models", "promote", h],
            vec!["evaluate", "--model", h],
        ] {
            fails(
                &label(&args[..2].join(" ")),
                &cinematch(url, &args),
                "model",
            );
        }
        // A promotion reason is free text: stored exactly.
        if i % 4 == 0 || h.len() > 1000 {
            succeeds(
                &label("models promote --reason"),
                &cinematch(url, &["models", "promote", &champion, "--reason", h]),
            );
            let p = db.store().promotions().unwrap();
            assert_eq!(p.last().unwrap().reason.as_deref(), Some(*h));
        }

        // Genre filters: a clear answer either way.
        clear(
            &label("recommend --genre"),
            &cinematch(url, &["recommend", "--user", "1", "--genre", h]),
        );
        // Durations, thresholds, parameters, drift specs, cron: refused.
        for args in [
            vec!["drift", "status", "--window", h],
            vec!["retrain", "--if-drift", "--window", h],
            vec!["db", "archive-drift", "--older-than", h],
        ] {
            fails(&label(args[1]), &cinematch(url, &args), "duration");
        }
        let kv = format!("{h}=1");
        let vk = format!("reg={h}");
        for args in [
            vec!["train", "--algo", "svd", "--param", &kv],
            vec!["train", "--algo", "svd", "--param", &vk],
            vec!["drift", "check", "--threshold", &kv],
            vec!["drift", "check", "--threshold", &vk],
            vec!["pipeline", "run", "--threshold", &kv],
        ] {
            let r = cinematch(url, &args);
            clear(&label(&args.join(" ")), &r);
            assert!(!r.ok(), "{}: accepted", label(&args.join(" ")));
        }
        let out = dir.path().join(format!("synth{i}"));
        let r = cinematch(
            url,
            &[
                "data",
                "synth",
                "--out",
                out.to_str().unwrap(),
                "--weeks",
                "1",
                "--drift-week",
                "1",
                "--drift",
                h,
            ],
        );
        clear(&label("data synth --drift"), &r);
        assert!(!r.ok());
        let r = cinematch(
            url,
            &[
                "scheduler",
                "--once",
                "--inbox",
                dir.path().to_str().unwrap(),
                "--cron",
                h,
            ],
        );
        fails(&label("scheduler --cron"), &r, "cron");
        // Paths that do not exist, named in the error.
        let missing = dir
            .path()
            .join(h.chars().take(100).collect::<String>().replace('/', "_"));
        let r = cinematch(url, &["load", missing.to_str().unwrap()]);
        clear(&label("load DIR"), &r);
        assert!(!r.ok());
        let r = cinematch(
            url,
            &["ingest", missing.to_str().unwrap(), "--batch-id", "nope"],
        );
        clear(&label("ingest FILE"), &r);
        assert!(!r.ok());
    }

    // Durations too large for 64 bits are refused, not an overflow panic.
    for d in [
        "999999999999999d",
        "9223372036854775807h",
        "99999999999999999999s",
    ] {
        for args in [
            vec!["drift", "status", "--window", d],
            vec!["db", "archive-drift", "--older-than", d],
            vec!["retrain", "--if-drift", "--window", d],
        ] {
            fails(&args.join(" "), &cinematch(url, &args), "duration");
        }
    }
    // Very large durations that fit: an answer or a clear error (PostgreSQL
    // says "timestamp out of range"), no panic.
    for args in [
        vec!["db", "archive-drift", "--older-than", "100000000d"],
        vec!["drift", "status", "--window", "100000000d"],
    ] {
        clear(&args.join(" "), &cinematch(url, &args));
    }

    // A pipeline run with a hostile batch id does the whole cycle.
    let r = cinematch(
        url,
        &[
            "pipeline",
            "run",
            "--batch",
            batch_s,
            "--batch-id",
            "p'; DROP TABLE ratings; --",
        ],
    );
    clear("pipeline run --batch-id", &r);
    accepted_batches.push("p'; DROP TABLE ratings; --".into());

    // Every accepted batch id is in the audit trail exactly, and the data
    // apart from the buffer (and what a retrain merged) is as before.
    let ids: Vec<String> = db
        .store()
        .ingestions()
        .unwrap()
        .into_iter()
        .map(|i| i.batch_id)
        .collect();
    for b in &accepted_batches {
        assert!(
            ids.contains(b),
            "batch id {b:?} not stored exactly: {ids:?}"
        );
    }
    let after = fingerprint(&db);
    assert_eq!(after.0, before.0, "the schema changed");
    assert_eq!(after.1["movies"], before.1["movies"]);
    let rows = |f: &Fingerprint| f.1["ratings"] + f.1["ratings_buffer"];
    assert_eq!(
        rows(&after),
        rows(&before) + 25 * accepted_batches.len() as i64,
        "every accepted rating is in ratings or the buffer, once"
    );
}

fn hostile_urls_and_file_names(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    setup(&db, dir.path());
    let before = fingerprint(&db);
    // Database URLs: refused with a clear message, no panic, no password shown.
    for h in HOSTILE {
        for url in [
            h.to_string(),
            format!("postgres://u:{h}@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"),
            format!("postgres://u:pw@127.0.0.1:1/{h}?connect_timeout=2"),
            format!("postgres://127.0.0.1:1/db?sslmode={h}"),
            format!("host={h} port=1 connect_timeout=2"),
        ] {
            let r = cinematch(&url, &["db", "status"]);
            clear(&format!("--db {url:?}"), &r);
            assert!(
                !r.ok() || !url.starts_with("postgres"),
                "{url}: {}",
                r.stdout
            );
        }
    }

    // Directory and file names with quotes, SQL and non-UTF-8 bytes load.
    let mut name = b"rel'; DROP TABLE ratings; -- \"\xff\xfe".to_vec();
    name.extend_from_slice("ü".as_bytes());
    let odd = dir.path().join(OsString::from_vec(name));
    std::fs::create_dir_all(&odd).unwrap();
    write_release(&odd);
    let ratings_name = odd.join(OsString::from_vec(b"r\xffatings'.csv".to_vec()));
    std::fs::rename(odd.join("ratings.csv"), &ratings_name).unwrap();
    let r = cinematch_os(
        db.url(),
        &[
            "load".into(),
            "--ratings".into(),
            ratings_name.clone().into_os_string(),
            "--movies".into(),
            odd.join("movies.csv").into_os_string(),
            "--replace".into(),
        ],
    );
    succeeds("load from non-UTF-8 file names", &r);
    assert_eq!(fingerprint(&db).1["movies"], before.1["movies"]);

    // A scheduler inbox whose file names (the batch ids) are hostile.
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut expected = Vec::new();
    for (i, h) in HOSTILE.iter().enumerate() {
        if h.contains('/') || h.contains('\\') {
            continue;
        }
        let stem = format!("b{i}{h}");
        write_batch(&inbox.join(format!("{stem}.csv")));
        expected.push(stem);
    }
    write_batch(&inbox.join(OsString::from_vec(b"not-utf8-\xff.csv".to_vec())));
    write_batch(&inbox.join(format!("{}.csv", "y".repeat(60))));
    let r = cinematch(
        db.url(),
        &[
            "scheduler",
            "--once",
            "--inbox",
            inbox.to_str().unwrap(),
            "--attempts",
            "1",
            "--backoff-secs",
            "0",
        ],
    );
    clear("scheduler --once with hostile file names", &r);
    let ids: Vec<String> = db
        .store()
        .ingestions()
        .unwrap()
        .into_iter()
        .filter(|i| i.status == Some(IngestionStatus::Completed))
        .map(|i| i.batch_id)
        .collect();
    for stem in &expected {
        assert!(ids.contains(stem), "inbox batch {stem:?} missing: {ids:?}");
    }
    let after = fingerprint(&db);
    assert_eq!(after.0, before.0, "the schema changed");
    assert_eq!(after.1["movies"], before.1["movies"]);
}

/// Percent-encodes every byte (so any byte, also NUL and non-UTF-8, can go
/// into a query string).
fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

#[track_caller]
fn not_500(what: &str, r: &support::Resp) {
    assert!(
        (200..500).contains(&r.status),
        "{what}: status {} {}",
        r.status,
        r.text()
    );
    if r.status >= 400 && r.status != 413 && r.status != 414 && r.status != 431 {
        let ct = r.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{what}: {ct}: {}",
            r.text()
        );
        let v = r.json();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {v}"
        );
    }
}

fn api_inputs(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let titles = setup(&db, dir.path());
    // A hostile batch id and drift notes for the dashboard to show.
    let batch = dir.path().join("batch.csv");
    write_batch(&batch);
    succeeds(
        "ingest",
        &cinematch(
            db.url(),
            &[
                "ingest",
                batch.to_str().unwrap(),
                "--batch-id",
                "<script>alert(1)</script>",
            ],
        ),
    );
    let before = fingerprint(&db);
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();

    // Searching for a hostile title finds that movie (when it has words).
    for (id, title) in &titles {
        let q = pct(title.as_bytes());
        let r = server.get(&format!("/api/movies?q={q}&limit=100"));
        not_500(&format!("search {title:?}"), &r);
        assert_eq!(r.status, 200, "{title:?}: {}", r.text());
        let found: Vec<i64> = r.json()["movies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["movieId"].as_i64().unwrap())
            .collect();
        // On both backends: PostgreSQL's title tsvector turns `<` and `>`
        // into spaces before its parser could take `<script>` for markup.
        if title.chars().any(char::is_alphanumeric) {
            assert!(
                found.contains(&i64::from(*id)),
                "searching {title:?} does not find movie {id}: {found:?}"
            );
        }
        let r = server.get(&format!("/api/movies/{id}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["title"], title.trim(), "movie {id} over JSON");
    }
    // The hostile genre is a genre like any other.
    let g = pct(b"Sci'Fi\"; DROP TABLE movies; --");
    let r = server.get(&format!("/api/movies?genre={g}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["movies"][0]["movieId"], 200);

    let long = pct("x'\"".repeat(3_000).as_bytes());
    let mut values: Vec<String> = HOSTILE.iter().map(|h| pct(h.as_bytes())).collect();
    values.extend([
        pct(b"\x00"),
        pct(b"a\x00b"),
        pct(b"\xff\xfe"),
        pct(b"\xc3"),
        long.clone(),
        "%".into(),
        "%zz".into(),
        "-1".into(),
        "0".into(),
        "99999999999999999999".into(),
        "1e3".into(),
        "NaN".into(),
    ]);
    for v in &values {
        let short: String = v.chars().take(40).collect();
        for path in [
            format!("/api/movies?q={v}"),
            format!("/api/movies?genre={v}"),
            format!("/api/movies?q=toy&genre={v}&limit={v}"),
            format!("/api/movies/{v}"),
            format!("/api/movies/{v}/similar?k={v}"),
            format!("/api/movies/1/similar?k={v}"),
            format!("/api/users/{v}/recommendations"),
            format!("/api/users/1/recommendations?k={v}&genre={v}"),
            format!("/api/users/{v}/ratings?limit={v}"),
            format!("/api/drift?days={v}"),
            format!("/?{v}"),
        ] {
            let r = server.get(&path);
            not_500(&format!("GET {}", path.replace(v.as_str(), &short)), &r);
        }
    }
    // A megabyte of query string: refused by the HTTP layer, not a 500.
    let r = server.get(&format!("/api/movies?q={}", "a".repeat(1 << 20)));
    not_500("a 1 MB query string", &r);

    // POST /api/ratings: hostile bodies are refused whole with a 4xx.
    let post = |body: &[u8], ct: &str| {
        support::http(
            server.addr,
            "POST",
            "/api/ratings",
            &[
                ("Content-Type", ct),
                ("Authorization", &format!("Bearer {TOKEN}")),
            ],
            body,
        )
    };
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for h in HOSTILE {
        let s = serde_json::to_string(h).unwrap();
        bodies.push(format!(r#"{{"userId": {s}, "movieId": 1, "rating": 4}}"#).into_bytes());
        bodies.push(format!(r#"{{"userId": 1, "movieId": 1, "rating": {s}}}"#).into_bytes());
        bodies.push(format!(r#"{{"userId": 1, "movieId": 1, "rating": 4, {s}: 1}}"#).into_bytes());
        bodies.push(
            format!(r#"[{{"userId": 1, "movieId": 1, "rating": 4, "timestamp": {s}}}]"#)
                .into_bytes(),
        );
        bodies.push(h.as_bytes().to_vec());
    }
    bodies.extend([
        br#"{"userId": 1, "movieId": 1, "rating": "4\u0000"}"#.to_vec(),
        b"{\"userId\": 1, \"movieId\": 1, \"rating\": 4, \"\xff\": 1}".to_vec(),
        b"\x00\x00\x00".to_vec(),
        b"\xff\xfe{}".to_vec(),
        "[".repeat(100_000).into_bytes(),
        format!(
            r#"{{"userId": 1, "movieId": 1, "rating": 4, "x": "{}"}}"#,
            "y".repeat(2 << 20)
        )
        .into_bytes(),
        br#"{"userId": 1e400, "movieId": 1, "rating": 4}"#.to_vec(),
        br#"{"userId": 99999999999999999999999, "movieId": 1, "rating": 4}"#.to_vec(),
        br#"{"userId": 1, "movieId": 1, "rating": 4.5, "timestamp": 1e300}"#.to_vec(),
        br#"[]"#.to_vec(),
        br#"null"#.to_vec(),
    ]);
    for body in &bodies {
        let what = format!(
            "POST {:?}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        let r = post(body, "application/json");
        not_500(&what, &r);
        assert!(r.status >= 400, "{what}: accepted: {}", r.text());
    }
    // A hostile Content-Type and Authorization header.
    for h in HOSTILE {
        let r = support::http(
            server.addr,
            "POST",
            "/api/ratings",
            &[
                ("Content-Type", h),
                ("Authorization", &format!("Bearer {h}")),
            ],
            br#"{"userId": 1, "movieId": 1, "rating": 4}"#,
        );
        not_500(&format!("headers {h:?}"), &r);
        assert!(r.status >= 400);
    }

    // The dashboard shows the hostile batch id escaped, never as markup.
    let page = server.get("/");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "unescaped batch id"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "batch id not shown"
    );
    drop(server);

    assert_eq!(
        fingerprint(&db),
        before,
        "a hostile request changed the data"
    );
}

on_both_backends!(
    movie_files_with_bad_text,
    cli_text_inputs,
    hostile_urls_and_file_names,
    api_inputs
);

/// `cinematch ... | head`: a reader that goes away is no reason to panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let db = TestDb::Sqlite(common::SqliteDb::new());
    let dir = tempfile::tempdir().unwrap();
    setup(&db, dir.path());
    for args in [
        vec!["db", "status"],
        vec![
            "data",
            "synth",
            "--out",
            dir.path().join("s").to_str().unwrap(),
            "--ratings",
            "2000",
        ],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cinematch"))
            .arg("--db")
            .arg(db.url())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is printed
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
    }
}
