//! `cinematch serve` under abuse, over real HTTP against real SQLite and
//! PostgreSQL databases (issue 10, items 8 to 10): per-user reads behind the
//! read token, `/metrics` and the in-memory rated sets bounded whatever
//! clients send, slow clients cut off, a concurrency limit, and a readiness
//! probe that a busy pool cannot starve. Sizes and counts are asserted,
//! never durations.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{HeldLock, TestDb};
use serde_json::{json, Value};
use support::{gauge, http, load_small, train, Resp, TestServer};

const TOKEN: &str = "write-token-for-tests";
const READ: &str = "read-token-for-tests";

fn movie_ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["movieId"].as_i64().expect("movieId"))
        .collect()
}

fn get_with(server: &TestServer, path: &str, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http(server.addr, "GET", path, &headers, b"")
}

/// The routes anyone may call (with a read token configured): the
/// catalogue, search, similar movies, the monitoring aggregates (not the
/// ingestion audit, which names files), the probes,
/// the OpenAPI document and the dashboard page. Every route of
/// `server::routes()` not listed here must answer 401 without a token.
const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/status"),
    ("GET", "/api/models"),
    ("GET", "/api/drift"),
    ("GET", "/api/movies"),
    ("GET", "/api/movies/{movieId}"),
    ("GET", "/api/movies/{movieId}/similar"),
];

/// Item 8: with a read token, a user's ratings and recommendations need it
/// (or the write token); the read token does not allow writes; every other
/// route stays public.
fn per_user_reads_need_the_read_token(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.read_token = Some(READ.into());
    });
    server.wait_ready();
    for path in ["/api/users/1/ratings", "/api/users/1/recommendations"] {
        let r = get_with(&server, path, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.json()["error"].as_str().unwrap().contains("read token"));
        let r = get_with(&server, path, Some("guess"));
        assert_eq!(r.status, 401, "{path} with a wrong token: {}", r.text());
        let r = http(
            server.addr,
            "GET",
            path,
            &[("Authorization", &format!("Basic {READ}"))],
            b"",
        );
        assert_eq!(r.status, 401, "{path} with another scheme: {}", r.text());
        for token in [READ, TOKEN] {
            let r = get_with(&server, path, Some(token));
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert_eq!(r.json()["userId"], 1);
        }
    }
    // The read token does not write.
    let body = json!({"userId": 1, "movieId": 1, "rating": 4}).to_string();
    let r = server.post_json("/api/ratings", Some(READ), &body);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(store.buffer_ratings(None).unwrap().is_empty());
    // Every route the router serves, read from its own table: public ones
    // answer without a token, every other one refuses (401) without one, so
    // a route added later cannot slip through unguarded.
    let routes = cinematch::server::routes();
    for (method, path) in PUBLIC_ROUTES {
        assert!(
            routes.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is in the allowlist but not served"
        );
    }
    let body = json!({"userId": 1, "movieId": 1, "rating": 4}).to_string();
    for (method, path, _) in &routes {
        let mut concrete = path.replace("{userId}", "1").replace("{movieId}", "1");
        if *path == "/api/movies" {
            concrete.push_str("?q=toy"); // a search needs words or a genre
        }
        let headers = [("Content-Type", "application/json")];
        let payload = if *method == "GET" {
            &b""[..]
        } else {
            body.as_bytes()
        };
        let r = http(server.addr, method, &concrete, &headers, payload);
        if PUBLIC_ROUTES.contains(&(*method, *path)) {
            assert_eq!(r.status, 200, "{method} {concrete}: {}", r.text());
        } else {
            assert_eq!(
                r.status,
                401,
                "{method} {path} is not in the public allowlist, yet answers without a token: {}",
                r.text()
            );
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}"
            );
        }
    }
    assert!(store.buffer_ratings(None).unwrap().is_empty());
    // The document says which routes take a token.
    let doc = server.get("/api/openapi.json").json();
    for path in [
        "/api/users/{userId}/ratings",
        "/api/users/{userId}/recommendations",
    ] {
        let security = &doc["paths"][path]["get"]["security"];
        assert!(
            security.to_string().contains("bearer"),
            "{path}: {security}"
        );
    }
}

/// Item 9: 10,000 requests with invented methods make no new series, and
/// 20,000 ratings posted for one user keep one entry per movie in memory,
/// all dropped once a new snapshot covers them (while the movies stay
/// excluded from the user's list).
fn labels_and_rated_sets_stay_bounded(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let v2 = train(store.as_mut(), 2);
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();

    let addr = server.addr;
    let answered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                for i in (t..10_000).step_by(8) {
                    // Some of them long: a label of each would be megabytes.
                    let method = if i % 1000 == 0 {
                        format!("INVENTED{i}{}", "X".repeat(4000))
                    } else {
                        format!("INVENTED{i}")
                    };
                    let r = http(addr, &method, "/api/movies/1", &[], b"");
                    assert!(
                        matches!(r.status, 400 | 405),
                        "{method}: {} {}",
                        r.status,
                        r.text()
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(answered.load(Ordering::Relaxed), 10_000);
    let text = server.get("/metrics").text();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("cinematch_http_requests_total{"))
        .collect();
    assert!(series.len() <= 8, "{series:#?}");
    assert!(
        !text.contains("INVENTED"),
        "an invented method became a label"
    );
    let other: u64 = series
        .iter()
        .filter(|l| l.contains("method=\"other\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(other, 10_000, "{series:#?}");

    // 20,000 ratings by one user: 2,000 movies, each rated ten times.
    let user = 900_100;
    let movies: Vec<i32> = store
        .movies()
        .unwrap()
        .iter()
        .map(|m| m.movie_id)
        .take(2_000)
        .collect();
    for round in 0..20 {
        let body: Vec<Value> = movies[(round % 2) * 1000..(round % 2 + 1) * 1000]
            .iter()
            .map(|&m| json!({"userId": user, "movieId": m, "rating": 1 + round % 5}))
            .collect();
        let r = server.post_json("/api/ratings", Some(TOKEN), &Value::Array(body).to_string());
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let text = server.get("/metrics").text();
    assert_eq!(gauge(&text, "cinematch_recent_ratings"), 2_000.0);
    assert_eq!(gauge(&text, "cinematch_recent_rating_users"), 1.0);
    let rated: HashSet<i64> = movies.iter().map(|&m| i64::from(m)).collect();
    let path = format!("/api/users/{user}/recommendations?k=100");
    let excluded = |s: &TestServer| {
        let recs = s.get(&path).json();
        let ids = movie_ids(&recs["items"]);
        assert_eq!(ids.len(), 100, "{recs}");
        ids.iter().all(|id| !rated.contains(id))
    };
    assert!(excluded(&server));

    // A new snapshot holds them all: the map empties, the list still
    // excludes every one.
    let reloads = gauge(&text, "cinematch_model_reloads_total");
    store.promote(&v2, "a new snapshot").unwrap();
    server.wait_until("the new snapshot", Duration::from_secs(60), |s| {
        s.gauge("cinematch_model_reloads_total") > reloads
    });
    let text = server.get("/metrics").text();
    assert_eq!(gauge(&text, "cinematch_recent_ratings"), 0.0);
    assert_eq!(gauge(&text, "cinematch_recent_rating_users"), 0.0);
    assert!(excluded(&server));
}

/// The tables the dashboard counts and the writes go to, locked.
const DASHBOARD_AND_WRITES: &str = "LOCK TABLE ratings, ratings_buffer IN ACCESS EXCLUSIVE MODE";

/// Item 10: 20 dashboard loads and 20 writes, all stuck behind a lock and
/// holding every pooled connection, while `/readyz` keeps answering 200
/// (it has its own connection) and `/metrics` still says the database is
/// up. Once the lock goes, every write lands once and the 20 loads cost
/// the database one computation of the statistics.
fn readyz_stays_200_while_the_pool_is_busy(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.request_timeout = Duration::from_secs(120);
        c.stats_ttl = Duration::from_secs(600);
    });
    server.wait_ready();
    // Nothing has asked for the statistics yet.
    assert_eq!(server.gauge("cinematch_stats_refreshes_total"), 0.0);
    let lock = HeldLock::take(&db, DASHBOARD_AND_WRITES);
    let addr = server.addr;
    let requests: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    http(addr, "GET", "/", &[], b"")
                } else {
                    let body =
                        json!({"userId": 800_000 + i, "movieId": 1, "rating": 4}).to_string();
                    let auth = format!("Bearer {TOKEN}");
                    http(
                        addr,
                        "POST",
                        "/api/ratings",
                        &[
                            ("Content-Type", "application/json"),
                            ("Authorization", &auth),
                        ],
                        body.as_bytes(),
                    )
                }
            })
        })
        .collect();
    // Writes have two connections of their own (reads cannot take them),
    // both stuck behind the lock: the server's own gauge says so.
    let pool = server.gauge("cinematch_db_connections");
    assert!(pool >= 3.0, "pool size {pool}");
    let held = 2.0;
    server.wait_until(
        "both write connections to be held",
        Duration::from_secs(60),
        |s| s.gauge("cinematch_db_connections_in_use") == held,
    );
    for _ in 0..5 {
        let r = server.get("/readyz");
        assert_eq!(r.status, 200, "readiness starved: {}", r.text());
        let text = server.get("/metrics").text();
        assert_eq!(gauge(&text, "cinematch_database_up"), 1.0, "{text}");
        assert_eq!(
            gauge(&text, "cinematch_db_connections_in_use"),
            held,
            "the pool was freed while the lock held: {text}"
        );
        assert_eq!(server.get("/healthz").status, 200);
    }
    // (On SQLite readers never wait for the writer, so only the writes do.)
    assert!(
        requests.iter().skip(1).step_by(2).all(|r| !r.is_finished()),
        "the lock did not hold the writes back"
    );
    lock.release();
    let answers: Vec<Resp> = requests.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, r) in answers.iter().enumerate() {
        let expected = if i % 2 == 0 { 200 } else { 201 };
        assert_eq!(r.status, expected, "request {i}: {}", r.text());
    }
    let buffered = store.buffer_ratings(None).unwrap();
    assert_eq!(buffered.len(), 20, "each write stored once");
    // The loads (and the scrapes meanwhile) shared one computation.
    assert_eq!(
        server.gauge("cinematch_stats_refreshes_total"),
        1.0,
        "20 dashboard loads computed the statistics more than once"
    );
}

/// Item 10: beyond `max_concurrent_requests` the server answers 503 at
/// once instead of queueing; the probes are outside the limit.
fn beyond_the_concurrency_limit_503_at_once(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.request_timeout = Duration::from_secs(120);
        c.max_concurrent_requests = 2;
    });
    server.wait_ready();
    let lock = HeldLock::take(&db, DASHBOARD_AND_WRITES);
    let addr = server.addr;
    let finished = Arc::new(AtomicUsize::new(0));
    let writes: Vec<_> = (0..10)
        .map(|i| {
            let finished = finished.clone();
            std::thread::spawn(move || {
                let body = json!({"userId": 810_000 + i, "movieId": 1, "rating": 3}).to_string();
                let auth = format!("Bearer {TOKEN}");
                let r = http(
                    addr,
                    "POST",
                    "/api/ratings",
                    &[
                        ("Content-Type", "application/json"),
                        ("Authorization", &auth),
                    ],
                    body.as_bytes(),
                );
                finished.fetch_add(1, Ordering::SeqCst);
                r
            })
        })
        .collect();
    // Two writes wait on the lock; the other eight are turned away.
    server.wait_until("8 writes turned away", Duration::from_secs(60), |_| {
        finished.load(Ordering::SeqCst) >= 8
    });
    assert_eq!(server.get("/readyz").status, 200);
    assert_eq!(server.get("/healthz").status, 200);
    let r = server.get("/api/movies/1");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("limit"));
    lock.release();
    let answers: Vec<Resp> = writes.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted = answers.iter().filter(|r| r.status == 201).count();
    let shed: Vec<&Resp> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!((accepted, shed.len()), (2, 8), "{answers:?}");
    for r in shed {
        assert!(r.json()["error"].as_str().unwrap().contains("limit"));
    }
    assert_eq!(store.buffer_ratings(None).unwrap().len(), 2);
    assert_eq!(server.get("/api/movies/1").status, 200);
}

on_both_backends!(
    per_user_reads_need_the_read_token,
    labels_and_rated_sets_stay_bounded,
    readyz_stays_200_while_the_pool_is_busy,
    beyond_the_concurrency_limit_503_at_once,
);

/// Reads until the server closes the connection; panics if it does not
/// within a minute (the server's header timeout in these tests is 1 s).
fn closed_by_server(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server kept a slow connection open: {e}"),
        }
    }
}

/// Item 10: a client that sends its headers slowly (slowloris), or nothing
/// at all, is disconnected after the header timeout; a keep-alive
/// connection left idle too; the server keeps answering others.
#[test]
fn slow_headers_are_cut_off() {
    let db = common::SqliteDb::new();
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(&db.url, |c| {
        c.header_read_timeout = Duration::from_secs(1);
    });
    server.wait_ready();
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let silent = TcpStream::connect(server.addr).unwrap();
    // Meanwhile others are served.
    assert_eq!(server.get("/api/movies/1").status, 200);
    for s in slow {
        let got = closed_by_server(s);
        assert!(
            !String::from_utf8_lossy(&got).contains("200 OK"),
            "a request with unfinished headers was answered"
        );
    }
    closed_by_server(silent);

    // Keep-alive: one request answered, then the idle connection closed.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = closed_by_server(s);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(server.get("/healthz").status, 200);
}

/// Item 10's statement timeout, on PostgreSQL (SQLite readers never wait:
/// its busy timeout bounds writes, see `tests/server_writes.rs`): a read
/// stuck behind a lock ends at the statement timeout with 503, and the
/// connection it held serves the next request, even when it is the pool's
/// only one.
#[test]
fn a_stuck_read_gives_its_connection_back() {
    let db = TestDb::Pg(common::PgDb::new());
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.request_timeout = Duration::from_secs(2);
        c.pool_size = 1;
    });
    server.wait_ready();
    let lock = HeldLock::take(&db, "LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE");
    let r = server.get("/api/users/1/ratings");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{}",
        r.text()
    );
    // The drift history reads no locked table.
    let r = server.get("/api/drift");
    assert_eq!(
        r.status,
        200,
        "the stuck read kept the connection: {}",
        r.text()
    );
    lock.release();
    assert_eq!(server.get("/api/users/1/ratings").status, 200);
}
