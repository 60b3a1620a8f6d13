//! `GET /api/status` (the champion, what this server serves, the buffer and
//! the retraining verdict) and `GET /api/ingestions` (the audit trail).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::date;
use super::drift::AlertBody;
use super::models::ModelBody;
use crate::registry;
use crate::server::auth::ReadAuthorized;
use crate::server::errors::{ApiError, ErrorBody};
use crate::server::state::AppState;
use crate::store::Ingestion;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionBody {
    id: i64,
    batch_id: String,
    ingestion_date: Option<String>,
    record_count: Option<i64>,
    /// completed, failed or in_progress.
    status: Option<String>,
    notes: Option<String>,
}

impl From<&Ingestion> for IngestionBody {
    fn from(i: &Ingestion) -> IngestionBody {
        IngestionBody {
            id: i.id,
            batch_id: i.batch_id.clone(),
            ingestion_date: i.ingestion_date.map(date),
            record_count: i.record_count,
            status: i.status.map(|s| s.to_string()),
            notes: i.notes.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionsBody {
    /// Newest first.
    ingestions: Vec<IngestionBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCount {
    batch_id: Option<String>,
    ratings: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BufferBody {
    total: i64,
    batches: Vec<BatchCount>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingBody {
    /// The version this server answers with; it follows the champion
    /// within the reload interval.
    model_version: Option<String>,
    loaded_at: Option<String>,
    catalogue_movies: usize,
    users_with_ratings: usize,
    /// Why the last champion check failed, if it did (the loaded model
    /// keeps serving meanwhile).
    last_reload_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusBody {
    database: String,
    champion: Option<ModelBody>,
    serving: ServingBody,
    buffer: BufferBody,
    /// The spec's check: any drift alert triggered in the last day that no
    /// retrain has acted on yet (one raised before the latest retrain started
    /// was computed on data that retrain trained on and merged).
    retraining_needed: bool,
    /// The alerts behind the verdict, newest first.
    recent_alerts: Vec<AlertBody>,
}

/// The ingestion audit trail (ingestion_metadata), newest first. Its notes
/// name delivered files (name, size, SHA-256) and why a batch failed, so on
/// a server with a read token (`CINEMATCH_READ_TOKEN`; the write token works
/// too) this route needs it, as a user's ratings do.
#[utoipa::path(
    get,
    path = "/api/ingestions",
    tag = "monitoring",
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = IngestionsBody),
        (status = 401, description = "The server has a read token and the request lacks it", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn ingestions(
    State(state): State<AppState>,
    _auth: ReadAuthorized,
) -> Result<Json<IngestionsBody>, ApiError> {
    let rows = state.pool.run(|store| store.ingestions()).await?;
    Ok(Json(IngestionsBody {
        ingestions: rows.iter().map(IngestionBody::from).collect(),
    }))
}

/// The champion, what this server serves, the buffer, and whether
/// retraining is needed.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "monitoring",
    responses(
        (status = 200, body = StatusBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    let objective = state.objective;
    let (champion, runs, buffer, recent) = state
        .pool
        .run(move |store| {
            let champion = store.champion()?;
            let runs = registry::run_summaries(store, objective)?;
            let buffer = store.buffer_counts()?;
            let recent = crate::pipeline::retrain::retraining_verdict(store, 86_400)?.alerts;
            Ok((champion, runs, buffer, recent))
        })
        .await?;
    let champion = champion.and_then(|v| {
        ModelBody::all(&runs, objective)
            .into_iter()
            .find(|b| b.model_version == v)
    });
    let snap = state.snapshot.load_full();
    Ok(Json(StatusBody {
        database: state.backend.to_string(),
        champion,
        serving: ServingBody {
            model_version: snap
                .as_ref()
                .and_then(|s| s.model_version().map(str::to_string)),
            loaded_at: snap
                .as_ref()
                .map(|s| s.loaded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            catalogue_movies: snap.as_ref().map_or(0, |s| s.catalogue.len()),
            users_with_ratings: snap.as_ref().map_or(0, |s| s.users_with_ratings()),
            last_reload_error: state
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        },
        buffer: BufferBody {
            total: buffer.iter().map(|(_, n)| n).sum(),
            batches: buffer
                .into_iter()
                .map(|(batch_id, ratings)| BatchCount { batch_id, ratings })
                .collect(),
        },
        retraining_needed: !recent.is_empty(),
        recent_alerts: recent.iter().map(AlertBody::from).collect(),
    }))
}
