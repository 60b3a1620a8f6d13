//! `cinematch serve`: recommendations over HTTP and the monitoring dashboard.
//!
//! The server needs nothing but a database URL: the champion model, the
//! catalogue and the monitoring history all come from the store, so several
//! servers can run against one PostgreSQL and a retrain in any process
//! reaches all of them (see [`state`] for the hot reload).
//!
//! Layout:
//! * [`state`]: the in-memory snapshot requests are served from, and the
//!   background task that swaps in a new one when the champion changes.
//! * `pool`: the small pool of synchronous store connections, always used
//!   from blocking threads.
//! * `api`: the JSON handlers and the OpenAPI document generated from them.
//! * `errors`: one JSON error shape for every failure, including axum's own
//!   rejections.
//! * `metrics`: request counters and latency histograms in Prometheus text.
//! * `dashboard`: the HTML page at `/`, charts drawn as inline SVG.

mod api;
mod dashboard;
mod errors;
mod metrics;
mod pool;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

pub use api::ApiDoc;
pub use state::AppState;

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
    /// How often the champion is checked, i.e. the longest a promotion made
    /// by another process takes to reach this server.
    pub reload_interval: Duration,
    /// Requests running longer are answered 408 so a stuck database cannot
    /// pile up connections.
    pub request_timeout: Duration,
    /// Larger request bodies are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    /// Database connections; the hot path uses none, so a few are enough.
    pub pool_size: usize,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr, db_url: impl Into<String>) -> ServerConfig {
        ServerConfig {
            addr,
            db_url: db_url.into(),
            api_token: None,
            reload_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            pool_size: 4,
        }
    }
}

/// The routes, in one table so the router and the tests that hold the
/// OpenAPI document to it can never disagree: (method, path, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/", get(dashboard::page)),
        ("GET", "/healthz", get(api::healthz)),
        ("GET", "/readyz", get(api::readyz)),
        ("GET", "/metrics", get(api::metrics)),
        ("GET", "/api/openapi.json", get(api::openapi)),
        ("GET", "/api/status", get(api::status)),
        ("GET", "/api/models", get(api::models)),
        ("GET", "/api/drift", get(api::drift)),
        ("GET", "/api/ingestions", get(api::ingestions)),
        ("GET", "/api/movies", get(api::search_movies)),
        ("GET", "/api/movies/{movieId}", get(api::movie)),
        ("GET", "/api/movies/{movieId}/similar", get(api::similar)),
        (
            "GET",
            "/api/users/{userId}/recommendations",
            get(api::recommendations),
        ),
        ("GET", "/api/users/{userId}/ratings", get(api::user_ratings)),
        ("POST", "/api/ratings", post(api::post_ratings)),
    ]
}

/// The whole application for a state, with every layer: tests serve it on
/// an ephemeral port in-process, [`serve`] on the configured address.
pub fn router(state: AppState) -> Router {
    let limits = state.limits();
    let mut app = Router::new();
    for (_, path, handler) in routes() {
        app = app.route(path, handler);
    }
    app.fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        // Innermost first: the body limit applies to extractors, the timeout
        // to the handler, errors become JSON, and metrics see the final status.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            errors::timeout,
        ))
        .layer(axum::middleware::from_fn(errors::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Binds `config.addr` and serves until `shutdown` resolves, then finishes
/// the requests in flight. Returns an error for an unusable address or
/// database URL; a database that is merely down is retried in the
/// background (`/readyz` says 503 meanwhile).
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| Error::InvalidArgument(format!("cannot listen on {}: {e}", config.addr)))?;
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
        database = %crate::store::redact(&config.db_url),
        reload_every = ?config.reload_interval,
        writes = if config.api_token.is_some() { "enabled" } else { "disabled (no CINEMATCH_API_TOKEN)" },
        "serving"
    );
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    reloader.abort();
    result.map_err(|e| Error::InvalidArgument(format!("the HTTP server stopped: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM, the signals a terminal and a service
/// manager send, so `serve` can finish the requests in flight.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// [`serve`] on its own multi-threaded runtime until Ctrl-C or SIGTERM: what
/// the CLI calls, so it needs no async code of its own.
pub fn run(config: ServerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cinematch-http")
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(config, shutdown_signal()))
}
