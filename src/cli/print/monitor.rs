//! `ingest`, `drift`, `retrain`, `pipeline` and `buffer`: the weekly cycle's steps.

use cinematch::format::{decimals, thousands};
use cinematch::pipeline::cycle::CycleReport;
use cinematch::pipeline::drift_check::DriftReport;
use cinematch::pipeline::ingest::IngestReport;
use cinematch::pipeline::retrain::{RetrainOutcome, Verdict};
use cinematch::store::{DriftAlert, NewDriftAlert, PipelineRun};

use super::data::skipped;
use super::DATE_TIME;
use crate::cli::table;

pub fn ingested(r: &IngestReport) {
    println!(
        "ingested {} ratings into ratings_buffer as batch {}",
        thousands(r.records as i64),
        r.batch_id
    );
    skipped(&r.skipped);
}

pub fn drift_check(report: &DriftReport, batch: Option<&str>) {
    println!(
        "compared {} buffered ratings{} with {} training ratings:",
        thousands(report.new_ratings as i64),
        batch.map(|b| format!(" (batch {b})")).unwrap_or_default(),
        thousands(report.baseline_ratings as i64)
    );
    alerts(&report.alerts);
    println!(
        "{}",
        if report.any_triggered() {
            "DRIFT DETECTED: RETRAINING NEEDED"
        } else {
            "no drift: NO ACTION REQUIRED"
        }
    );
}

fn alerts(alerts: &[NewDriftAlert]) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.feature_name.clone(),
                decimals(Some(a.drift_score), 4),
                decimals(Some(a.threshold), 4),
                if a.alert_triggered {
                    "ALERT".into()
                } else {
                    "ok".into()
                },
                a.notes.clone(),
            ]
        })
        .collect();
    table::print(
        &["feature_name", "drift_score", "threshold", "alert", "notes"],
        &rows,
    );
}

/// `drift status`: recent alerts and the verdict over the last day.
pub fn drift_status(alerts: &[DriftAlert], verdict: &Verdict) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.alert_date.format(DATE_TIME).to_string(),
                a.feature_name.clone(),
                decimals(a.drift_score, 4),
                decimals(a.threshold, 4),
                a.alert_triggered.to_string(),
                a.notes.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "alert_date",
            "feature_name",
            "drift_score",
            "threshold",
            "alert_triggered",
            "notes",
        ],
        &rows,
    );
    println!("retraining: {}", verdict_line(verdict));
}

/// The retraining verdict of the last day, as `drift status` and the demo say it.
pub(super) fn verdict_line(v: &Verdict) -> String {
    if v.needed() {
        format!("RETRAINING NEEDED ({})", v.features().join(", "))
    } else if let Some(by) = &v.handled_by {
        format!(
            "NO ACTION REQUIRED ({} alerts of the last day were handled by retrain {by})",
            v.handled.len()
        )
    } else {
        "NO ACTION REQUIRED".to_string()
    }
}

pub fn retrain(outcome: &RetrainOutcome) {
    match outcome {
        RetrainOutcome::Skipped { reason } => println!("retrain skipped: {reason}"),
        RetrainOutcome::Retrained {
            run,
            promoted,
            decision,
            champion_before,
            merged,
            batches,
            champion_changed,
            refit,
        } => {
            let measured = match (&run.evaluation, run.rmse) {
                (Some(e), rmse) if e.ndcg_at_10.is_some() => format!(
                    "NDCG@10 {}{}",
                    decimals(e.ndcg_at_10, 4),
                    rmse.map(|r| format!(", RMSE {r:.4}")).unwrap_or_default()
                ),
                (_, Some(r)) => format!("RMSE {r:.4}"),
                _ => "no test metrics".to_string(),
            };
            println!(
                "retrained {} on {} ratings (train + buffer batches {}): {measured}",
                run.model_version,
                thousands(run.data_size.unwrap_or(0)),
                if batches.is_empty() {
                    "none".to_string()
                } else {
                    batches.join(", ")
                },
            );
            println!("{decision}");
            if *promoted {
                println!(
                    "champion: {} -> {}",
                    champion_before.as_deref().unwrap_or("none"),
                    run.model_version
                );
            } else if let Some(now) = champion_changed {
                println!(
                    "champion stays {now} (it replaced {} while this retrain ran); {} is kept in the registry",
                    champion_before.as_deref().unwrap_or("none"),
                    run.model_version
                );
            } else {
                println!(
                    "champion stays {}; the challenger is kept in the registry",
                    champion_before.as_deref().unwrap_or("none")
                );
            }
            println!(
                "merged {} buffered ratings into ratings; the buffer is empty",
                thousands(*merged as i64)
            );
            if let Some(r) = refit {
                println!(
                    "serving {}: {} refit on every stored rating ({})",
                    r.model_version,
                    run.model_version,
                    thousands(r.data_size.unwrap_or(0))
                );
            }
        }
    }
}

pub fn cycle(report: &CycleReport) {
    println!(
        "pipeline run {}: {}",
        report.run_id,
        if report.succeeded {
            "succeeded"
        } else {
            "FAILED"
        }
    );
    for s in &report.steps {
        println!(
            "  {:<12} {:<8} {:>7.2}s  {}",
            s.name, s.status, s.seconds, s.detail
        );
    }
}

pub fn pipeline_history(runs: Vec<PipelineRun>) {
    let rows: Vec<Vec<String>> = runs
        .into_iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.started_at.format(DATE_TIME).to_string(),
                r.finished_at
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_default(),
                r.status.to_string(),
                r.batch_id.unwrap_or_default(),
                r.summary.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "started_at",
            "finished",
            "status",
            "batch_id",
            "steps",
        ],
        &rows,
    );
}

pub fn buffer_merged(n: u64) {
    println!(
        "merged {} buffered ratings into ratings (data_split = train)",
        thousands(n as i64)
    );
}

pub fn batch_cleared(batch: &str, n: u64) {
    println!(
        "cleared batch {batch}: deleted {} buffered ratings; it is marked 'cleared' and may be ingested again",
        thousands(n as i64)
    );
}

/// What a `buffer clear --yes` left in the buffer, and why.
pub fn buffer_kept(kept: &[(Option<String>, i64)], cleared_any: bool) {
    if !cleared_any {
        println!("no batch to clear");
    }
    for (b, n) in kept {
        match b {
            Some(b) => println!(
                "kept batch {b} ({} ratings posted through the API; --include-api clears them too)",
                thousands(*n)
            ),
            None => println!(
                "kept {} buffered ratings without a batch id (not written by CineMatch)",
                thousands(*n)
            ),
        }
    }
}

/// `scheduler --once`: a batch whose cycle could not start.
pub fn batch_not_run(batch: &str, error: &str) {
    println!("batch {batch}: not processed: {error}");
}

/// `scheduler --once`: a batch file refused, and why.
pub fn batch_refused(batch: &str, why: &str) {
    println!("batch {batch}: refused: {why}");
}

pub fn buffer_status(counts: Vec<(Option<String>, i64)>) {
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(b, n)| vec![b.unwrap_or_default(), thousands(n)])
        .collect();
    table::print(&["batch_id", "ratings"], &rows);
}
