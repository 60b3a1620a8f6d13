//! `POST /api/ratings` when things go wrong (issue 10, item 1), over real
//! HTTP against real SQLite and PostgreSQL databases: a write that runs out
//! of time behind a lock is rolled back and says so, never committing
//! after its answer; a retry with the same `Idempotency-Key` stores the
//! ratings once and every later one gets the first answer again; a write
//! that waits and then commits says so. And the champion changed over
//! HTTP (`POST /api/models/{version}/promote`, `/api/models/rollback`, the
//! dashboard's buttons): behind the write token, 4xx for every bad input.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::time::Duration;

use common::{HeldLock, TestDb};
use serde_json::{json, Value};
use support::{http, load_small, train, Resp, TestServer};

const TOKEN: &str = "writes-test-token";
/// The repro: `BEGIN; LOCK TABLE ratings_buffer IN EXCLUSIVE MODE;`
/// in another session (on SQLite, another writer's open transaction).
const BUFFER_LOCK: &str = "LOCK TABLE ratings_buffer IN EXCLUSIVE MODE";

fn post(server: &TestServer, key: Option<&str>, body: &str) -> Resp {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    http(
        server.addr,
        "POST",
        "/api/ratings",
        &headers,
        body.as_bytes(),
    )
}

/// Buffered ratings of `user`, straight from the database.
fn buffered(db: &TestDb, user: i32) -> usize {
    db.store()
        .buffer_ratings(None)
        .unwrap()
        .iter()
        .filter(|r| r.user_id == user)
        .count()
}

/// Request-pool connections held by requests now (the server's gauge;
/// `/metrics` itself uses the probes' connection).
fn in_use(server: &TestServer) -> f64 {
    server.gauge("cinematch_db_connections_in_use")
}

/// Waits until no request holds a pooled connection: every database call
/// the server started has returned (committed or rolled back).
fn wait_pool_idle(server: &TestServer) {
    server.wait_until(
        "every database call to return",
        Duration::from_secs(60),
        |s| in_use(s) == 0.0,
    );
}

/// On PostgreSQL, waits until a session of this test's database waits for
/// a lock: the write has reached the locked table.
fn wait_lock_waiter(db: &TestDb) {
    if !matches!(db, TestDb::Pg(_)) {
        return;
    }
    let start = std::time::Instant::now();
    while db
        .query_strings(
            "SELECT pid::text FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no session waits for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ratings_of(user: i32) -> String {
    json!([
        {"userId": user, "movieId": 1, "rating": 4.5, "timestamp": 1_700_000_000},
        {"userId": user, "movieId": 2, "rating": 3, "timestamp": 1_700_000_001}
    ])
    .to_string()
}

/// The repro: the buffer locked in another session, a POST runs
/// out of time, the lock goes, the client retries with the same key: the
/// ratings are stored once. The timed-out attempt stored nothing, not even
/// after the lock went; every retry after the success gets the first
/// answer again; the key with another body is refused.
fn a_retry_after_a_timeout_stores_once(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.request_timeout = Duration::from_secs(2);
        // The dashboard statistics (computed on the request pool) once, so
        // the pool gauge below counts the write alone.
        c.stats_ttl = Duration::from_secs(600);
    });
    server.wait_ready();
    assert_eq!(in_use(&server), 0.0);
    let user = 920_001;
    let body = ratings_of(user);

    let lock = HeldLock::take(&db, BUFFER_LOCK);
    let r = post(&server, Some("retry-1"), &body);
    assert_eq!(r.status, 503, "{}", r.text());
    let why = r.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains("nothing was stored"), "{why}");
    lock.release();
    // The attempt was rolled back: once its database call has returned (the
    // pool is idle), with the lock gone, nothing of it was committed.
    wait_pool_idle(&server);
    assert_eq!(buffered(&db, user), 0, "the timed-out write committed");

    let r = post(&server, Some("retry-1"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("idempotent-replayed"), None);
    let first = r.json();
    assert_eq!(first["accepted"], 2);
    assert_eq!(buffered(&db, user), 2);

    // Retries after the success: the first answer, nothing stored.
    for _ in 0..3 {
        let r = post(&server, Some("retry-1"), &body);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.json(), first);
    }
    assert_eq!(buffered(&db, user), 2);

    // The same key for another request is a client bug.
    let other = ratings_of(user + 1);
    let r = post(&server, Some("retry-1"), &other);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    assert_eq!(buffered(&db, user + 1), 0);

    // Keys a server cannot keep are refused before anything happens.
    for bad in ["", "has space", &"k".repeat(256), "tab\there"] {
        let r = post(&server, Some(bad), &other);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
    // Without a key a write still works, once per request.
    let r = post(&server, None, &other);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(buffered(&db, user + 1), 2);
    // The keys are in the database, with the answer.
    let keys = db.query_strings(
        "SELECT idempotency_key || ' ' || status_code || ' ' || response FROM api_idempotency",
    );
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("retry-1 201 {"), "{keys:?}");
}

/// A write held up by a lock for less than its time waits, commits, and
/// answers 201: the answer says what the database did.
fn a_write_that_waits_reports_its_commit(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.request_timeout = Duration::from_secs(60);
        c.stats_ttl = Duration::from_secs(600);
    });
    server.wait_ready();
    assert_eq!(in_use(&server), 0.0);
    let user = 920_101;
    let lock = HeldLock::take(&db, BUFFER_LOCK);
    let addr = server.addr;
    let body = ratings_of(user);
    let write = std::thread::spawn(move || {
        let auth = format!("Bearer {TOKEN}");
        http(
            addr,
            "POST",
            "/api/ratings",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
                ("Idempotency-Key", "waits-1"),
            ],
            body.as_bytes(),
        )
    });
    // The write arrived and is in its database call (it holds a pooled
    // connection; on PostgreSQL its session waits for the lock), and has
    // stored nothing while the lock holds.
    server.wait_until(
        "the write to take a connection",
        Duration::from_secs(60),
        |s| in_use(s) == 1.0,
    );
    wait_lock_waiter(&db);
    assert!(!write.is_finished(), "the lock did not hold the write back");
    assert_eq!(buffered(&db, user), 0);
    assert_eq!(
        in_use(&server),
        1.0,
        "the write gave up while the lock held"
    );
    lock.release();
    let r = write.join().unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["accepted"], 2);
    assert_eq!(buffered(&db, user), 2);
    // A retry (say the client gave up waiting) stores nothing.
    let r = post(&server, Some("waits-1"), &ratings_of(user));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(buffered(&db, user), 2);
    let answer: Value = r.json();
    assert_eq!(answer["accepted"], 2);
}

/// Promotion and rollback over HTTP: refused without the write token (and
/// with writes off), 404 for a version nobody trained, 400 for a blank one,
/// 409 with nothing to roll back to; a promotion answers what changed, the
/// registry and this server follow at once, a rollback undoes it.
fn promote_and_rollback_over_http(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let first = train(store.as_mut(), 1);
    let second = train(store.as_mut(), 2);
    assert_eq!(store.champion().unwrap().as_deref(), Some(first.as_str()));
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();
    let promote = format!("/api/models/{second}/promote");
    let champion = |s: &TestServer| s.get("/api/models").json()["champion"].clone();

    for token in [None, Some("not-the-token")] {
        let r = server.post_json(&promote, token, "");
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let r = server.post_json("/api/models/rollback", None, "");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        champion(&server),
        json!(first),
        "a refused request changed the champion"
    );

    let r = server.post_json("/api/models/run_nobody_v9/promote", Some(TOKEN), "");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("run_nobody_v9"),
        "{}",
        r.text()
    );
    let r = server.post_json("/api/models/%20/promote", Some(TOKEN), "");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = server.get(&promote);
    assert_eq!(r.status, 405, "{}", r.text());

    // The promotion: said, recorded, and served by this server without
    // waiting for its next check.
    let r = server.post_json(&promote, Some(TOKEN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["champion"], json!(second));
    assert_eq!(body["previous"], json!(first));
    assert_eq!(body["changed"], true);
    assert_eq!(champion(&server), json!(second));
    server.wait_until(
        "the server serves the promoted version",
        Duration::from_secs(20),
        |s| s.get("/api/users/1/recommendations").json()["modelVersion"] == json!(second),
    );
    // Again: nothing to change, nothing written.
    let promotions = store.promotions().unwrap().len();
    let r = server.post_json(&promote, Some(TOKEN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changed"], false);
    assert_eq!(store.promotions().unwrap().len(), promotions);

    let r = server.post_json("/api/models/rollback", Some(TOKEN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["champion"], json!(first));
    assert_eq!(body["previous"], json!(second));
    assert_eq!(champion(&server), json!(first));
    // The first champion has none before it.
    let r = server.post_json("/api/models/rollback", Some(TOKEN), "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["error"].is_string());
    assert_eq!(champion(&server), json!(first));

    // Both are in the API's document, as writes that need the token.
    let doc = server.get("/api/openapi.json").json();
    for path in ["/api/models/{version}/promote", "/api/models/rollback"] {
        let op = &doc["paths"][path]["post"];
        assert_eq!(op["security"], json!([{"bearer": []}]), "{path}: {op}");
        assert!(op["responses"]["401"].is_object(), "{path}: {op}");
    }
    drop(server);

    // A server without a write token takes no promotion.
    let server = TestServer::start(db.url(), |_| {});
    server.wait_ready();
    let r = server.post_json(&promote, Some(TOKEN), "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(champion(&server), json!(first));
}

on_both_backends!(
    a_retry_after_a_timeout_stores_once,
    a_write_that_waits_reports_its_commit,
    promote_and_rollback_over_http,
);
