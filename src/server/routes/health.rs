//! Operations: liveness and readiness probes, Prometheus metrics, and the
//! OpenAPI document.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::ApiDoc;
use crate::server::metrics::{self, Database, DriftScore, Serving};
use crate::server::state::AppState;

/// Health and readiness probes answer within this, even with the pool busy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    status: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyBody {
    ready: bool,
    database_reachable: bool,
    model_version: Option<String>,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Whether the database answers, within [`PROBE_TIMEOUT`], on the probes'
/// connection. A failure on the connection held since before (a database
/// restarted, a session ended by an administrator or a pooler) is asked
/// again once on a fresh connection, which the pool opened after dropping
/// the broken one: the first probe after a restart says what the next
/// request would find, not what the old session did.
async fn database_answers(state: &AppState) -> bool {
    let ping = || {
        state
            .probe_pool
            .run(|store| store.schema_version().map(|_| ()))
    };
    let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
        match ping().await {
            Err(_) => ping().await,
            ok => ok,
        }
    })
    .await;
    matches!(probe, Ok(Ok(())))
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, body = HealthBody))
)]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
    })
}

/// Ready to serve: the database answers and a champion model is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = ReadyBody),
        (status = 503, description = "Database unreachable or no champion loaded", body = ReadyBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database_reachable = database_answers(&state).await;
    let model_version = state
        .snapshot
        .load()
        .as_ref()
        .and_then(|s| s.model_version().map(str::to_string));
    let error = if !database_reachable {
        Some("the database does not answer".to_string())
    } else if model_version.is_none() {
        Some("no champion model is loaded yet: train one with `cinematch train`".to_string())
    } else {
        None
    };
    let ready = error.is_none();
    let body = ReadyBody {
        ready,
        database_reachable,
        model_version,
        error,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics: requests and latency per route, the model served,
/// the buffer size and the last drift check.
///
/// The database figures come from the statistics the dashboard caches
/// (`stats_ttl`); whether the database is up is asked on the probes' own
/// connection at every scrape.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8192);
    state.metrics.render(&mut out);
    let snap = state.snapshot.load_full();
    let model = snap.as_ref().and_then(|s| s.recommender.as_ref());
    let (recent_ratings, recent_users) = state.recent_counts();
    metrics::render_serving(
        &mut out,
        &Serving {
            model: model.map(|r| (r.model_version.as_str(), r.model.algo().as_str())),
            catalogue_movies: snap.as_ref().map_or(0, |s| s.catalogue.len()),
            loaded_at: snap.as_ref().map(|s| s.loaded_at.timestamp()),
            reloads: state.reloads.load(Ordering::Relaxed),
            reload_failures: state.reload_failures.load(Ordering::Relaxed),
            recent_ratings,
            recent_users,
            stats_refreshes: state.stats.refreshes(),
            lists_cached: model.map_or(0, |r| r.cached_lists()),
            precompute_remaining: snap
                .as_ref()
                .map_or(0, |s| s.precompute_remaining.load(Ordering::Acquire)),
            db_connections: state.pool.size(),
            db_connections_in_use: state.pool.in_use(),
        },
    );
    let up = database_answers(&state).await;
    // Statistics still being computed (a slow database) leave their gauges
    // out of this scrape; they do not make the database look down.
    let stats = if up {
        tokio::time::timeout(PROBE_TIMEOUT, state.statistics())
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let db = stats.as_deref().map(|s| Database {
        buffer_ratings: s.buffer,
        last_check: s.last_check().first().map(|first| {
            (
                first.alert_date.and_utc().timestamp(),
                s.last_check()
                    .iter()
                    .map(|a| DriftScore {
                        feature: &a.feature_name,
                        score: a.drift_score,
                        triggered: a.alert_triggered,
                    })
                    .collect(),
            )
        }),
    });
    metrics::render_database(&mut out, up, db.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
