//! `GET /api/drift`: the drift tests' results.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::date;
use crate::server::errors::{ApiError, ApiQuery, ErrorBody};
use crate::server::state::AppState;
use crate::store::DriftAlert;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertBody {
    id: i64,
    alert_date: String,
    feature_name: String,
    drift_score: Option<f64>,
    threshold: Option<f64>,
    alert_triggered: bool,
    notes: Option<String>,
}

impl From<&DriftAlert> for AlertBody {
    fn from(a: &DriftAlert) -> AlertBody {
        AlertBody {
            id: a.id,
            alert_date: date(a.alert_date),
            feature_name: a.feature_name.clone(),
            drift_score: a.drift_score,
            threshold: a.threshold,
            alert_triggered: a.alert_triggered,
            notes: a.notes.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftBody {
    days: u32,
    /// Newest first.
    alerts: Vec<AlertBody>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftQuery {
    /// Alerts of the last this many days, 1..3650 (default 30).
    days: Option<u32>,
}

/// Drift test results of the last `days` days, newest first.
#[utoipa::path(
    get,
    path = "/api/drift",
    tag = "monitoring",
    params(DriftQuery),
    responses(
        (status = 200, body = DriftBody),
        (status = 400, description = "days outside 1..3650", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn drift(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DriftQuery>,
) -> Result<Json<DriftBody>, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "days must be between 1 and 3650, got {days}"
        )));
    }
    let alerts = state
        .pool
        .run(move |store| store.drift_alerts(Some(i64::from(days) * 86_400)))
        .await?;
    Ok(Json(DriftBody {
        days,
        alerts: alerts.iter().map(AlertBody::from).collect(),
    }))
}
