//! Two `cinematch serve` processes on one database (issue 10, item 11;
//! issue 12, item 5), on PostgreSQL and on a SQLite file: a rating posted
//! to one is excluded by the other within the reload interval; a retry
//! with the same Idempotency-Key sent to the other server stores nothing;
//! a buffer merge without a promotion makes both reload their rated sets;
//! new movies appear without a new champion; and no movie a user rated, in
//! any split, the buffer or a moment ago, comes back in their list on
//! either server.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinematch::store::Store;
use cinematch::{Movie, Rating, Split};
use common::TestDb;
use serde_json::{json, Value};
use support::{http, load_small, train, Resp};

const TOKEN: &str = "fleet-test-token";
/// Generous bounds for shared CI machines; never a measured duration.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// `cinematch serve` as a child process on an ephemeral port, killed on drop.
struct Serve {
    child: Child,
    log: Arc<Mutex<String>>,
    addr: SocketAddr,
}

impl Serve {
    fn start(db_url: &str) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cinematch"))
            .args(["--db", db_url, "serve", "--addr", "127.0.0.1:0"])
            .args(["--reload-secs", "1", "--timeout-secs", "10"])
            .env("CINEMATCH_API_TOKEN", TOKEN)
            .env_remove("CINEMATCH_LOG")
            .env_remove("CINEMATCH_READ_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cinematch serve");
        let (log, _reader) = common::capture_stderr(&mut child);
        let start = Instant::now();
        let addr = loop {
            let text = log.lock().unwrap().clone();
            // "serving addr=Some(127.0.0.1:PORT) ..."
            if let Some(at) = text.find("addr=Some(") {
                let rest = &text[at + "addr=Some(".len()..];
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                if let Ok(a) = addr.parse() {
                    break a;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("cinematch serve exited ({status}):\n{text}");
            }
            assert!(start.elapsed() < STEP_TIMEOUT, "no address logged:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let s = Serve { child, log, addr };
        s.wait("ready", |s| s.get("/readyz").status == 200);
        s
    }

    fn get(&self, path: &str) -> Resp {
        http(self.addr, "GET", path, &[], b"")
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    fn post(&self, key: Option<&str>, body: &str) -> Resp {
        support::post_ratings(self.addr, TOKEN, key, body)
    }

    fn recs(&self, user: i32) -> Vec<i32> {
        self.json(&format!("/api/users/{user}/recommendations?k=50"))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["movieId"].as_i64().unwrap() as i32)
            .collect()
    }

    fn reloads(&self) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix("cinematch_model_reloads_total "))
            .unwrap_or_else(|| panic!("no reload count:\n{text}"))
            .parse()
            .unwrap()
    }

    fn wait(&self, what: &str, ok: impl Fn(&Serve) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "{} waiting for {what}; log:\n{}",
                self.addr,
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every movie `user` rated, in any split or the buffer.
fn rated(store: &mut dyn Store, user: i32) -> HashSet<i32> {
    store
        .user_ratings(user)
        .unwrap()
        .iter()
        .map(|r| r.movie_id)
        .collect()
}

#[track_caller]
fn assert_none_rated(server: &Serve, store: &mut dyn Store, user: i32) {
    let rated = rated(store, user);
    let back: Vec<i32> = server
        .recs(user)
        .into_iter()
        .filter(|m| rated.contains(m))
        .collect();
    assert!(
        back.is_empty(),
        "{}: user {user} was recommended movies they rated: {back:?}",
        server.addr
    );
}

fn two_servers_one_database(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let champion = train(store.as_mut(), 1);
    let a = Serve::start(db.url());
    let b = Serve::start(db.url());

    // A rating posted to A: excluded by A at once, by B within its interval.
    let m = b.recs(1)[0];
    let body = json!({"userId": 1, "movieId": m, "rating": 2.5}).to_string();
    let r = a.post(None, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!a.recs(1).contains(&m), "A recommends what was just rated");
    b.wait("B to exclude a rating posted to A", |b| {
        !b.recs(1).contains(&m)
    });

    // The same Idempotency-Key sent to the other server: the first answer,
    // nothing stored twice.
    let user = 930_001;
    let body = json!([
        {"userId": user, "movieId": 1, "rating": 5},
        {"userId": user, "movieId": 2, "rating": 4}
    ])
    .to_string();
    let first = a.post(Some("fleet-key"), &body);
    assert_eq!(first.status, 201, "{}", first.text());
    let again = b.post(Some("fleet-key"), &body);
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(rated(store.as_mut(), user).len(), 2);
    assert_eq!(
        store
            .buffer_ratings(None)
            .unwrap()
            .iter()
            .filter(|r| r.user_id == user)
            .count(),
        2
    );
    b.wait("B to exclude the keyed ratings", |b| {
        !b.recs(user).iter().any(|m| *m == 1 || *m == 2)
    });

    // A rating buffered and merged at once by another process (a retrain,
    // `buffer merge`), with no new champion: both servers reload the rated
    // sets, and the movie stays out.
    let before = (a.reloads(), b.reloads());
    let m2 = b.recs(2)[0];
    store
        .append_to_batch(
            "fleet_batch",
            &[Rating {
                user_id: 2,
                movie_id: m2,
                rating: 1.0,
                timestamp: 1_700_000_000,
            }],
        )
        .unwrap();
    assert!(store.merge_buffer().unwrap() > 0);
    for (s, n) in [(&a, before.0), (&b, before.1)] {
        s.wait("a reload after the merge", |s| s.reloads() > n);
        assert!(
            !s.recs(2).contains(&m2),
            "{}: merged rating recommended",
            s.addr
        );
        let status = s.json("/api/status");
        assert_eq!(status["serving"]["modelVersion"], champion.as_str());
    }

    // New movies without a new champion: the dataset reloaded with one
    // more movie appears on both servers.
    let mut movies: Vec<Movie> = store.movies().unwrap();
    movies.push(Movie {
        movie_id: 990_001,
        title: "A Brand New Movie (2031)".into(),
        genres: "Documentary".into(),
        pca_features: None,
    });
    let mut ratings = Vec::new();
    let mut splits = Vec::new();
    for split in [Split::Train, Split::Test] {
        for r in store.ratings(split).unwrap() {
            ratings.push(r);
            splits.push(split);
        }
    }
    store
        .load_dataset(
            &movies,
            &ratings,
            &splits,
            true,
            &cinematch::progress::Silent,
        )
        .unwrap();
    for s in [&a, &b] {
        s.wait("the new movie", |s| {
            s.get("/api/movies/990001").status == 200
        });
        assert_eq!(
            s.json("/api/movies/990001")["title"],
            "A Brand New Movie (2031)"
        );
        assert_eq!(
            s.json("/api/status")["serving"]["modelVersion"],
            champion.as_str()
        );
    }

    // Whatever the route a rating took, no server recommends it back.
    for user in [1, 2, 3, user] {
        for s in [&a, &b] {
            assert_none_rated(s, store.as_mut(), user);
        }
    }
}

on_both_backends!(two_servers_one_database);
