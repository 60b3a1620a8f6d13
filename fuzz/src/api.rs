//! The HTTP API in-process: the real `cinematch::server::router` over a
//! SQLite store in the scratch directory that holds a tiny catalogue and a
//! trained champion, so every route can answer for real. A fuzz input is a
//! request written the way it goes over the wire:
//!
//! ```text
//! POST /api/ratings?x=1
//! Authorization: Bearer fuzz-token
//! Content-Type: application/json
//!
//! {"userId": 1, "movieId": 2, "rating": 4.5}
//! ```
//!
//! (first line method and target, then headers up to an empty line, then
//! the body), so the seed corpus is readable and easy to extend. Inputs that
//! no HTTP server would hand to the router (an invalid method, URI or header
//! name) are skipped.
//!
//! The promise checked: no panic, never a 5xx (a 503 means a database or
//! model failure, and here both are healthy), and every error is JSON
//! `{"error": "..."}` as the API documents.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use cinematch::pipeline::load::{self, LoadOptions, Source};
use cinematch::models::{Hyperparams, SvdParams};
use cinematch::progress::Silent;
use cinematch::registry::{self, TrainOptions};
use cinematch::server::{self, AppState, ServerConfig};
use tower::ServiceExt;

use crate::scratch_dir;

/// The bearer token the fuzzed server accepts (the seeds send it).
pub const TOKEN: &str = "fuzz-token";

/// Genres of the tiny catalogue, so `genre=` filters have something to find.
const GENRES: [&str; 6] = [
    "Action",
    "Comedy",
    "Drama",
    "Animation",
    "Sci-Fi",
    "Romance",
];

pub struct Api {
    rt: tokio::runtime::Runtime,
    app: Router,
}

/// The server, built once per process.
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(setup)
}

fn setup() -> Api {
    let dir = scratch_dir().join("api");
    std::fs::create_dir_all(&dir).expect("create the API's directory");
    // 40 movies, 30 users with 12 ratings each: enough for a split, a model
    // and a cold-start list, small enough to set up in well under a second.
    let mut movies = String::from("movieId,title,genres\n");
    for m in 1..=40 {
        let g1 = GENRES[m % GENRES.len()];
        let g2 = GENRES[(m * 7 + 3) % GENRES.len()];
        let genres = if g1 == g2 {
            g1.to_string()
        } else {
            format!("{g1}|{g2}")
        };
        movies.push_str(&format!("{m},\"Movie {m}, The ({})\",{genres}\n", 1950 + m));
    }
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=30usize {
        for j in 0..12 {
            let m = (u * 5 + j * 3) % 40 + 1;
            let half_stars = (u * 3 + m * 5) % 10 + 1;
            ratings.push_str(&format!(
                "{u},{m},{:.1},{}\n",
                half_stars as f64 / 2.0,
                1_000_000_000 + u * 1000 + j
            ));
        }
    }
    std::fs::write(dir.join("movies.csv"), movies).expect("write movies.csv");
    std::fs::write(dir.join("ratings.csv"), ratings).expect("write ratings.csv");
    let url = format!("sqlite://{}", dir.join("cinematch.db").display());
    {
        let mut store = cinematch::store::open(&url).expect("open the store");
        load::load(
            store.as_mut(),
            &Source::Dir(dir.clone()),
            &LoadOptions::default(),
            &Silent,
        )
        .expect("load the tiny catalogue");
        let mut opts = TrainOptions::new(Hyperparams::Svd(SvdParams {
            factors: 4,
            epochs: 3,
            ..SvdParams::default()
        }));
        opts.eval.ranking = false;
        registry::train(store.as_mut(), &opts, &Silent).expect("train a champion");
    }
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into(), url);
    config.api_token = Some(TOKEN.to_string());
    config.request_timeout = Duration::from_secs(30);
    config.pool_size = 2;
    let state = AppState::new(&config).expect("server state");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    assert!(
        rt.block_on(state.refresh()),
        "the first refresh did not load a snapshot"
    );
    Api {
        rt,
        app: server::router(state),
    }
}

/// The request a fuzz input spells, or `None` when no HTTP server would pass
/// it to the router.
pub fn parse_request(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &data[data.len()..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next()?;
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = Method::from_bytes(parts.next()?).ok()?;
    let target = std::str::from_utf8(parts.next()?).ok()?;
    let mut req = Request::builder().method(method).uri(target);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        req = req.header(name, value);
    }
    req.body(Body::from(body.to_vec())).ok()
}

/// `CINEMATCH_FUZZ_VERBOSE=1` prints each request and its answer, to see
/// what a corpus exercises (`api_request -runs=0 fuzz/corpus/api_request`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("CINEMATCH_FUZZ_VERBOSE").is_some_and(|v| v != "0"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends the request the input spells through the router and checks the
/// answer.
pub fn check_request(data: &[u8]) {
    let Some(req) = parse_request(data) else {
        return;
    };
    let api = api();
    let is_head = req.method() == Method::HEAD;
    let what = format!("{} {}", req.method(), req.uri());
    let (status, content_type, body) = api.rt.block_on(async {
        let resp = api
            .app
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("read the response body");
        (status, content_type, body)
    });
    let text = || String::from_utf8_lossy(&body).into_owned();
    if verbose() {
        eprintln!(
            "{what} -> {status}: {}",
            text().chars().take(200).collect::<String>()
        );
    }
    assert!(
        !status.is_server_error(),
        "{what} answered {status}: {}",
        text()
    );
    if is_head || status == StatusCode::NOT_MODIFIED || status.is_informational() {
        return;
    }
    let json = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    if status.is_client_error() {
        assert!(
            json,
            "{what}: error {status} is {content_type:?}: {}",
            text()
        );
    }
    if json {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e}): {}", text()));
        if status.is_client_error() {
            assert!(
                v.get("error").is_some_and(|e| e.is_string()),
                "{what}: error {status} without an \"error\" string: {v}"
            );
        }
    }
}
