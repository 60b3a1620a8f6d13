//! Test fixtures: a fresh PostgreSQL database or SQLite file per test, so
//! tests run in parallel without sharing state, and the shared MovieLens data.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use cinematch::store::{self, Store};

mod shared;
pub use shared::shared_dir;

/// The throwaway cluster `scripts/test.sh` starts. Tests refuse to run
/// without it rather than silently skipping PostgreSQL.
pub fn pg_admin_url() -> String {
    std::env::var("CINEMATCH_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "CINEMATCH_TEST_PG is not set: run the tests with ./scripts/test.sh, which starts \
             a throwaway PostgreSQL, or point CINEMATCH_TEST_PG at a superuser URL of a test cluster"
        )
    })
}

/// A PostgreSQL database that exists for one test and is dropped after it.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub fn new() -> PgDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cm_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = pg_admin_url();
        let mut c =
            postgres::Client::connect(&admin, postgres::NoTls).expect("connect to test cluster");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{}", &admin[..i], name),
            None => panic!("CINEMATCH_TEST_PG has no database part: {admin}"),
        };
        PgDb { url, name }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test database")
    }

    pub fn store(&self) -> Box<dyn Store> {
        store::open(&self.url).expect("open PostgreSQL store")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A SQLite file in its own temporary directory.
pub struct SqliteDb {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> SqliteDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("cinematch.db").display());
        SqliteDb { dir, url }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("cinematch.db")
    }

    pub fn store(&self) -> Box<dyn Store> {
        store::open(&self.url).expect("open SQLite store")
    }

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path()).expect("open sqlite file")
    }
}

/// Either backend, for the conformance suite.
pub enum TestDb {
    Pg(PgDb),
    Sqlite(SqliteDb),
}

impl TestDb {
    pub fn url(&self) -> &str {
        match self {
            TestDb::Pg(d) => &d.url,
            TestDb::Sqlite(d) => &d.url,
        }
    }

    pub fn store(&self) -> Box<dyn Store> {
        match self {
            TestDb::Pg(d) => d.store(),
            TestDb::Sqlite(d) => d.store(),
        }
    }

    /// The first column of every row of `sql`, as text, straight from the
    /// database (not through the store), so tests can check what an analyst
    /// querying the tables would see.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        match self {
            TestDb::Pg(d) => d
                .client()
                .query(&format!("SELECT x::text FROM ({sql}) q(x)"), &[])
                .expect("query")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
            TestDb::Sqlite(d) => {
                let c = d.conn();
                let mut stmt = c.prepare(sql).expect("prepare");
                stmt.query_map([], |r| r.get::<_, String>(0))
                    .expect("query")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("rows")
            }
        }
    }
}

/// Holds a lock another session took until released: SQLite's write lock
/// (an IMMEDIATE transaction with a write in it; readers go on, writers
/// wait), or on PostgreSQL the table locks of `pg_lock` (e.g. `LOCK TABLE
/// ratings_buffer IN EXCLUSIVE MODE`, the repro) in an open
/// transaction.
pub enum HeldLock {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

impl HeldLock {
    pub fn take(db: &TestDb, pg_lock: &str) -> HeldLock {
        match db {
            TestDb::Sqlite(d) => {
                let c = d.conn();
                // Wait for a server's own short writes (opening a
                // connection checks the schema) rather than fail.
                c.busy_timeout(std::time::Duration::from_secs(30))
                    .expect("busy timeout");
                c.execute_batch(
                    "BEGIN IMMEDIATE; INSERT INTO drift_alerts (feature_name) VALUES ('lock');",
                )
                .expect("take the SQLite write lock");
                HeldLock::Sqlite(c)
            }
            TestDb::Pg(d) => {
                let mut c = d.client();
                c.batch_execute(&format!("BEGIN; {pg_lock};"))
                    .expect("lock the tables");
                HeldLock::Pg(c)
            }
        }
    }

    /// Ends the lock's transaction, writing nothing.
    pub fn release(self) {
        match self {
            HeldLock::Sqlite(c) => c.execute_batch("ROLLBACK").expect("release the lock"),
            HeldLock::Pg(mut c) => c.batch_execute("ROLLBACK").expect("release the lock"),
        }
    }
}

/// `data/NAME` of the shared folder ([`shared_dir`]).
pub fn shared_data(name: &str) -> PathBuf {
    let p = shared_dir().join("data").join(name);
    assert!(
        p.is_dir(),
        "test data {} is missing: the tests expect the shared MovieLens data next to the project",
        p.display()
    );
    p
}

/// Runs the same test body on both backends: the conformance suite's core.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::common::TestDb::Sqlite(super::common::SqliteDb::new())) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::common::TestDb::Pg(super::common::PgDb::new())) } )*
        }
    };
}

/// 40 users x 30 movies with a clear low-rank structure (even users like
/// even movies), 70/30 split: enough for a model to learn in milliseconds.
pub fn seed_low_rank(store: &mut dyn Store) {
    let movies: Vec<cinematch::Movie> = (1..=30)
        .map(|m| cinematch::Movie {
            movie_id: m,
            title: format!("cinematch::Movie {m} (2000)"),
            genres: if m % 2 == 0 {
                "Comedy".into()
            } else {
                "Drama|Thriller".into()
            },
            pca_features: None,
        })
        .collect();
    let mut ratings = Vec::new();
    for u in 1..=40 {
        for m in 1..=30 {
            if (u * 7 + m * 3) % 4 == 0 {
                continue;
            }
            let taste = if (u % 2 == 0) == (m % 2 == 0) {
                4.5
            } else {
                2.0
            };
            ratings.push(cinematch::Rating {
                user_id: u,
                movie_id: m,
                rating: taste,
                timestamp: (u * 100 + m) as i64,
            });
        }
    }
    let splits = splits_70_30(ratings.len());
    store
        .load_dataset(
            &movies,
            &ratings,
            &splits,
            false,
            &cinematch::progress::Silent,
        )
        .unwrap();
}

/// `cinematch --db URL ARGS` with nothing of the test's environment that
/// would change what it does (another database, a failpoint, a lease
/// length, MLflow).
pub fn cinematch_command(db: &str, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cinematch"));
    c.arg("--db").arg(db).args(args);
    for var in [
        "CINEMATCH_DB",
        "DATABASE_URL",
        "NEON_CONNECTION_STRING",
        "CINEMATCH_FAILPOINT",
        "CINEMATCH_FAILPOINT_SLEEP_MS",
        "CINEMATCH_FAILPOINT_RESUME_FILE",
        "CINEMATCH_LEASE_SECS",
        "CINEMATCH_LOG",
        "MLFLOW_TRACKING_URI",
    ] {
        c.env_remove(var);
    }
    c
}

/// Seven of every ten ratings train, the rest test, in order.
pub fn splits_70_30(n: usize) -> Vec<cinematch::Split> {
    (0..n)
        .map(|i| {
            if i % 10 < 7 {
                cinematch::Split::Train
            } else {
                cinematch::Split::Test
            }
        })
        .collect()
}

/// Collects a child's stderr as it arrives (a reader thread), so a test can
/// wait for a log line while the process runs. The reader ends at the end
/// of the stream: join it after the child exited to have every last line.
pub fn capture_stderr(
    child: &mut std::process::Child,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::Read;
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr piped");
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (log, reader)
}
