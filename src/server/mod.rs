//! `cinematch serve`: recommendations over HTTP and the monitoring dashboard.
//!
//! The server needs nothing but a database URL: the champion model, the
//! catalogue and the monitoring history all come from the store, so several
//! servers can run against one PostgreSQL and a retrain in any process
//! reaches all of them (see [`state`] for the hot reload).
//!
//! Layout:
//! * `snapshot`: the in-memory snapshot requests are served from.
//! * [`state`]: the server's shared state, and the background task that
//!   swaps in a new snapshot when the champion changes.
//! * `pool`: the small pools of synchronous store connections, always used
//!   from blocking threads (requests, the probes and the reloader each have
//!   their own).
//! * `routes`: the JSON handlers, one file per route group, and the OpenAPI
//!   document generated from them.
//! * `auth`: the write and read bearer tokens.
//! * `errors`: one JSON error shape for every failure, including axum's own
//!   rejections.
//! * `metrics`: request counters, latency histograms and gauges in
//!   Prometheus text.
//! * `precompute`: every returning user's list computed in the background
//!   after each snapshot, so requests are answered from memory.
//! * `stats`: the dashboard's database statistics, cached and computed once
//!   for every client.
//! * `dashboard`: the HTML page at `/`, charts drawn as inline SVG.
//!
//! Abuse stays bounded: headers must arrive within `header_read_timeout`
//! (hyper closes a connection that dribbles them, or idles between
//! requests, longer), at most `max_concurrent_requests` requests run at once
//! (tower's concurrency limit; beyond it the server answers 503 at once
//! instead of queueing), every request ends within `request_timeout`, and
//! the probes are outside the limit with their own database connection.

mod auth;
mod dashboard;
mod errors;
mod metrics;
mod pool;
mod precompute;
mod routes;
mod snapshot;
pub mod state;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;

pub use routes::{AlertBody, ApiDoc};
pub use state::AppState;

use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// Everything `serve` needs; [`ServerConfig::new`] fills in defaults that
/// suit one small machine.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub db_url: String,
    /// Bearer token `POST /api/ratings` requires (`CINEMATCH_API_TOKEN`);
    /// without one, writes are refused rather than left open.
    pub api_token: Option<String>,
    /// Bearer token a user's ratings and recommendations require
    /// (`CINEMATCH_READ_TOKEN`; the write token works too); without one
    /// they are public, as in a demo.
    pub read_token: Option<String>,
    /// How often the champion is checked, i.e. the longest a promotion made
    /// by another process takes to reach this server.
    pub reload_interval: Duration,
    /// Requests running longer are answered 408 so a stuck database cannot
    /// pile up connections; database statements get three quarters of it
    /// (PostgreSQL `statement_timeout`, SQLite's busy timeout). A write is
    /// never answered before the database decided: it gets 503 "nothing
    /// was stored" when its statements run out of time.
    pub request_timeout: Duration,
    /// Larger request bodies are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    /// Database connections for requests; the hot path uses none, so a few
    /// are enough. The probes and the reloader have one each besides.
    pub pool_size: usize,
    /// Requests running at once, probes aside; more are answered 503 at
    /// once, which a client or load balancer retries elsewhere.
    pub max_concurrent_requests: usize,
    /// A connection must deliver a request's headers within this (also
    /// the longest an idle keep-alive connection stays open): slow clients
    /// cannot hold connections forever.
    pub header_read_timeout: Duration,
    /// How long the dashboard's and `/metrics`' database statistics are
    /// reused before they are computed again.
    pub stats_ttl: Duration,
    /// After a stop request, how long requests in flight may take to
    /// finish before the server stops anyway. Keep it under the time the
    /// process manager waits before SIGKILL (`docker stop`: 10 s,
    /// Kubernetes: 30 s).
    pub shutdown_grace: Duration,
    /// The deployment's objective: what the models list and the
    /// dashboard's charts compare.
    pub objective: crate::registry::Objective,
    /// After each snapshot, the top this many movies (with explanations)
    /// of every user the model ranks from training are computed in the
    /// background, so their requests for up to this many are answered
    /// from memory; 0 computes each list on its first request.
    pub precompute_k: usize,
    /// Movies of cached lists kept at most (about 40 bytes each); 0 keeps
    /// none and computes every list on every request.
    pub list_cache_items: usize,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr, db_url: impl Into<String>) -> ServerConfig {
        ServerConfig {
            addr,
            db_url: db_url.into(),
            api_token: None,
            read_token: None,
            reload_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            pool_size: 4,
            max_concurrent_requests: 256,
            header_read_timeout: Duration::from_secs(10),
            stats_ttl: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            objective: crate::registry::Objective::default(),
            precompute_k: 10,
            list_cache_items: crate::recommend::DEFAULT_LIST_CACHE_ITEMS,
        }
    }
}

/// Whether a route is a probe: outside the concurrency limit, so an
/// overloaded server still answers its load balancer and its scraper.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The routes, in one table so the router and the tests that hold the
/// OpenAPI document to it can never disagree: (method, path, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/", get(dashboard::page)),
        ("GET", "/healthz", get(routes::healthz)),
        ("GET", "/readyz", get(routes::readyz)),
        ("GET", "/metrics", get(routes::metrics)),
        ("GET", "/api/openapi.json", get(routes::openapi)),
        ("GET", "/api/status", get(routes::status)),
        ("GET", "/api/models", get(routes::models)),
        (
            "POST",
            "/api/models/{version}/promote",
            post(routes::promote),
        ),
        ("POST", "/api/models/rollback", post(routes::rollback)),
        ("GET", "/api/drift", get(routes::drift)),
        ("GET", "/api/ingestions", get(routes::ingestions)),
        ("GET", "/api/movies", get(routes::search_movies)),
        ("GET", "/api/movies/{movieId}", get(routes::movie)),
        ("GET", "/api/movies/{movieId}/similar", get(routes::similar)),
        (
            "GET",
            "/api/users/{userId}/recommendations",
            get(routes::recommendations),
        ),
        (
            "GET",
            "/api/users/{userId}/ratings",
            get(routes::user_ratings),
        ),
        ("POST", "/api/ratings", post(routes::post_ratings)),
    ]
}

/// The whole application for a state, with every layer: tests serve it on
/// an ephemeral port in-process, [`serve`] on the configured address.
pub fn router(state: AppState) -> Router {
    let limits = state.limits();
    let mut probes = Router::new();
    let mut limited = Router::new();
    for (method, path, handler) in routes() {
        // A write waits for the database's verdict (its statements are
        // bounded, see `state::statement_timeout`), so that its answer
        // says what was stored; the rest end at the request timeout.
        let handler = if method == "POST" {
            handler.layer(axum::middleware::from_fn_with_state(
                limits.request_timeout * 3,
                errors::write_timeout,
            ))
        } else {
            handler.layer(axum::middleware::from_fn_with_state(
                limits.request_timeout,
                errors::timeout,
            ))
        };
        if is_probe(path) {
            probes = probes.route(path, handler);
        } else {
            limited = limited.route(path, handler);
        }
    }
    // One semaphore for every limited route (a plain concurrency limit
    // would give each route its own); at the limit, load shedding answers
    // 503 at once rather than queue without bound.
    let limit = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |_: tower::BoxError| async move {
                errors::ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the server is answering {} requests already, its limit; try again shortly",
                        limits.max_concurrent_requests
                    ),
                )
                .into_response()
            },
        ))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ));
    probes
        .merge(limited.route_layer(limit))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        // Innermost first: the body limit applies to extractors (the
        // timeouts, per route above, to the handlers), errors become JSON,
        // and metrics see the final status.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(errors::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Binds `config.addr` and serves until `shutdown` resolves, then stops
/// accepting connections and finishes the requests in flight, for at most
/// `config.shutdown_grace`. Returns an error for an unusable address or
/// database URL; a database that is merely down is retried in the
/// background (`/readyz` says 503 meanwhile).
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| Error::Server(format!("cannot listen on {}: {e}", config.addr)))?;
    serve_on(listener, config, shutdown).await
}

/// [`serve`] on a listener the caller bound (tests bind `127.0.0.1:0` and
/// read the port back); `config.addr` is ignored.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(&config)?;
    let reloader = state.spawn_reloader();
    let addr = listener.local_addr().ok();
    tracing::info!(
        addr = ?addr,
        database = %crate::store::redact_url(&config.db_url),
        reload_every = ?config.reload_interval,
        writes = if config.api_token.is_some() { "enabled" } else { "disabled (no CINEMATCH_API_TOKEN)" },
        per_user_reads = if config.read_token.is_some() { "need the read token" } else { "public (no read token)" },
        "serving"
    );
    // hyper's HTTP/1 connections, so that the header read timeout applies
    // (axum's own `serve` gives hyper no timer, which disables it).
    let grace = config.shutdown_grace;
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    // Idle connections close now, busy ones after their response; the
    // grace period bounds the wait.
    tracing::info!(
        grace = ?grace,
        "no longer accepting connections; finishing the requests in flight"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("every request finished; the server stopped"),
        () = tokio::time::sleep(grace) => tracing::warn!(
            grace = ?grace,
            "the grace period is over; stopping with requests still in flight"
        ),
    }
    reloader.abort();
    Ok(())
}

/// [`serve`] on its own multi-threaded runtime until SIGINT or SIGTERM
/// (see [`crate::shutdown`]): what the CLI calls, so it needs no async code
/// of its own. A second signal during the grace period stops at once.
pub fn run(config: ServerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cinematch-http")
        .build()
        .map_err(|e| Error::Server(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        // Before binding: once the port answers, a signal is a stop request.
        let shutdown = Shutdown::install().map_err(|e| {
            Error::Server(format!("cannot install the signal handlers: {e}"))
        })?;
        let first = shutdown.clone();
        let stop = async move {
            let signal = first.requested().await;
            tracing::info!(%signal, "stop requested");
        };
        tokio::select! {
            r = serve(config, stop) => r,
            signal = shutdown.repeated() => {
                tracing::warn!(%signal, "second stop request; stopping with requests still in flight");
                Ok(())
            }
        }
    });
    // Requests abandoned above may still hold a blocking database call;
    // the process is ending, so do not wait for them.
    runtime.shutdown_background();
    result
}
