//! Drift alerts and the pipeline's run history.

use super::PgStore;
use crate::store::{DriftAlert, NewDriftAlert, PipelineRun};
use crate::types::PipelineStatus;
use crate::Result;

pub(super) fn insert_drift_alerts(store: &mut PgStore, alerts: &[NewDriftAlert]) -> Result<()> {
    let mut tx = store.client.transaction()?;
    let stmt = tx.prepare(
        "INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered, notes)
         VALUES (NOW(), $1, $2, $3, $4, $5)",
    )?;
    for a in alerts {
        tx.execute(
            &stmt,
            &[
                &a.feature_name,
                &a.drift_score,
                &a.threshold,
                &a.alert_triggered,
                &a.notes,
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn drift_alerts(
    store: &mut PgStore,
    within_secs: Option<i64>,
) -> Result<Vec<DriftAlert>> {
    let rows = store.client.query(
        "SELECT id::int8, alert_date, feature_name::text, drift_score, threshold, alert_triggered, notes
           FROM drift_alerts
          WHERE $1::int8 IS NULL OR alert_date > NOW() - make_interval(secs => $1::int8)
          ORDER BY alert_date DESC, id DESC",
        &[&within_secs],
    )?;
    Ok(rows
        .iter()
        .map(|r| DriftAlert {
            id: r.get(0),
            alert_date: r.get(1),
            feature_name: r.get::<_, Option<String>>(2).unwrap_or_default(),
            drift_score: r.get(3),
            threshold: r.get(4),
            alert_triggered: r.get::<_, Option<bool>>(5).unwrap_or(false),
            notes: r.get(6),
        })
        .collect())
}

pub(super) fn archive_drift_alerts(store: &mut PgStore, older_than_secs: i64) -> Result<u64> {
    let mut tx = store.client.transaction()?;
    tx.batch_execute(
        // Only when missing: even IF NOT EXISTS needs CREATE on the schema, which ml_pipeline lacks.
        "DO $$ BEGIN IF to_regclass('drift_alerts_archive') IS NULL THEN CREATE TABLE drift_alerts_archive (LIKE drift_alerts INCLUDING DEFAULTS); END IF; END $$",
    )?;
    let n = tx.execute(
        "WITH moved AS (
            DELETE FROM drift_alerts WHERE alert_date < NOW() - make_interval(secs => $1::int8)
            RETURNING *)
         INSERT INTO drift_alerts_archive SELECT * FROM moved",
        &[&older_than_secs],
    )?;
    tx.commit()?;
    Ok(n)
}

pub(super) fn start_pipeline_run(store: &mut PgStore, batch_id: Option<&str>) -> Result<i64> {
    Ok(store
        .client
        .query_one(
            "INSERT INTO pipeline_runs (started_at, status, batch_id)
             VALUES (clock_timestamp(), 'running', $1) RETURNING id::int8",
            &[&batch_id],
        )?
        .get(0))
}

pub(super) fn finish_pipeline_run(
    store: &mut PgStore,
    id: i64,
    status: PipelineStatus,
    steps: &str,
    summary: &str,
) -> Result<()> {
    store.client.execute(
        "UPDATE pipeline_runs SET finished_at = clock_timestamp(), status = $2, steps = $3, summary = $4
          WHERE id = $1::int8",
        &[&id, &status.as_str(), &steps, &summary],
    )?;
    Ok(())
}

pub(super) fn pipeline_runs(store: &mut PgStore) -> Result<Vec<PipelineRun>> {
    let rows = store.client.query(
        "SELECT id::int8, started_at, finished_at, status::text, batch_id::text, steps, summary
           FROM pipeline_runs ORDER BY id DESC",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(PipelineRun {
            id: r.get(0),
            started_at: r.get(1),
            finished_at: r.get(2),
            status: r.try_get(3)?,
            batch_id: r.get(4),
            steps: r.get(5),
            summary: r.get(6),
        });
    }
    Ok(out)
}
