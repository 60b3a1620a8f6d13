//! `GET /api/models`: the registry, every run with its metrics.

use crate::registry;
use crate::server::errors::{ApiError, ErrorBody};
use crate::server::state::AppState;
use axum::extract::State;
use axum::Json;

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
