//! The spec's access control ("Security & Access") on a real PostgreSQL:
//! `cinematch db roles` creates `analyst` and `ml_pipeline`, and tests log in
//! as each. `analyst` runs every query of the spec and is refused every
//! write; `ml_pipeline` runs the whole pipeline through the `cinematch`
//! binary but cannot drop, alter or create tables. Default privileges cover
//! tables added after the roles were made; re-running converges; SQLite says
//! roles are a PostgreSQL feature.
//!
//! Roles are cluster-wide while each test has its own database, so every
//! test uses the same two roles with the same passwords, and the tests that
//! compare password verifiers hold [`ROLES`] exclusively so no other `db roles` runs
//! meanwhile (every other run takes it shared). The main test cluster trusts every TCP login, so password
//! checks happen on the TLS cluster, whose logins need the password
//! (`CINEMATCH_TEST_PG_TLS`, started by scripts/test.sh).

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::RwLock;

use cinematch::store::roles::{quote_literal, Role};
use common::PgDb;
use postgres::error::SqlState;
use postgres::{Client, NoTls, SimpleQueryMessage};

/// Passwords with everything that breaks naive quoting: quotes of both
/// kinds, backslashes (also before a quote), SQL comment and statement
/// syntax, non-ASCII.
const ANALYST_PASSWORD: &str = "an'aly\\st \"pw\" \\'; DROP ROLE analyst; -- ü";
const PIPELINE_PASSWORD: &str = "ml\\'pipe''line $$ E'\\\\' %s ;--";

/// Every `db roles` run holds it shared; tests that must see no other run
/// (they compare password verifiers) hold it exclusively.
static ROLES: RwLock<()> = RwLock::new(());

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    ROLES.write().unwrap_or_else(|e| e.into_inner())
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_ok(self, what: &str) -> Run {
        assert!(
            self.ok,
            "{what} failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The `cinematch` binary with a clean environment: no database variables
/// and no role passwords unless `env` sets them.
fn cinematch(db: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cinematch"));
    cmd.arg("--db").arg(db).arg("-q").args(args);
    for var in [
        "CINEMATCH_DB",
        "DATABASE_URL",
        "NEON_CONNECTION_STRING",
        "CINEMATCH_ANALYST_PASSWORD",
        "CINEMATCH_ML_PIPELINE_PASSWORD",
        "MLFLOW_TRACKING_URI",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cinematch");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const PASSWORDS: &[(&str, &str)] = &[
    ("CINEMATCH_ANALYST_PASSWORD", ANALYST_PASSWORD),
    ("CINEMATCH_ML_PIPELINE_PASSWORD", PIPELINE_PASSWORD),
];

/// `db roles` on `admin_url` with the test passwords.
fn db_roles(admin_url: &str, extra: &[&str]) -> Run {
    let _shared = ROLES.read().unwrap_or_else(|e| e.into_inner());
    db_roles_unlocked(admin_url, extra)
}

fn db_roles_unlocked(admin_url: &str, extra: &[&str]) -> Run {
    let mut args = vec!["db", "roles"];
    args.extend_from_slice(extra);
    cinematch(admin_url, &args, PASSWORDS).expect_ok("db roles")
}

/// `url` logged in as `user` with `password` (percent-encoded).
fn as_user(url: &str, user: &str, password: &str) -> String {
    let mut u = url::Url::parse(url).expect("test URL");
    u.set_username(user).unwrap();
    u.set_password(Some(password)).unwrap();
    u.to_string()
}

fn analyst_url(db: &PgDb) -> String {
    as_user(&db.url, "analyst", ANALYST_PASSWORD)
}

fn pipeline_url(db: &PgDb) -> String {
    as_user(&db.url, "ml_pipeline", PIPELINE_PASSWORD)
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect as {url}: {e}"))
}

/// The statements of every ```sql block of the spec (as tests/schema.rs reads them).
fn spec_statements() -> Vec<String> {
    let p = common::shared_dir().join("spec/cinematch-schema.md");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    let mut in_sql = false;
    let mut buf = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```sql") {
            in_sql = true;
            continue;
        }
        if t.starts_with("```") && in_sql {
            in_sql = false;
            continue;
        }
        if in_sql {
            let code = line.find("--").map_or(line, |i| &line[..i]);
            buf.push_str(code);
            buf.push('\n');
            if code.trim_end().ends_with(';') {
                out.push(buf.trim().trim_end_matches(';').to_string());
                buf.clear();
            }
        }
    }
    out
}

/// Every table of the schema with its first column, for the write probes.
fn tables(c: &mut Client) -> BTreeMap<String, String> {
    c.query(
        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
           JOIN pg_tables t ON t.tablename = c.table_name AND t.schemaname = c.table_schema
          WHERE c.table_schema = 'public' AND c.ordinal_position = 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Row count of every table, and the columns (table, column, type) of every
/// table: what "intact" means.
type Fingerprint = (BTreeMap<String, i64>, Vec<(String, String, String)>);

fn fingerprint(c: &mut Client) -> Fingerprint {
    let mut counts = BTreeMap::new();
    for t in tables(c).keys() {
        let n: i64 = c
            .query_one(&format!("SELECT COUNT(*) FROM \"{t}\""), &[])
            .unwrap()
            .get(0);
        counts.insert(t.clone(), n);
    }
    let cols = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text
               FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    (counts, cols)
}

/// Asserts `sql` is refused for lack of privilege (not for some other reason).
#[track_caller]
fn refused(c: &mut Client, who: &str, sql: &str) {
    match c.batch_execute(sql) {
        Ok(()) => panic!("{who} was allowed: {sql}"),
        Err(e) => assert_eq!(
            e.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{who}: {sql} failed, but not for privileges: {e:?}"
        ),
    }
}

/// A small synthetic release with two weekly batches, the second drifted.
fn synth(dir: &Path) -> PathBuf {
    let out = dir.join("release");
    cinematch(
        "sqlite::memory:",
        &[
            "data",
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--users",
            "300",
            "--movies",
            "200",
            "--ratings",
            "20000",
            "--weeks",
            "2",
            "--weekly-ratings",
            "2000",
            "--drift-week",
            "2",
            "--drift",
            "mean:+0.6",
        ],
        &[],
    )
    .expect_ok("data synth");
    out
}

fn load_and_train(url: &str, dir: &Path) {
    cinematch(url, &["load", dir.to_str().unwrap()], &[]).expect_ok("load");
    cinematch(
        url,
        &[
            "train",
            "--algo",
            "svd",
            "--factors",
            "8",
            "--epochs",
            "3",
            "--no-ranking",
        ],
        &[],
    )
    .expect_ok("train");
}

#[test]
fn analyst_runs_every_spec_query_and_is_refused_every_write() {
    let db = PgDb::new();
    let tmp = tempfile::tempdir().unwrap();
    let release = synth(tmp.path());
    load_and_train(&db.url, &release);
    let batch = release.join("batches/batch_w1.csv");
    cinematch(
        &db.url,
        &["ingest", batch.to_str().unwrap(), "--batch-id", "w1"],
        &[],
    )
    .expect_ok("ingest");
    cinematch(&db.url, &["drift", "check"], &[]).expect_ok("drift check");
    let out = db_roles(&db.url, &[]);
    assert!(
        out.stdout.contains("role analyst (") && out.stdout.contains("SELECT on "),
        "{}",
        out.stdout
    );
    let mut admin = db.client();
    let before = fingerprint(&mut admin);

    let mut analyst = connect(&analyst_url(&db));
    let who: String = analyst
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(who, "analyst");
    // Every read-only query of the spec, as written: statistics, training,
    // monitoring and the analytics queries.
    let queries: Vec<String> = spec_statements()
        .into_iter()
        .filter(|s| s.starts_with("SELECT") || s.starts_with("WITH"))
        .collect();
    assert!(queries.len() >= 15, "found {} queries", queries.len());
    assert!(queries.iter().any(|q| q.contains("baseline_count")));
    assert!(queries.iter().any(|q| q.contains("num_ratings")));
    for q in &queries {
        let rows = analyst
            .simple_query(q)
            .unwrap_or_else(|e| panic!("analyst cannot run a spec query: {q}\n{e:?}"));
        if q.contains("num_ratings") {
            // The analytics query answers with data, not just without error.
            let n = rows
                .iter()
                .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                .count();
            assert_eq!(n, 10, "most popular movies: {q}");
        }
    }

    // Every write, on every table (the ones later migrations added too).
    let all = tables(&mut analyst);
    for t in [
        "ratings",
        "movies",
        "model_artifacts",
        "drift_alerts_archive",
    ] {
        assert!(all.contains_key(t), "{all:?}");
    }
    for (t, col) in &all {
        for sql in [
            format!("INSERT INTO \"{t}\" DEFAULT VALUES"),
            format!("INSERT INTO \"{t}\" SELECT * FROM \"{t}\" LIMIT 1"),
            format!("UPDATE \"{t}\" SET \"{col}\" = \"{col}\""),
            format!("DELETE FROM \"{t}\""),
            format!("TRUNCATE \"{t}\""),
            format!("DROP TABLE \"{t}\""),
            format!("ALTER TABLE \"{t}\" ADD COLUMN sneaky INTEGER"),
            format!("ALTER TABLE \"{t}\" RENAME TO \"{t}_old\""),
            format!("CREATE INDEX sneaky_idx ON \"{t}\" (\"{col}\")"),
            format!("LOCK TABLE \"{t}\" IN EXCLUSIVE MODE"),
        ] {
            let sql = if sql.starts_with("LOCK") {
                format!("BEGIN; {sql}; COMMIT")
            } else {
                sql
            };
            refused(&mut analyst, "analyst", &sql);
            let _ = analyst.batch_execute("ROLLBACK");
        }
    }
    refused(&mut analyst, "analyst", "CREATE TABLE sneaky (x INTEGER)");
    refused(
        &mut analyst,
        "analyst",
        "SELECT nextval('ingestion_metadata_id_seq')",
    );
    refused(&mut analyst, "analyst", "ALTER ROLE analyst CREATEDB");
    refused(&mut analyst, "analyst", "CREATE ROLE sneaky");

    // Through the CLI: reading works, writing fails with the server's reason.
    let url = analyst_url(&db);
    let status = cinematch(&url, &["db", "status"], &[]).expect_ok("db status as analyst");
    assert!(status.stdout.contains("analyst:***@"), "{}", status.stdout);
    assert!(!status.stdout.contains("DROP ROLE"), "password leaked");
    cinematch(&url, &["models", "list"], &[]).expect_ok("models list as analyst");
    cinematch(&url, &["recommend", "--user", "1"], &[]).expect_ok("recommend as analyst");
    let w2 = release.join("batches/batch_w2.csv");
    let r = cinematch(
        &url,
        &["ingest", w2.to_str().unwrap(), "--batch-id", "w2"],
        &[],
    );
    assert!(!r.ok, "analyst ingested: {}", r.stdout);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    assert!(!r.stderr.contains(ANALYST_PASSWORD), "{}", r.stderr);
    let r = cinematch(&url, &["buffer", "clear", "--batch", "w1"], &[]);
    assert!(
        !r.ok && r.stderr.contains("permission denied"),
        "{}",
        r.stderr
    );

    assert_eq!(
        fingerprint(&mut admin),
        before,
        "the analyst changed something"
    );
}

#[test]
fn ml_pipeline_runs_the_pipeline_through_the_cli_but_cannot_change_the_schema() {
    let db = PgDb::new();
    drop(db.store()); // the owner migrates; ml_pipeline never could
    db_roles(&db.url, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let release = synth(tmp.path());
    let url = pipeline_url(&db);
    let path = |p: &str| release.join(p).to_str().unwrap().to_string();

    // Every CineMatch command, connected as ml_pipeline.
    load_and_train(&url, &release);
    let r = cinematch(&url, &["load", &path("")], &[]);
    assert!(
        !r.ok && r.stderr.contains("--replace"),
        "second load: {}",
        r.stderr
    );
    cinematch(&url, &["load", &path(""), "--replace"], &[]).expect_ok("load --replace");
    cinematch(&url, &["train", "--algo", "baseline", "--no-ranking"], &[]).expect_ok("train");
    cinematch(
        &url,
        &["ingest", &path("batches/batch_w1.csv"), "--batch-id", "w1"],
        &[],
    )
    .expect_ok("ingest");
    cinematch(&url, &["drift", "check"], &[]).expect_ok("drift check");
    cinematch(&url, &["drift", "status"], &[]).expect_ok("drift status");
    let r = cinematch(&url, &["retrain"], &[]).expect_ok("retrain");
    assert!(
        r.stdout.contains("merged 2,000 buffered ratings"),
        "{}",
        r.stdout
    );
    let r = cinematch(
        &url,
        &[
            "pipeline",
            "run",
            "--batch",
            &path("batches/batch_w2.csv"),
            "--batch-id",
            "w2",
        ],
        &[],
    )
    .expect_ok("pipeline run");
    assert!(r.stdout.contains("succeeded"), "{}", r.stdout);
    cinematch(&url, &["pipeline", "history"], &[]).expect_ok("pipeline history");
    let list = cinematch(&url, &["models", "list"], &[]).expect_ok("models list");
    let first = list
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("run_") && w.ends_with("_v1"))
        .expect("the first model")
        .to_string();
    cinematch(&url, &["models", "show", &first], &[]).expect_ok("models show");
    cinematch(&url, &["models", "promote", &first], &[]).expect_ok("models promote");
    cinematch(&url, &["models", "rollback"], &[]).expect_ok("models rollback");
    cinematch(&url, &["evaluate"], &[]).expect_ok("evaluate");
    cinematch(
        &url,
        &["recommend", "--user", "1", "--genre", "Comedy"],
        &[],
    )
    .expect_ok("recommend");
    cinematch(&url, &["similar", "--movie", "1"], &[]).expect_ok("similar");
    cinematch(&url, &["buffer", "status"], &[]).expect_ok("buffer status");
    cinematch(&url, &["buffer", "merge"], &[]).expect_ok("buffer merge");
    cinematch(
        &url,
        &["ingest", &path("batches/batch_w1.csv"), "--batch-id", "w1b"],
        &[],
    )
    .expect_ok("ingest a batch to clear");
    cinematch(&url, &["buffer", "clear", "--batch", "w1b"], &[]).expect_ok("buffer clear --batch");
    cinematch(&url, &["buffer", "clear", "--yes"], &[]).expect_ok("buffer clear --yes");
    cinematch(&url, &["db", "migrate"], &[]).expect_ok("db migrate (up to date)");
    cinematch(&url, &["db", "status"], &[]).expect_ok("db status");
    cinematch(&url, &["db", "stats"], &[]).expect_ok("db stats");
    cinematch(&url, &["db", "archive-drift", "--older-than", "0s"], &[])
        .expect_ok("db archive-drift");

    // The API writes as ml_pipeline too.
    {
        let server = support::TestServer::start(&url, |c| c.api_token = Some("t0ken".into()));
        server.wait_ready();
        let r = server.post_json(
            "/api/ratings",
            Some("t0ken"),
            r#"{"userId": 1, "movieId": 1, "rating": 4.5}"#,
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }

    let mut admin = db.client();
    let n = |c: &mut Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        n(
            &mut admin,
            "SELECT COUNT(*) FROM ingestion_metadata WHERE status = 'completed'"
        ),
        3
    );
    assert_eq!(n(&mut admin, "SELECT COUNT(*) FROM ratings_buffer"), 1);
    assert_eq!(n(&mut admin, "SELECT COUNT(*) FROM ratings"), 24_000);
    assert!(n(&mut admin, "SELECT COUNT(*) FROM model_metrics") >= 4);
    assert!(n(&mut admin, "SELECT COUNT(*) FROM drift_alerts_archive") > 0);
    let owner: String = admin
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'drift_alerts_archive'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_ne!(owner, "ml_pipeline");

    // No schema changes.
    let before = fingerprint(&mut admin);
    let mut ml = connect(&url);
    let all = tables(&mut ml);
    for t in ["ratings", "movies", "model_artifacts", "pipeline_runs"] {
        assert!(all.contains_key(t), "ml_pipeline sees {t}: {all:?}");
    }
    for (t, col) in &all {
        refused(&mut ml, "ml_pipeline", &format!("DROP TABLE \"{t}\""));
        refused(
            &mut ml,
            "ml_pipeline",
            &format!("ALTER TABLE \"{t}\" ADD COLUMN sneaky INTEGER"),
        );
        refused(
            &mut ml,
            "ml_pipeline",
            &format!("ALTER TABLE \"{t}\" DROP COLUMN \"{col}\""),
        );
        refused(
            &mut ml,
            "ml_pipeline",
            &format!("CREATE INDEX sneaky_idx ON \"{t}\" (\"{col}\")"),
        );
    }
    refused(&mut ml, "ml_pipeline", "CREATE TABLE sneaky (x INTEGER)");
    refused(&mut ml, "ml_pipeline", "DROP INDEX idx_ratings_user");
    refused(
        &mut ml,
        "ml_pipeline",
        "ALTER SEQUENCE ingestion_metadata_id_seq RESTART",
    );
    refused(
        &mut ml,
        "ml_pipeline",
        "CREATE OR REPLACE FUNCTION round(double precision, integer) RETURNS numeric LANGUAGE sql AS 'SELECT 0::numeric'",
    );
    refused(&mut ml, "ml_pipeline", "ALTER ROLE ml_pipeline SUPERUSER");
    refused(&mut ml, "ml_pipeline", "CREATE ROLE sneaky");
    assert_eq!(fingerprint(&mut admin), before);
}

#[test]
fn default_privileges_cover_tables_added_later() {
    let db = PgDb::new();
    drop(db.store());
    db_roles(&db.url, &[]);
    // A later migration, run by the owner as migrations are: a table with a
    // SERIAL id (so a sequence) that did not exist when the roles were made.
    let mut admin = db.client();
    admin
        .batch_execute(
            "CREATE TABLE cinematch_later (id SERIAL PRIMARY KEY, note TEXT NOT NULL);
             INSERT INTO cinematch_later (note) VALUES ('by the owner')",
        )
        .unwrap();

    let mut ml = connect(&pipeline_url(&db));
    ml.batch_execute(
        "INSERT INTO cinematch_later (note) VALUES ('by the pipeline');
         UPDATE cinematch_later SET note = note || '!';
         DELETE FROM cinematch_later WHERE note LIKE 'by the owner%'",
    )
    .expect("ml_pipeline writes to a table added after db roles");
    let id: i32 = ml
        .query_one("SELECT id FROM cinematch_later", &[])
        .unwrap()
        .get(0);
    assert_eq!(id, 2, "the pipeline's insert drew from the sequence");
    refused(&mut ml, "ml_pipeline", "DROP TABLE cinematch_later");
    refused(
        &mut ml,
        "ml_pipeline",
        "ALTER TABLE cinematch_later ADD COLUMN x INTEGER",
    );

    let mut analyst = connect(&analyst_url(&db));
    let note: String = analyst
        .query_one("SELECT note FROM cinematch_later", &[])
        .expect("analyst reads a table added after db roles")
        .get(0);
    assert_eq!(note, "by the pipeline!");
    refused(
        &mut analyst,
        "analyst",
        "INSERT INTO cinematch_later (note) VALUES ('no')",
    );
    refused(&mut analyst, "analyst", "DELETE FROM cinematch_later");
    refused(
        &mut analyst,
        "analyst",
        "SELECT nextval('cinematch_later_id_seq')",
    );
}

/// The stored password verifier of a role.
fn verifier(c: &mut Client, role: &str) -> String {
    c.query_one(
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
        &[&role],
    )
    .unwrap()
    .get(0)
}

#[test]
fn db_roles_converges_keeps_passwords_on_request_and_never_stores_cleartext() {
    let _guard = exclusive();
    let db = PgDb::new();
    let out = db_roles_unlocked(&db.url, &[]);
    assert!(out.stdout.contains("password set"), "{}", out.stdout);
    assert!(!out.stdout.contains(ANALYST_PASSWORD) && !out.stderr.contains(ANALYST_PASSWORD));
    let mut admin = db.client();
    let v1 = verifier(&mut admin, "analyst");
    assert!(v1.starts_with("SCRAM-SHA-256$4096:"), "{v1}");
    assert!(!v1.contains("aly"), "cleartext stored: {v1}");

    // Privileges added by hand, and attributes the role must not have, are
    // taken back by the next run; --keep-passwords leaves the password.
    admin
        .batch_execute(
            "GRANT INSERT, DELETE ON ratings TO analyst;
             GRANT ALL ON movies TO ml_pipeline;
             ALTER ROLE analyst CREATEDB",
        )
        .unwrap();
    let out = cinematch(&db.url, &["db", "roles", "--keep-passwords"], &[])
        .expect_ok("db roles --keep-passwords");
    assert!(
        out.stdout
            .contains("role analyst (updated, password unchanged, now NOCREATEDB)"),
        "{}",
        out.stdout
    );
    assert_eq!(verifier(&mut admin, "analyst"), v1);
    let can = |c: &mut Client, role: &str, table: &str, privilege: &str| -> bool {
        c.query_one(
            "SELECT has_table_privilege($1, $2, $3)",
            &[&role, &table, &privilege],
        )
        .unwrap()
        .get(0)
    };
    assert!(!can(&mut admin, "analyst", "ratings", "INSERT"));
    assert!(!can(&mut admin, "analyst", "ratings", "DELETE"));
    assert!(can(&mut admin, "analyst", "ratings", "SELECT"));
    assert!(!can(&mut admin, "ml_pipeline", "movies", "REFERENCES"));
    assert!(!can(&mut admin, "ml_pipeline", "movies", "TRIGGER"));
    assert!(can(&mut admin, "ml_pipeline", "movies", "INSERT"));
    let createdb: bool = admin
        .query_one(
            "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'analyst'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!createdb);

    // A new password replaces the verifier.
    db_roles_unlocked(&db.url, &[]);
    assert_ne!(
        verifier(&mut admin, "analyst"),
        v1,
        "new salt, new verifier"
    );

    // No password and no terminal: a clear refusal naming the variable, and nothing changes.
    let before = verifier(&mut admin, "ml_pipeline");
    let r = cinematch(
        &db.url,
        &["db", "roles"],
        &[("CINEMATCH_ANALYST_PASSWORD", "x")],
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains("CINEMATCH_ML_PIPELINE_PASSWORD"),
        "{}",
        r.stderr
    );
    let r = cinematch(
        &db.url,
        &["db", "roles"],
        &[
            ("CINEMATCH_ANALYST_PASSWORD", ""),
            ("CINEMATCH_ML_PIPELINE_PASSWORD", "x"),
        ],
    );
    assert!(!r.ok && r.stderr.contains("empty"), "{}", r.stderr);
    assert_eq!(verifier(&mut admin, "ml_pipeline"), before);
    assert_eq!(verifier(&mut admin, "analyst").len(), v1.len());

    // Passwords are never taken from the command line.
    let r = cinematch(&db.url, &["db", "roles", "--password", "x"], PASSWORDS);
    assert!(!r.ok && r.stderr.contains("--password"), "{}", r.stderr);
}

#[test]
fn a_role_that_cannot_create_roles_gets_a_clear_refusal() {
    let db = PgDb::new();
    drop(db.store());
    db_roles(&db.url, &[]);
    let r = cinematch(&pipeline_url(&db), &["db", "roles"], PASSWORDS);
    assert!(!r.ok);
    assert!(r.stderr.contains("may not create roles"), "{}", r.stderr);
    assert!(!r.stderr.contains(PIPELINE_PASSWORD), "{}", r.stderr);
}

#[test]
fn db_roles_on_several_databases_at_once() {
    // Roles are cluster-wide: concurrent runs collide on the same catalog
    // rows, and each must still succeed.
    let dbs: Vec<PgDb> = (0..4).map(|_| PgDb::new()).collect();
    std::thread::scope(|s| {
        for db in &dbs {
            s.spawn(move || db_roles(&db.url, &[]));
        }
    });
    for db in &dbs {
        let mut a = connect(&analyst_url(db));
        a.query_one("SELECT COUNT(*) FROM ratings", &[]).unwrap();
    }
}

#[test]
fn db_roles_on_sqlite_says_roles_are_a_postgres_feature() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cinematch.db");
    let r = cinematch(
        &format!("sqlite://{}", file.display()),
        &["db", "roles"],
        PASSWORDS,
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains("roles are a PostgreSQL feature"),
        "{}",
        r.stderr
    );
    assert!(!file.exists(), "db roles created the SQLite file");
}

#[test]
fn quote_literal_round_trips_hostile_strings() {
    let db = PgDb::new();
    let mut c = db.client();
    let cases = [
        "",
        "plain",
        "it's",
        "''",
        "\\",
        "\\'",
        "'\\",
        "a\\'; DROP TABLE ratings; --",
        "E'\\x41'",
        "$$ $q$ \"quoted\"",
        "line\nbreak\ttab\r",
        "ünïcødé 😀",
        ANALYST_PASSWORD,
        PIPELINE_PASSWORD,
    ];
    for scs in ["on", "off"] {
        c.batch_execute(&format!("SET standard_conforming_strings = {scs}"))
            .unwrap();
        for s in cases {
            let lit = quote_literal(s).unwrap();
            let rows = c.simple_query(&format!("SELECT {lit} AS v")).unwrap();
            let got = rows
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get("v").map(str::to_string),
                    _ => None,
                })
                .unwrap();
            assert_eq!(got, s, "standard_conforming_strings={scs}, literal {lit}");
        }
    }
    assert!(quote_literal("nul\0byte").is_err());
}

/// On the TLS cluster, which checks passwords (SCRAM): the hostile
/// passwords log in exactly as given, and nothing else does.
#[test]
fn hostile_passwords_log_in_exactly_as_given() {
    let Ok(admin_url) = std::env::var("CINEMATCH_TEST_PG_TLS") else {
        panic!(
            "CINEMATCH_TEST_PG_TLS is not set: run the tests with ./scripts/test.sh, which starts \
             a PostgreSQL with TLS and password authentication"
        );
    };
    let name = format!(
        "cm_roles_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = cinematch::store::postgres::conn::connect(&admin_url).expect("TLS cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let db_url = {
        let mut u = url::Url::parse(&admin_url).unwrap();
        u.set_path(&name);
        u.to_string()
    };
    let result = std::panic::catch_unwind(|| {
        db_roles(&db_url, &[]);
        for role in Role::ALL {
            let pw = match role {
                Role::Analyst => ANALYST_PASSWORD,
                Role::MlPipeline => PIPELINE_PASSWORD,
            };
            let url = as_user(&db_url, role.name(), pw);
            let mut c = cinematch::store::postgres::conn::connect(&url)
                .unwrap_or_else(|e| panic!("{role} cannot log in with its password: {e}"));
            let who: String = c
                .query_one("SELECT current_user::text", &[])
                .unwrap()
                .get(0);
            assert_eq!(who, role.name());
            let near_misses = [
                String::new(),
                "x".to_string(),
                pw.replace('\\', ""),
                pw.replace('\'', "''"),
                pw.replace("''", "'"),
                format!("{pw} "),
            ];
            for wrong in near_misses.iter().filter(|w| w.as_str() != pw) {
                let url = as_user(&db_url, role.name(), wrong);
                let err = match cinematch::store::postgres::conn::connect(&url) {
                    Ok(_) => panic!("{role} logged in with {wrong:?}"),
                    Err(e) => e.to_string(),
                };
                assert!(
                    err.contains("password authentication failed")
                        || err.contains("password missing"),
                    "{err}"
                );
                assert!(wrong.len() < 3 || !err.contains(wrong.as_str()), "{err}");
            }
        }
        // The CLI as ml_pipeline, password in the URL: works, and the
        // password shows nowhere.
        let url = as_user(&db_url, "ml_pipeline", PIPELINE_PASSWORD);
        let r = cinematch(&url, &["db", "status"], &[]).expect_ok("db status as ml_pipeline");
        assert!(r.stdout.contains("ml_pipeline:***@"), "{}", r.stdout);
        for secret in [PIPELINE_PASSWORD, "pipe''line"] {
            assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
        }
    });
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
