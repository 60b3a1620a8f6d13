//! `GET /api/models`: the registry, every run with its metrics; promotion
//! and rollback behind the write token.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::date;
use crate::registry::{self, Objective, RunSummary};
use crate::server::auth::Authorized;
use crate::server::errors::{ApiError, ErrorBody};
use crate::server::state::AppState;
use crate::Error;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelBody {
    pub(super) model_version: String,
    /// `YYYY-MM-DDTHH:MM:SS`, as stored.
    training_date: String,
    algorithm: Option<String>,
    /// Test RMSE; null for ranking models (they predict no ratings) and
    /// without a test split.
    rmse: Option<f64>,
    mae: Option<f64>,
    /// The spec's rated-items precision@10.
    precision_at_10: Option<f64>,
    /// Full-catalogue NDCG@10 (relevant = test rating >= 4).
    ndcg_at_10: Option<f64>,
    /// Full-catalogue recall@10.
    recall_at_10: Option<f64>,
    /// Full-catalogue precision@10 (hits / 10).
    catalogue_precision_at_10: Option<f64>,
    /// Share of the catalogue in some user's top 10.
    coverage: Option<f64>,
    data_size: Option<i64>,
    /// RMSE of the previous run.
    prev_rmse: Option<f64>,
    /// `rmse - prev_rmse` (negative is better), as the spec's LAG query.
    rmse_improvement: Option<f64>,
    /// The deployment's objective (`ndcg@10`, `rmse`), and this run's
    /// value of it and its change from the previous run.
    objective: String,
    objective_value: Option<f64>,
    objective_change: Option<f64>,
    is_champion: bool,
    /// The run's JSON notes: hyperparameters, seed, extra metrics, timings.
    notes: Option<Value>,
}

impl ModelBody {
    /// `prev_rmse`: the previous run's RMSE (the spec's LAG).
    fn new(r: &RunSummary, objective: Objective, prev_rmse: Option<f64>) -> ModelBody {
        let run = &r.run;
        ModelBody {
            model_version: run.model_version.clone(),
            training_date: date(run.training_date),
            algorithm: r.algorithm(),
            rmse: run.rmse,
            mae: run.mae,
            precision_at_10: run.precision_at_10,
            ndcg_at_10: r.report.ndcg_at_10,
            recall_at_10: r.report.recall_at_10,
            catalogue_precision_at_10: r.report.rank_precision_at_10,
            coverage: r.report.coverage,
            data_size: run.data_size,
            prev_rmse,
            rmse_improvement: run.rmse.zip(prev_rmse).map(|(a, b)| a - b),
            objective: objective.as_str().to_string(),
            objective_value: r.value,
            objective_change: r.change,
            is_champion: r.is_champion,
            notes: run
                .notes
                .as_deref()
                .map(|n| serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.to_string()))),
        }
    }

    /// Every run as a body, oldest first, with the spec's RMSE LAG.
    pub(super) fn all(runs: &[RunSummary], objective: Objective) -> Vec<ModelBody> {
        let mut prev = None;
        runs.iter()
            .map(|r| {
                let body = ModelBody::new(r, objective, prev);
                prev = r.run.rmse;
                body
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsBody {
    champion: Option<String>,
    /// What runs are compared on in this deployment.
    objective: String,
    /// Oldest first.
    models: Vec<ModelBody>,
}

/// Every model version with its metrics and the RMSE change from the run
/// before, oldest first.
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
    Ok(Json(ModelsBody {
        champion,
        objective: objective.as_str().to_string(),
        models: ModelBody::all(&runs, objective),
    }))
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
