//! `cinematch serve` over real HTTP, in-process on an ephemeral port, against
//! real SQLite and PostgreSQL databases holding ml-latest-small: every
//! route's answer, every class of bad request, writes landing in the buffer,
//! the champion hot reload under load, readiness, and the OpenAPI document.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinematch::store::{NewDriftAlert, Store};
use cinematch::IngestionStatus;
use common::TestDb;
use serde_json::{json, Value};
use support::{http, load_small, train, Resp, TestServer};

const TOKEN: &str = "s3cret-test-token";

/// Every error is JSON `{"error": "..."}` with the expected status, and the
/// message says something about the problem.
#[track_caller]
fn assert_error(r: &Resp, status: u16, mentions: &str) {
    assert_eq!(r.status, status, "expected {status}, got: {}", r.text());
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "error {status} is {ct:?}, not JSON: {}",
        r.text()
    );
    let v = r.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"error\" string in {v}"));
    assert!(
        msg.to_lowercase().contains(&mentions.to_lowercase()),
        "error {msg:?} does not mention {mentions:?}"
    );
}

#[track_caller]
fn ok_json(r: Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        r.headers
    );
    r.json()
}

fn ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["movieId"].as_i64().expect("movieId"))
        .collect()
}

fn insert_drift(store: &mut dyn Store) {
    store
        .insert_drift_alerts(&[
            NewDriftAlert {
                feature_name: "rating_mean_calibrated".into(),
                drift_score: 0.121,
                threshold: 0.1,
                alert_triggered: true,
                notes: "Baseline: 3.540, New: 3.968".into(),
            },
            NewDriftAlert {
                feature_name: "rating_std".into(),
                drift_score: 0.045,
                threshold: 0.15,
                alert_triggered: false,
                notes: "Baseline: 1.070, New: 1.118".into(),
            },
        ])
        .unwrap();
}

fn happy_paths(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let v1 = train(store.as_mut(), 1);
    let v2 = train(store.as_mut(), 2);
    assert_eq!(store.champion().unwrap().as_deref(), Some(v1.as_str()));
    insert_drift(store.as_mut());
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();

    assert_eq!(ok_json(server.get("/healthz"))["status"], "ok");
    let ready = ok_json(server.get("/readyz"));
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["modelVersion"], v1.as_str());

    // Recommendations: the champion's, none already rated.
    let rated: HashSet<i64> = store
        .user_ratings(1)
        .unwrap()
        .iter()
        .map(|r| i64::from(r.movie_id))
        .collect();
    let recs = ok_json(server.get("/api/users/1/recommendations?k=10"));
    assert_eq!(recs["userId"], 1);
    assert_eq!(recs["strategy"], "model");
    assert_eq!(recs["modelVersion"], v1.as_str());
    let items = &recs["items"];
    assert_eq!(items.as_array().unwrap().len(), 10);
    for it in items.as_array().unwrap() {
        assert!(
            !rated.contains(&it["movieId"].as_i64().unwrap()),
            "recommended a rated movie: {it}"
        );
        assert!(!it["title"].as_str().unwrap().is_empty());
        let p = it["predictedRating"].as_f64().unwrap();
        assert!((0.5..=5.0).contains(&p), "{p}");
    }
    // Exactly the stored champion's top 10: its scores of every movie,
    // ranked here (higher first, ties by id), the user's rated movies left out.
    let (version, model) = cinematch::registry::load_champion(store.as_mut()).unwrap();
    assert_eq!(version, v1);
    let mut scores = Vec::new();
    model
        .score(1, &[], false, &mut scores)
        .expect("user 1 is trained");
    let mut ranked: Vec<(i64, f32)> = model
        .movie_ids()
        .iter()
        .zip(&scores)
        .map(|(&m, &s)| (i64::from(m), s))
        .filter(|(m, _)| !rated.contains(m))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let expected: Vec<i64> = ranked.iter().take(10).map(|(m, _)| *m).collect();
    assert_eq!(ids(items), expected, "not the champion's top 10");
    // Default k is 10; genre filter, any case.
    assert_eq!(
        ok_json(server.get("/api/users/1/recommendations"))["items"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let comedy = ok_json(server.get("/api/users/1/recommendations?k=5&genre=comedy"));
    assert_eq!(comedy["genre"], "Comedy");
    assert_eq!(comedy["items"].as_array().unwrap().len(), 5);
    for it in comedy["items"].as_array().unwrap() {
        assert!(
            it["genres"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == "Comedy"),
            "{it}"
        );
    }
    // A user the model does not know: the cold-start list.
    let cold = ok_json(server.get("/api/users/999999/recommendations?k=7"));
    assert_eq!(cold["strategy"], "popular");
    assert_eq!(cold["items"].as_array().unwrap().len(), 7);

    // Movies.
    let stats = store
        .movie_stats()
        .unwrap()
        .into_iter()
        .find(|s| s.movie_id == 1)
        .unwrap();
    let toy = ok_json(server.get("/api/movies/1"));
    assert_eq!(toy["movieId"], 1);
    assert_eq!(toy["title"], "Toy Story (1995)");
    assert!(toy["genres"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "Animation"));
    assert_eq!(toy["ratingCount"].as_i64().unwrap(), stats.count);
    assert!((toy["meanRating"].as_f64().unwrap() - stats.mean).abs() < 1e-9);
    assert_eq!(toy["inModel"], true);

    let similar = ok_json(server.get("/api/movies/1/similar?k=5"));
    assert_eq!(similar["movie"]["movieId"], 1);
    assert_eq!(similar["basis"], "factors");
    let sims = ids(&similar["items"]);
    assert_eq!(sims.len(), 5);
    assert!(!sims.contains(&1));

    let found = ok_json(server.get("/api/movies?q=toy+story&genre=Animation&limit=20"));
    let movies = found["movies"].as_array().unwrap();
    assert!(!movies.is_empty() && movies.len() <= 20);
    assert_eq!(movies[0]["title"], "Toy Story (1995)", "{found}");
    for m in movies {
        let t = m["title"].as_str().unwrap().to_lowercase();
        assert!(t.contains("toy") && t.contains("stor"), "{t}");
        assert!(m["genres"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "Animation"));
    }
    assert_eq!(found["count"].as_u64().unwrap() as usize, movies.len());
    let docs = ok_json(server.get("/api/movies?genre=documentary&limit=3"));
    assert_eq!(docs["movies"].as_array().unwrap().len(), 3);
    // FTS syntax is plain text: `"*;DROP TABLE movies` is four words no title has.
    let hostile = ok_json(server.get("/api/movies?q=%22%2A%3BDROP+TABLE+movies"));
    assert_eq!(hostile["count"], 0, "{hostile}");
    let near = ok_json(server.get("/api/movies?q=NEAR(&limit=100"));
    assert!(near["count"].as_u64().unwrap() > 0, "{near}");
    assert_eq!(
        ok_json(server.get("/api/movies?q=toy+story&limit=1"))["movies"][0]["movieId"],
        1
    );

    let mine = ok_json(server.get("/api/users/1/ratings?limit=5"));
    assert_eq!(mine["total"].as_u64().unwrap() as usize, rated.len());
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), 5);
    assert!(mine
        .iter()
        .all(|r| rated.contains(&r["movieId"].as_i64().unwrap())));
    assert!(mine
        .windows(2)
        .all(|w| w[0]["timestamp"].as_i64() >= w[1]["timestamp"].as_i64()));

    // Monitoring.
    let models = ok_json(server.get("/api/models"));
    assert_eq!(models["champion"], v1.as_str());
    let list = models["models"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["modelVersion"], v1.as_str());
    assert_eq!(list[0]["isChampion"], true);
    assert_eq!(list[1]["modelVersion"], v2.as_str());
    assert_eq!(list[1]["isChampion"], false);
    assert_eq!(list[1]["algorithm"], "svd");
    // The change of RMSE from the previous run, from the registry's own
    // records (not from the same response's fields).
    let runs = store.model_runs().unwrap();
    let rmse_of = |v: &str| {
        runs.iter()
            .find(|r| r.model_version == v)
            .and_then(|r| r.rmse)
            .unwrap_or_else(|| panic!("no RMSE recorded for {v}"))
    };
    let change = rmse_of(&v2) - rmse_of(&v1);
    assert!(
        change != 0.0,
        "two seeds, one RMSE: the check below would be vacuous"
    );
    assert!(
        (list[1]["rmseImprovement"].as_f64().unwrap() - change).abs() < 1e-9,
        "{}",
        list[1]
    );
    assert!(list[0]["rmseImprovement"].is_null());

    let drift = ok_json(server.get("/api/drift?days=30"));
    assert_eq!(drift["days"], 30);
    let alerts = drift["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts
        .iter()
        .any(|a| a["featureName"] == "rating_mean_calibrated" && a["alertTriggered"] == true));
    assert_eq!(ok_json(server.get("/api/drift"))["days"], 30);

    let r = server.post_json(
        "/api/ratings",
        Some(TOKEN),
        r#"{"userId": 5, "movieId": 2, "rating": 3.5}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let batch = r.json()["batchId"].as_str().unwrap().to_string();
    let ingestions = ok_json(server.get("/api/ingestions"));
    let rows = ingestions["ingestions"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|i| i["batchId"] == batch.as_str() && i["recordCount"] == 1),
        "{ingestions}"
    );

    let status = ok_json(server.get("/api/status"));
    assert_eq!(status["champion"]["modelVersion"], v1.as_str());
    assert_eq!(status["serving"]["modelVersion"], v1.as_str());
    assert_eq!(status["retrainingNeeded"], true);
    assert_eq!(status["recentAlerts"].as_array().unwrap().len(), 1);
    assert_eq!(status["buffer"]["total"], 1);
    assert!(status["serving"]["catalogueMovies"].as_u64().unwrap() > 9000);

    // Metrics: per-route counters and histograms, model, buffer, drift.
    let m = server.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for needle in [
        "# TYPE cinematch_http_requests_total counter",
        "cinematch_http_requests_total{route=\"/api/users/{userId}/recommendations\",method=\"GET\",status=\"200\"} 4",
        "# TYPE cinematch_http_request_duration_seconds histogram",
        "cinematch_http_request_duration_seconds_bucket{route=\"/api/users/{userId}/recommendations\",method=\"GET\",status=\"200\",le=\"+Inf\"} 4",
        "cinematch_http_request_duration_seconds_count{route=\"/api/movies/{movieId}\",method=\"GET\",status=\"200\"} 1",
        "cinematch_http_requests_total{route=\"/api/ratings\",method=\"POST\",status=\"201\"} 1",
        "cinematch_model_loaded 1",
        "cinematch_buffer_ratings 1",
        "cinematch_drift_last_check_alerts 1",
        "cinematch_drift_last_check_tests 2",
        "cinematch_database_up 1",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }
    assert!(
        text.contains(&format!(
            "cinematch_model_info{{model_version=\"{v1}\",algorithm=\"svd\"}} 1"
        )),
        "{text}"
    );

    // The dashboard: one point per model version in each metric chart.
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.text();
    for metric in ["rmse", "mae", "precision_at_10"] {
        for v in [&v1, &v2] {
            let needle = format!("data-version=\"{v}\" data-metric=\"{metric}\"");
            assert_eq!(html.matches(&needle).count(), 1, "{needle}");
        }
    }
    assert!(html.contains("data-retraining-needed=\"true\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference in the page"
    );
}

/// Every (method, route) the router has is in the OpenAPI document with the
/// same method, and the document has nothing else.
fn openapi_matches_routes(db: TestDb) {
    let server = TestServer::start(db.url(), |_| {});
    let doc = ok_json(server.get("/api/openapi.json"));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut from_router = BTreeSet::new();
    for (method, path, _) in cinematch::server::routes() {
        from_router.insert((method.to_lowercase(), path.to_string()));
        // The route really is served with that method (not 404/405).
        let probe = http(
            server.addr,
            method,
            &path.replace("{userId}", "1").replace("{movieId}", "1"),
            &[("Content-Type", "application/json")],
            if method == "POST" { b"{}" } else { b"" },
        );
        // An empty database answers 404 for movie 1, but from the handler:
        // only the router's fallback says "no route".
        assert!(
            probe.status != 405 && !probe.text().contains("no route for"),
            "{method} {path} is not routed: {} {}",
            probe.status,
            probe.text()
        );
    }
    let from_doc: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    assert_eq!(from_router, from_doc);
    // Documented parameters and the bearer scheme.
    let recs = &paths["/api/users/{userId}/recommendations"]["get"];
    let names: Vec<&str> = recs["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"userId") && names.contains(&"k") && names.contains(&"genre"));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

fn bad_requests_get_json_4xx(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.max_body_bytes = 64 * 1024;
    });
    server.wait_ready();

    // Ids.
    assert_error(&server.get("/api/users/abc/recommendations"), 400, "userId");
    assert_error(&server.get("/api/users/0/recommendations"), 400, "positive");
    assert_error(
        &server.get("/api/users/-3/recommendations"),
        400,
        "positive",
    );
    assert_error(&server.get("/api/users/1.5/recommendations"), 400, "userId");
    assert_error(
        &server.get("/api/users/99999999999/recommendations"),
        400,
        "too large",
    );
    assert_error(&server.get("/api/movies/xyz"), 400, "movieId");
    assert_error(&server.get("/api/movies/xyz/similar"), 400, "movieId");
    assert_error(&server.get("/api/users/x/ratings"), 400, "userId");
    // k and the other query parameters.
    assert_error(
        &server.get("/api/users/1/recommendations?k=0"),
        400,
        "k must be between 1 and 100",
    );
    assert_error(
        &server.get("/api/users/1/recommendations?k=101"),
        400,
        "k must be between 1 and 100",
    );
    assert_error(&server.get("/api/users/1/recommendations?k=abc"), 400, "k");
    assert_error(&server.get("/api/users/1/recommendations?k=-1"), 400, "k");
    assert_error(&server.get("/api/movies/1/similar?k=0"), 400, "k must be");
    assert_error(&server.get("/api/movies/1/similar?k=101"), 400, "k must be");
    assert_error(
        &server.get("/api/users/1/recommendations?genre=Polka"),
        400,
        "genre",
    );
    assert_error(&server.get("/api/movies"), 400, "q=");
    assert_error(&server.get("/api/movies?q=toy&limit=0"), 400, "limit");
    assert_error(&server.get("/api/movies?q=toy&limit=1000"), 400, "limit");
    assert_error(&server.get("/api/drift?days=0"), 400, "days");
    assert_error(&server.get("/api/drift?days=x"), 400, "days");
    assert_error(&server.get("/api/users/1/ratings?limit=0"), 400, "limit");
    // Not found, unknown routes, wrong methods.
    assert_error(
        &server.get("/api/movies/99999999"),
        404,
        "not in the catalogue",
    );
    assert_error(
        &server.get("/api/movies/99999999/similar"),
        404,
        "not in the catalogue",
    );
    assert_error(&server.get("/api/nope"), 404, "no route");
    assert_error(&server.get("/nope/deeper?x=1"), 404, "no route");
    assert_error(
        &http(server.addr, "DELETE", "/api/models", &[], b""),
        405,
        "not allowed",
    );
    assert_error(
        &http(server.addr, "GET", "/api/ratings", &[], b""),
        405,
        "not allowed",
    );

    // Writes: authentication first.
    let one = r#"{"userId": 1, "movieId": 1, "rating": 4.0}"#;
    let r = server.post_json("/api/ratings", None, one);
    assert_error(&r, 401, "Authorization: Bearer");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_error(
        &server.post_json("/api/ratings", Some("wrong"), one),
        401,
        "not valid",
    );
    assert_error(
        &http(
            server.addr,
            "POST",
            "/api/ratings",
            &[
                ("Authorization", "Basic dXNlcjpwdw=="),
                ("Content-Type", "application/json"),
            ],
            one.as_bytes(),
        ),
        401,
        "Bearer",
    );
    // Then the body.
    let post = |body: &str| server.post_json("/api/ratings", Some(TOKEN), body);
    assert_error(&post("{\"userId\": 1,"), 400, "");
    assert_error(&post("not json"), 400, "");
    assert_error(
        &http(
            server.addr,
            "POST",
            "/api/ratings",
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Type", "text/plain"),
            ],
            one.as_bytes(),
        ),
        415,
        "Content-Type: application/json",
    );
    let big = format!(
        "[{}]",
        vec![r#"{"userId": 1, "movieId": 1, "rating": 4.0}"#; 3000].join(",")
    );
    assert!(big.len() > 64 * 1024);
    assert_error(&post(&big), 413, "larger than");
    assert_error(&post("[]"), 422, "empty");
    assert_error(&post("42"), 422, "one rating");
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": 7}"#),
        422,
        "outside 0.5..5.0",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": 0}"#),
        422,
        "outside 0.5..5.0",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": 3.3}"#),
        422,
        "multiple of 0.5",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": "4"}"#),
        422,
        "not a number",
    );
    assert_error(
        &post(r#"{"userId": "x", "movieId": 1, "rating": 4}"#),
        422,
        "userId",
    );
    assert_error(
        &post(r#"{"userId": 0, "movieId": 1, "rating": 4}"#),
        422,
        "positive",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 2.5, "rating": 4}"#),
        422,
        "movieId",
    );
    assert_error(
        &post(r#"{"userId": 1, "rating": 4}"#),
        422,
        "movieId is missing",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": 4, "stars": 5}"#),
        422,
        "stars",
    );
    assert_error(
        &post(r#"{"userId": 1, "movieId": 1, "rating": 4, "timestamp": "yesterday"}"#),
        422,
        "timestamp",
    );
    assert_error(
        &post(
            r#"[{"userId": 1, "movieId": 1, "rating": 4}, {"userId": 1, "movieId": 1, "rating": 5}]"#,
        ),
        422,
        "ratings[1]",
    );
    let unknown = post(
        r#"[{"userId": 1, "movieId": 1, "rating": 4}, {"userId": 1, "movieId": 99999999, "rating": 4}]"#,
    );
    assert_error(
        &unknown,
        422,
        "ratings[1]: movieId 99999999 is not in the catalogue",
    );
    // None of that reached the database.
    assert!(store.buffer_counts().unwrap().is_empty());
    assert!(store.ingestions().unwrap().is_empty());

    // No token configured: writes are refused and the message says how to enable them.
    let closed = TestServer::start(db.url(), |_| {});
    assert_error(
        &closed.post_json("/api/ratings", Some(TOKEN), one),
        403,
        "CINEMATCH_API_TOKEN",
    );

    // The server is still fine after all that.
    assert_eq!(server.get("/healthz").status, 200);
    let text = server.get("/metrics").text();
    assert!(!text.contains("status=\"500\""), "{text}");
    assert!(
        text.contains("route=\"unmatched\",method=\"GET\",status=\"404\""),
        "{text}"
    );
}

fn posted_ratings_land_in_the_buffer(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();

    // Rate user 1's top recommendation: it must not be recommended again.
    let before = ids(&ok_json(server.get("/api/users/1/recommendations?k=10"))["items"]);
    let top = before[0];
    // The batch is the day's (UTC) when the server took the ratings: the
    // day before or after the request, which differ only across midnight.
    let api_batch_now = || format!("api_{}", chrono::Utc::now().format("%Y-%m-%d"));
    let mut batches = BTreeSet::new();
    let mut post_batch = |body: String, accepted: u64| {
        let (day_before, t_before) = (api_batch_now(), chrono::Utc::now().timestamp());
        let r = server.post_json("/api/ratings", Some(TOKEN), &body);
        let (day_after, t_after) = (api_batch_now(), chrono::Utc::now().timestamp());
        assert_eq!(r.status, 201, "{}", r.text());
        let body = r.json();
        assert_eq!(body["accepted"], accepted);
        let batch = body["batchId"].as_str().unwrap().to_string();
        assert!(
            batch == day_before || batch == day_after,
            "{batch}: not the day's batch ({day_before} or {day_after})"
        );
        batches.insert(batch);
        (t_before, t_after)
    };
    post_batch(
        json!({"userId": 1, "movieId": top, "rating": 4.5, "timestamp": 1700000000}).to_string(),
        1,
    );
    let after = ids(&ok_json(server.get("/api/users/1/recommendations?k=10"))["items"]);
    assert!(
        !after.contains(&top),
        "{top} recommended again after being rated"
    );
    assert_eq!(
        &after[..9],
        &before[1..],
        "the rest of the list should move up"
    );

    // A list, including a brand-new user (snake_case accepted too).
    let cold_top = ids(&ok_json(server.get("/api/users/700000/recommendations?k=3"))["items"])[0];
    let (t_before, t_after) = post_batch(
        json!([
            {"userId": 700000, "movieId": cold_top, "rating": 5},
            {"user_id": 2, "movie_id": 1, "rating": 0.5},
            {"userId": 3, "movieId": 2, "rating": 3.0}
        ])
        .to_string(),
        3,
    );
    let cold = ok_json(server.get("/api/users/700000/recommendations?k=3"));
    assert_eq!(cold["strategy"], "popular");
    assert!(!ids(&cold["items"]).contains(&cold_top));

    let mut buffered: Vec<cinematch::Rating> = batches
        .iter()
        .flat_map(|b| store.buffer_ratings(Some(b)).unwrap())
        .collect();
    buffered.sort_by_key(|r| (r.user_id, r.movie_id));
    let got: Vec<(i32, i32, f32)> = buffered
        .iter()
        .map(|r| (r.user_id, r.movie_id, r.rating))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, top as i32, 4.5),
            (2, 1, 0.5),
            (3, 2, 3.0),
            (700000, cold_top as i32, 5.0)
        ]
    );
    assert_eq!(buffered[0].timestamp, 1700000000);
    assert!(
        (t_before..=t_after).contains(&buffered[1].timestamp),
        "default timestamp is the time of the request: {} not in {t_before}..={t_after}",
        buffered[1].timestamp
    );
    let audit = store.ingestions().unwrap();
    let rows: Vec<_> = audit
        .iter()
        .filter(|i| batches.contains(&i.batch_id))
        .collect();
    assert_eq!(
        rows.len(),
        batches.len(),
        "an ingestion_metadata row per batch"
    );
    assert_eq!(rows.iter().map(|r| r.record_count.unwrap()).sum::<i64>(), 4);
    assert!(rows
        .iter()
        .all(|r| r.status == Some(IngestionStatus::Completed)));
    // The user's ratings endpoint reads the buffer too.
    let mine = ok_json(server.get("/api/users/700000/ratings"));
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["items"][0]["movieId"], cold_top);

    // A rating buffered by another process reaches the in-memory rated
    // sets within the reload interval.
    let next = ids(&ok_json(server.get("/api/users/1/recommendations?k=10"))["items"])[0];
    store
        .append_to_batch(
            "weekly_batch",
            &[cinematch::Rating {
                user_id: 1,
                movie_id: next as i32,
                rating: 2.0,
                timestamp: 1700000001,
            }],
        )
        .unwrap();
    server.wait_until(
        "a rating buffered elsewhere to be excluded",
        Duration::from_secs(10),
        |s| !ids(&ok_json(s.get("/api/users/1/recommendations?k=10"))["items"]).contains(&next),
    );
}

fn champion_hot_reload(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let v1 = train(store.as_mut(), 1);
    let v2 = train(store.as_mut(), 2);
    let server = TestServer::start(db.url(), |c| c.reload_interval = Duration::from_millis(300));
    server.wait_ready();
    let version = |s: &TestServer| {
        ok_json(s.get("/api/users/1/recommendations?k=5"))["modelVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(version(&server), v1);

    // Clients hammer the API while the champion changes: every request
    // must succeed, from one model or the other, and each client is served
    // by the old model and then by the new one (never the old again).
    let stop = Arc::new(AtomicBool::new(false));
    // Per client, the versions that served it, repeats collapsed.
    let seen: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new((0..3).map(|_| Mutex::new(Vec::new())).collect());
    let addr = server.addr;
    let clients: Vec<_> = (0..3)
        .map(|t| {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut user = 1 + t;
                while !stop.load(Ordering::Relaxed) {
                    let r = http(
                        addr,
                        "GET",
                        &format!("/api/users/{user}/recommendations?k=10"),
                        &[],
                        b"",
                    );
                    if r.status != 200 {
                        failures.push(format!("{}: {}", r.status, r.text()));
                    } else {
                        let v = r.json()["modelVersion"].as_str().unwrap().to_string();
                        let mut seen = seen[t].lock().unwrap();
                        if seen.last() != Some(&v) {
                            seen.push(v);
                        }
                    }
                    user = user % 610 + 1;
                }
                failures
            })
        })
        .collect();
    let all_served_by = |v: &str| {
        seen.iter()
            .all(|s| s.lock().unwrap().last().map(String::as_str) == Some(v))
    };
    server.wait_until("every client served by v1", Duration::from_secs(15), |_| {
        all_served_by(&v1)
    });
    store.promote(&v2, "hot reload test").unwrap();
    server.wait_until(
        "the new champion to be served to every client",
        Duration::from_secs(15),
        |s| version(s) == v2 && all_served_by(&v2),
    );
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "requests failed during the reload: {failures:?}"
    );
    for (t, s) in seen.iter().enumerate() {
        assert_eq!(
            *s.lock().unwrap(),
            [v1.clone(), v2.clone()],
            "client {t}: served by the old model, then by the new one"
        );
    }
    let status = ok_json(server.get("/api/status"));
    assert_eq!(status["serving"]["modelVersion"], v2.as_str());
    assert_eq!(status["champion"]["modelVersion"], v2.as_str());
    assert!(server
        .get("/metrics")
        .text()
        .contains(&format!("model_version=\"{v2}\"")));

    // Rollback works the same way.
    store.rollback().unwrap();
    server.wait_until("the rolled-back champion", Duration::from_secs(15), |s| {
        version(s) == v1
    });
}

fn readyz_503_without_champion(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let server = TestServer::start(db.url(), |_| {});
    assert_eq!(server.get("/healthz").status, 200);
    // The catalogue loads without a model; the model-backed routes wait for one.
    server.wait_until("the catalogue", Duration::from_secs(60), |s| {
        s.get("/api/movies/1").status == 200
    });
    let r = server.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["databaseReachable"], true);
    assert!(body["error"].as_str().unwrap().contains("champion"));
    assert_error(
        &server.get("/api/users/1/recommendations"),
        503,
        "no champion",
    );
    assert_error(&server.get("/api/movies/1/similar"), 503, "no champion");
    assert_eq!(
        ok_json(server.get("/api/movies?q=heat"))["movies"][0]["title"],
        "Heat (1995)"
    );
    let status = ok_json(server.get("/api/status"));
    assert!(status["champion"].is_null());
    assert_eq!(server.get("/").status, 200);
    assert!(server
        .get("/metrics")
        .text()
        .contains("cinematch_model_loaded 0"));

    // Training in another process makes the server ready.
    let v = train(store.as_mut(), 1);
    server.wait_ready();
    assert_eq!(ok_json(server.get("/readyz"))["modelVersion"], v.as_str());
}

/// Issue 12's onboarding bar, through the API with an EASE champion: a
/// brand-new user posts five ratings of animated children's movies and, on
/// the next request, gets a list labelled `fold-in` in which at least 4 of
/// 10 movies are Animation or Children (the cold-start list has at most 2),
/// every item explained by at least one of the five, none of the five
/// repeated.
fn a_new_user_is_folded_in_from_five_ratings(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let opts = cinematch::registry::TrainOptions::new(cinematch::models::Hyperparams::default_for(
        cinematch::models::Algo::Ease,
    ));
    let ease = cinematch::registry::train(store.as_mut(), &opts, &cinematch::progress::Silent)
        .expect("train ease");
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();
    let user = 900_001;
    let popular = ok_json(server.get(&format!("/api/users/{user}/recommendations?k=10")));
    assert_eq!(popular["strategy"], "popular");
    let kids = |items: &Value| -> usize {
        items
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                i["genres"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|g| g == "Animation" || g == "Children")
            })
            .count()
    };
    assert!(kids(&popular["items"]) <= 2, "{popular}");
    // Toy Story, Toy Story 2, Monsters, Inc., Finding Nemo, The Incredibles.
    let five = [1, 3114, 4886, 6377, 8961];
    let body: Vec<Value> = five
        .iter()
        .map(|m| json!({"userId": user, "movieId": m, "rating": 5}))
        .collect();
    let r = server.post_json("/api/ratings", Some(TOKEN), &Value::Array(body).to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    // The dashboard rates with the token the person types in: the server
    // never writes it into the page.
    assert!(!server.get("/").text().contains(TOKEN));
    let recs = ok_json(server.get(&format!("/api/users/{user}/recommendations?k=10")));
    assert_eq!(recs["strategy"], "fold-in", "{recs}");
    assert_eq!(recs["modelVersion"], ease.run.model_version.as_str());
    let items = recs["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert!(kids(&recs["items"]) >= 4, "{recs}");
    for it in items {
        let id = it["movieId"].as_i64().unwrap();
        assert!(!five.contains(&id), "recommended a movie just rated: {it}");
        let because = it["because"]
            .as_array()
            .unwrap_or_else(|| panic!("no because: {it}"));
        assert!(!because.is_empty(), "{it}");
        assert!(
            because
                .iter()
                .any(|b| five.contains(&b["movieId"].as_i64().unwrap())),
            "{it}"
        );
        let shares: f64 = because.iter().map(|b| b["share"].as_f64().unwrap()).sum();
        assert!(shares > 0.0 && shares <= 1.0 + 1e-6, "{it}");
        assert!(
            it.get("predictedRating").is_none(),
            "no rating model was trained"
        );
    }
    // Without explanations on request.
    let plain = ok_json(server.get(&format!(
        "/api/users/{user}/recommendations?k=10&explain=false"
    )));
    assert!(plain["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("because").is_none()));
    assert_eq!(ids(&plain["items"]), ids(&recs["items"]));
    // Similar movies come from EASE's item weights.
    let sim = ok_json(server.get("/api/movies/1/similar?k=5"));
    assert_eq!(sim["basis"], "item_weights", "{sim}");

    // Issue 17's niche bar: five five-star ratings of one kind each, from
    // a brand-new user: at least 5 of the 10 share the kind's genre.
    let movies = store.movies().unwrap();
    let kinds: [(&str, [(i32, &str); 5]); 4] = [
        (
            "Documentary",
            [
                (5669, "Bowling for Columbine (2002)"),
                (8464, "Super Size Me (2004)"),
                (246, "Hoop Dreams (1994)"),
                (
                    34072,
                    "March of the Penguins (Marche de l'empereur, La) (2005)",
                ),
                (80906, "Inside Job (2010)"),
            ],
        ),
        (
            "Animation",
            [
                (5618, "Spirited Away (Sen to Chihiro no kamikakushi) (2001)"),
                (1274, "Akira (1988)"),
                (741, "Ghost in the Shell (Kôkaku kidôtai) (1995)"),
                (5971, "My Neighbor Totoro (Tonari no Totoro) (1988)"),
                (5690, "Grave of the Fireflies (Hotaru no haka) (1988)"),
            ],
        ),
        (
            "Horror",
            [
                (1258, "Shining, The (1980)"),
                (1997, "Exorcist, The (1973)"),
                (2459, "Texas Chainsaw Massacre, The (1974)"),
                (1982, "Halloween (1978)"),
                (4105, "Evil Dead, The (1981)"),
            ],
        ),
        (
            "Musical",
            [
                (899, "Singin' in the Rain (1952)"),
                (1035, "Sound of Music, The (1965)"),
                (1947, "West Side Story (1961)"),
                (1028, "Mary Poppins (1964)"),
                (919, "Wizard of Oz, The (1939)"),
            ],
        ),
    ];
    for (i, (genre, five)) in kinds.iter().enumerate() {
        for (id, title) in five {
            let m = movies.iter().find(|m| m.movie_id == *id).unwrap();
            assert_eq!(m.title, *title);
        }
        let user = 900_100 + i as i32;
        let body: Vec<Value> = five
            .iter()
            .map(|(m, _)| json!({"userId": user, "movieId": m, "rating": 5}))
            .collect();
        let r = server.post_json("/api/ratings", Some(TOKEN), &Value::Array(body).to_string());
        assert_eq!(r.status, 201, "{}", r.text());
        let recs = ok_json(server.get(&format!("/api/users/{user}/recommendations?k=10")));
        assert_eq!(recs["strategy"], "fold-in", "{recs}");
        let items = recs["items"].as_array().unwrap();
        let of_kind = items
            .iter()
            .filter(|i| i["genres"].as_array().unwrap().iter().any(|g| g == genre))
            .count();
        assert!(of_kind >= 5, "{genre}: {of_kind} of 10: {recs}");
    }
}

/// With the default precomputation, every user's list is computed in the
/// background after the snapshot (iALS: the scan and the explanation's
/// solve), and the answers served from it are byte for byte those of a
/// server that computes every list on every request, for k up to the
/// precomputed depth, with and without explanations.
fn precomputed_lists_are_served_as_computed(db: TestDb) {
    let mut store = db.store();
    load_small(store.as_mut());
    let opts = cinematch::registry::TrainOptions::new(cinematch::models::Hyperparams::Ials(
        cinematch::models::IalsParams {
            factors: 16,
            iterations: 3,
            ..Default::default()
        },
    ));
    cinematch::registry::train(store.as_mut(), &opts, &cinematch::progress::Silent)
        .expect("train ials");
    let users = db.query_strings(
        "SELECT CAST(COUNT(DISTINCT userId) AS TEXT) FROM ratings WHERE data_split = 'train'",
    );
    let users: f64 = users[0].parse().unwrap();
    let warm = TestServer::start(db.url(), |_| {});
    let cold = TestServer::start(db.url(), |c| {
        c.precompute_k = 0;
        c.list_cache_items = 0;
    });
    warm.wait_ready();
    cold.wait_ready();
    warm.wait_until("every list precomputed", Duration::from_secs(120), |s| {
        s.gauge("cinematch_lists_precompute_remaining") == 0.0
            && s.gauge("cinematch_lists_cached") == users
    });
    for user in (1..=610).step_by(13) {
        for query in ["k=10", "k=4", "k=10&explain=false"] {
            let path = format!("/api/users/{user}/recommendations?{query}");
            let (a, b) = (warm.get(&path), cold.get(&path));
            assert_eq!(a.status, 200, "{path}: {}", a.text());
            assert_eq!(a.text(), b.text(), "{path}");
            if !query.contains("explain=false") {
                assert!(a.text().contains("\"because\""), "{path}: {}", a.text());
            }
        }
    }
    // Nothing was computed on demand by the warm server, nothing kept by
    // the cold one.
    assert_eq!(warm.gauge("cinematch_lists_cached"), users);
    assert_eq!(cold.gauge("cinematch_lists_cached"), 0.0);
}

on_both_backends!(
    a_new_user_is_folded_in_from_five_ratings,
    precomputed_lists_are_served_as_computed,
    happy_paths,
    openapi_matches_routes,
    bad_requests_get_json_4xx,
    posted_ratings_land_in_the_buffer,
    champion_hot_reload,
    readyz_503_without_champion,
);

/// A database that goes away mid-flight: read endpoints that need it
/// (search runs in its full-text indexes) say 503 without naming the
/// database, readiness drops, and recommendations go on from memory.
#[test]
fn postgres_down_gives_503_without_secrets() {
    let db = common::PgDb::new();
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    drop(store);
    let server = TestServer::start(&db.url, |_| {});
    server.wait_ready();
    let admin_url = common::pg_admin_url();
    let mut admin = ::postgres::Client::connect(&admin_url, ::postgres::NoTls).unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();

    let host = db
        .url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for path in [
        "/api/models",
        "/api/status",
        "/api/drift",
        "/api/ingestions",
        "/api/users/1/ratings",
        "/api/movies?q=toy+story",
        "/",
    ] {
        let r = server.get(path);
        assert_error(&r, 503, "database is unavailable");
        let text = r.text();
        for secret in [db.url.as_str(), &name, &host, "postgres://"] {
            assert!(!text.contains(secret), "{path} leaks {secret:?}: {text}");
        }
    }
    let r = server.get("/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["databaseReachable"], false);
    assert!(server
        .get("/metrics")
        .text()
        .contains("cinematch_database_up 0"));
    // Served from memory, so still up.
    assert_eq!(
        ok_json(server.get("/api/users/1/recommendations"))["strategy"],
        "model"
    );
    assert_eq!(server.get("/api/movies/1").status, 200);
}
