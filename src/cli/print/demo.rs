//! `demo`: the story as it runs, then the spec's monitoring queries.

use cinematch::format::{decimals, signed, thousands};
use cinematch::pipeline::retrain::Verdict;
use cinematch::registry::{Objective, RunSummary};
use cinematch::store::{DriftAlert, Ingestion};

use super::models::version_cell;
use super::monitor::verdict_line;
use super::DATE_TIME;
use crate::cli::table;

pub fn demo_start(location: &str) {
    println!("CineMatch demo on {location}");
}

/// One line of the story as the demo tells it.
pub fn demo_line(line: &str) {
    println!("{line}");
}

/// What the demo left in the database, as the spec's queries show it.
pub fn demo_tables(
    ingestions: Vec<Ingestion>,
    runs: &[RunSummary],
    objective: Objective,
    alerts: Vec<DriftAlert>,
    verdict: &Verdict,
) {
    println!();
    ingestions_table(ingestions);
    println!();
    model_runs_table(runs, objective);
    println!();
    drift_alerts_table(alerts);
    println!();
    println!("Is retraining needed? {}", verdict_line(verdict));
}

pub fn demo_finished(took: std::time::Duration, location: &str) {
    println!(
        "demo finished in {:.1}s; explore it with `cinematch --db {location} models list`, `recommend --user 1`, `serve`",
        took.as_secs_f64()
    );
}

fn ingestions_table(ingestions: Vec<Ingestion>) {
    println!("SELECT * FROM ingestion_metadata ORDER BY ingestion_date DESC;");
    let rows: Vec<Vec<String>> = ingestions
        .into_iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.batch_id,
                i.ingestion_date
                    .map(|d| d.format(DATE_TIME).to_string())
                    .unwrap_or_default(),
                i.record_count.map(thousands).unwrap_or_default(),
                i.status.map(|s| s.to_string()).unwrap_or_default(),
                i.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "batch_id",
            "ingestion_date",
            "record_count",
            "status",
            "notes",
        ],
        &rows,
    );
}

/// "svd retrain; promoted ...": what a run was, from its notes.
fn run_summary(r: &RunSummary) -> String {
    let Some(n) = &r.notes else {
        return String::new();
    };
    let kind = n.kind.as_deref().unwrap_or("initial");
    format!(
        "{} {}{}",
        r.algorithm().unwrap_or_default(),
        kind,
        n.decision
            .as_deref()
            .map(|d| format!("; {d}"))
            .unwrap_or_default()
    )
}

fn model_runs_table(runs: &[RunSummary], objective: Objective) {
    println!(
        "SELECT * FROM model_metrics JOIN model_evaluations USING (model_version) \
         ORDER BY training_date DESC;  -- with {objective} - LAG({objective})"
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .rev()
        .map(|r| {
            vec![
                r.run.id.to_string(),
                version_cell(r),
                r.run.training_date.format(DATE_TIME).to_string(),
                decimals(r.report.ndcg_at_10, 4),
                decimals(r.run.rmse, 4),
                decimals(r.run.mae, 4),
                decimals(r.run.precision_at_10, 4),
                r.run.data_size.map(thousands).unwrap_or_default(),
                signed(r.change, 4),
                run_summary(r),
            ]
        })
        .collect();
    let change = format!("{}_change", objective.as_str());
    table::print(
        &[
            "id",
            "model_version",
            "training_date",
            "ndcg@10",
            "rmse",
            "mae",
            "precision_at_10",
            "data_size",
            &change,
            "notes",
        ],
        &rows,
    );
}

fn drift_alerts_table(alerts: Vec<DriftAlert>) {
    println!("SELECT * FROM drift_alerts ORDER BY alert_date DESC;");
    let rows: Vec<Vec<String>> = alerts
        .into_iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.alert_date.format(DATE_TIME).to_string(),
                a.feature_name,
                decimals(a.drift_score, 4),
                decimals(a.threshold, 4),
                a.alert_triggered.to_string(),
                a.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "alert_date",
            "feature_name",
            "drift_score",
            "threshold",
            "alert_triggered",
            "notes",
        ],
        &rows,
    );
}
