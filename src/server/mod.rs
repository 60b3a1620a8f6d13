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
    /// After a stop request, how long requests in flight may take to
    /// finish before the server stops anyway. Keep it under the time the
    /// process manager waits before SIGKILL (`docker stop`: 10 s,
    /// Kubernetes: 30 s).
    pub shutdown_grace: Duration,
    /// The deployment's objective: what the models list and the
    /// dashboard's charts compare.
    pub objective: crate::registry::Objective,
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
            shutdown_grace: Duration::from_secs(10),
            objective: crate::registry::Objective::default(),
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
    // axum stops accepting when `shutdown` resolves and then waits for every
    // connection without a limit; the grace period starts at the same moment.
    let grace = config.shutdown_grace;
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(
            grace = ?grace,
            "no longer accepting connections; finishing the requests in flight"
        );
        let _ = begun_tx.send(());
    });
    let grace_over = async move {
        if begun_rx.await.is_err() {
            // The server ended on its own; this branch must not win.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server => {
            tracing::info!("every request finished; the server stopped");
            r
        }
        () = grace_over => {
            tracing::warn!(
                grace = ?grace,
                "the grace period is over; stopping with requests still in flight"
            );
            Ok(())
        }
    };
    reloader.abort();
    result.map_err(|e| Error::InvalidArgument(format!("the HTTP server stopped: {e}")))
}

/// [`serve`] on its own multi-threaded runtime until SIGINT or SIGTERM
/// (see [`crate::shutdown`]): what the CLI calls, so it needs no async code
/// of its own. A second signal during the grace period stops at once.
pub fn run(config: ServerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cinematch-http")
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        // Before binding: once the port answers, a signal is a stop request.
        let shutdown = Shutdown::install().map_err(|e| {
            Error::InvalidArgument(format!("cannot install the signal handlers: {e}"))
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
