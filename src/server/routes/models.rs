//! `GET /api/models`: the registry, every run with its metrics; promotion
//! and rollback behind the write token.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::registry;
use crate::server::auth::Authorized;
use crate::server::errors::{ApiError, ErrorBody};
use crate::server::state::AppState;
use crate::Error;

pub use crate::registry::view::{ModelBody, ModelsBody};

/// Every model version with its metrics, the RMSE change from the run
/// before (the spec's LAG) and the objective's change from the previous run
/// of the same algorithm, oldest first.
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "monitoring",
    responses(
        (status = 200, body = ModelsBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn models(State(state): State<AppState>) -> Result<Json<ModelsBody>, ApiError> {
    let objective = state.objective;
    let (champion, runs) = state
        .pool
        .run(move |store| {
            Ok((
                store.champion()?,
                registry::run_summaries(store, objective)?,
            ))
        })
        .await?;
    Ok(Json(ModelsBody::new(champion, objective, &runs)))
}

/// What a promotion or a rollback did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChampionChangeBody {
    /// The champion now.
    champion: String,
    /// The champion before (`null`: there was none).
    previous: Option<String>,
    /// False when the version was the champion already (nothing written).
    changed: bool,
    /// One line for a person.
    message: String,
}

/// After a change of champion: the dashboard's cached statistics go, and
/// this server loads the new champion now instead of at its next check
/// (other servers sharing the database follow at theirs).
fn champion_changed(state: &AppState) {
    state.stats.invalidate();
    let state = state.clone();
    tokio::spawn(async move {
        state.refresh().await;
    });
}

/// Makes a recorded model version the champion, as `cinematch models
/// promote` does. Needs the write token.
#[utoipa::path(
    post,
    path = "/api/models/{version}/promote",
    tag = "monitoring",
    params(("version" = String, Path, description = "A model version, as /api/models lists it")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The version is the champion", body = ChampionChangeBody),
        (status = 401, description = "No or a wrong write token", body = ErrorBody),
        (status = 403, description = "Writes are disabled (no CINEMATCH_API_TOKEN)", body = ErrorBody),
        (status = 404, description = "No such model version", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn promote(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(version): Path<String>,
) -> Result<Json<ChampionChangeBody>, ApiError> {
    let version = version.trim().to_string();
    if version.is_empty() || version.len() > 200 {
        return Err(ApiError::bad_request(
            "the model version must be 1 to 200 characters; /api/models lists them",
        ));
    }
    let body = state
        .pool
        .run(move |store| {
            let known = store
                .model_runs()?
                .iter()
                .any(|r| r.model_version == version);
            if !known {
                return Err(Error::NotFound(format!(
                    "no model version {version:?}; /api/models lists them"
                )));
            }
            let previous = store.champion()?;
            if previous.as_deref() == Some(version.as_str()) {
                return Ok(ChampionChangeBody {
                    message: format!("{version} is the champion already; nothing changed"),
                    champion: version,
                    previous,
                    changed: false,
                });
            }
            store.promote(
                &version,
                "promoted through the API (POST /api/models/{version}/promote)",
            )?;
            Ok(ChampionChangeBody {
                message: format!(
                    "{version} is the champion (was {})",
                    previous.as_deref().unwrap_or("none")
                ),
                champion: version,
                previous,
                changed: true,
            })
        })
        .await?;
    if body.changed {
        tracing::info!(to = %body.champion, from = ?body.previous, "promoted through the API");
        champion_changed(&state);
    }
    Ok(Json(body))
}

/// Rolls the champion back to the one before, as `cinematch models
/// rollback` does. Needs the write token; 409 when there is nothing to
/// roll back to.
#[utoipa::path(
    post,
    path = "/api/models/rollback",
    tag = "monitoring",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The previous champion serves again", body = ChampionChangeBody),
        (status = 401, description = "No or a wrong write token", body = ErrorBody),
        (status = 403, description = "Writes are disabled (no CINEMATCH_API_TOKEN)", body = ErrorBody),
        (status = 409, description = "No champion, or no earlier one to return to", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    _auth: Authorized,
) -> Result<Json<ChampionChangeBody>, ApiError> {
    let (from, to) = state
        .pool
        .run(|store| match store.rollback() {
            Err(Error::NotFound(m)) => Err(Error::Conflict(m)),
            other => other,
        })
        .await?;
    tracing::info!(%from, %to, "rolled back through the API");
    champion_changed(&state);
    Ok(Json(ChampionChangeBody {
        message: format!("Rolled back from {from}; {to} is the champion again"),
        champion: to,
        previous: Some(from),
        changed: true,
    }))
}
