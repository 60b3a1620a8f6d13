//! Drift alerts and the pipeline's run history.

use rusqlite::params;

use super::rows::parse_ts;
use super::SqliteStore;
use super::NOW;
use crate::store::{DriftAlert, NewDriftAlert, PipelineRun};
use crate::types::PipelineStatus;
use crate::{Error, Result};

pub(super) fn insert_drift_alerts(store: &mut SqliteStore, alerts: &[NewDriftAlert]) -> Result<()> {
    let tx = store.conn.transaction()?;
    let now: String = tx.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered, notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for a in alerts {
            stmt.execute(params![
                now,
                a.feature_name,
                a.drift_score,
                a.threshold,
                a.alert_triggered,
                a.notes
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn drift_alerts(
    store: &mut SqliteStore,
    within_secs: Option<i64>,
) -> Result<Vec<DriftAlert>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, alert_date, feature_name, drift_score, threshold, alert_triggered, notes
           FROM drift_alerts
          WHERE ?1 IS NULL OR alert_date > strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ?1 || ' seconds')
          ORDER BY alert_date DESC, id DESC",
    )?;
    let rows = stmt
        .query_map([within_secs], |r| {
            Ok(DriftAlert {
                id: r.get(0)?,
                alert_date: parse_ts(&r.get::<_, String>(1)?),
                feature_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                drift_score: r.get(3)?,
                threshold: r.get(4)?,
                alert_triggered: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                notes: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn archive_drift_alerts(store: &mut SqliteStore, older_than_secs: i64) -> Result<u64> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS drift_alerts_archive AS SELECT * FROM drift_alerts WHERE 0",
    )?;
    // One cutoff for both statements: "now" read twice would move between
    // them, and alerts that crossed it meanwhile would be deleted unarchived.
    let cutoff: String = tx.query_row(
        "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ?1 || ' seconds')",
        [older_than_secs],
        |r| r.get(0),
    )?;
    let moved = tx.execute(
        "INSERT INTO drift_alerts_archive SELECT * FROM drift_alerts WHERE alert_date < ?1",
        [&cutoff],
    )?;
    let deleted = tx.execute("DELETE FROM drift_alerts WHERE alert_date < ?1", [&cutoff])?;
    if moved != deleted {
        return Err(Error::Conflict(format!(
            "archiving drift alerts older than {cutoff} copied {moved} but would delete \
             {deleted}; nothing was archived or deleted"
        )));
    }
    tx.commit()?;
    Ok(moved as u64)
}

pub(super) fn start_pipeline_run(store: &mut SqliteStore, batch_id: Option<&str>) -> Result<i64> {
    store.conn.execute(
        &format!("INSERT INTO pipeline_runs (started_at, status, batch_id) VALUES ({NOW}, 'running', ?1)"),
        [batch_id],
    )?;
    Ok(store.conn.last_insert_rowid())
}

pub(super) fn finish_pipeline_run(
    store: &mut SqliteStore,
    id: i64,
    status: PipelineStatus,
    steps: &str,
    summary: &str,
) -> Result<()> {
    store.conn.execute(
        &format!(
            "UPDATE pipeline_runs SET finished_at = {NOW}, status = ?2, steps = ?3, summary = ?4 WHERE id = ?1"
        ),
        params![id, status.as_str(), steps, summary],
    )?;
    Ok(())
}

pub(super) fn pipeline_runs(store: &mut SqliteStore) -> Result<Vec<PipelineRun>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, started_at, finished_at, status, batch_id, steps, summary
           FROM pipeline_runs ORDER BY id DESC",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PipelineRun {
                id: r.get(0)?,
                started_at: parse_ts(&r.get::<_, String>(1)?),
                finished_at: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
                status: r.get(3)?,
                batch_id: r.get(4)?,
                steps: r.get(5)?,
                summary: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
