//! The `--json` answers of commands the API has no route for, or whose
//! route answers more: camelCase field names as the API's (`alertDate`,
//! `batchId`, `ratings`), timestamps `YYYY-MM-DDTHH:MM:SS` as stored.

use serde::Serialize;
use serde_json::Value;

use cinematch::pipeline::retrain::Verdict;
use cinematch::server::AlertBody;
use cinematch::store::{Backend, DriftAlert, PipelineRun, SplitStats, TableCount, TableSize};

fn date(d: chrono::NaiveDateTime) -> String {
    d.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `drift status --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatusJson {
    /// The window asked for (`--window`).
    window: String,
    /// Newest first.
    alerts: Vec<AlertBody>,
    /// The spec's check over the last day, as `/api/status` gives it.
    retraining_needed: bool,
    /// The alerts behind the verdict, newest first.
    recent_alerts: Vec<AlertBody>,
    /// The retrain that already acted on older triggered alerts, if any.
    handled_by: Option<String>,
}

impl DriftStatusJson {
    pub fn new(window: &str, alerts: &[DriftAlert], verdict: &Verdict) -> DriftStatusJson {
        DriftStatusJson {
            window: window.to_string(),
            alerts: alerts.iter().map(AlertBody::from).collect(),
            retraining_needed: verdict.needed(),
            recent_alerts: verdict.alerts.iter().map(AlertBody::from).collect(),
            handled_by: verdict.handled_by.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCountJson {
    batch_id: Option<String>,
    ratings: i64,
}

/// `buffer status --json`: `/api/status`'s `buffer`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BufferJson {
    total: i64,
    batches: Vec<BatchCountJson>,
}

impl BufferJson {
    pub fn new(counts: Vec<(Option<String>, i64)>) -> BufferJson {
        BufferJson {
            total: counts.iter().map(|(_, n)| n).sum(),
            batches: counts
                .into_iter()
                .map(|(batch_id, ratings)| BatchCountJson { batch_id, ratings })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableJson {
    table: String,
    rows: i64,
    /// On-disk size with indexes (`db stats` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitJson {
    split: String,
    records: i64,
    avg_rating: f64,
    std_rating: f64,
}

/// `db status --json` and `db stats --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbJson {
    /// The database, its password redacted.
    database: String,
    backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<String>,
    tables: Vec<TableJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    splits: Vec<SplitJson>,
}

impl DbJson {
    pub fn status(
        location: &str,
        backend: Backend,
        version: Option<String>,
        counts: Vec<TableCount>,
    ) -> DbJson {
        DbJson {
            database: location.to_string(),
            backend: backend.to_string(),
            schema_version: version,
            tables: counts
                .into_iter()
                .map(|c| TableJson {
                    table: c.table,
                    rows: c.rows,
                    bytes: None,
                })
                .collect(),
            splits: Vec::new(),
        }
    }

    pub fn stats(
        location: &str,
        backend: Backend,
        counts: Vec<TableCount>,
        sizes: Vec<TableSize>,
        splits: Vec<SplitStats>,
    ) -> DbJson {
        let mut j = DbJson::status(location, backend, None, counts);
        for t in &mut j.tables {
            t.bytes = sizes.iter().find(|s| s.table == t.table).map(|s| s.bytes);
        }
        j.splits = splits
            .into_iter()
            .map(|s| SplitJson {
                split: s.split,
                records: s.records,
                avg_rating: s.avg_rating,
                std_rating: s.std_rating,
            })
            .collect();
        j
    }
}

/// One row of `pipeline_runs` (`pipeline history --json`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunJson {
    id: i64,
    started_at: String,
    finished_at: Option<String>,
    status: String,
    batch_id: Option<String>,
    /// The step outcomes, as stored (a JSON array).
    steps: Option<Value>,
    summary: Option<String>,
}

impl From<PipelineRun> for PipelineRunJson {
    fn from(r: PipelineRun) -> PipelineRunJson {
        PipelineRunJson {
            id: r.id,
            started_at: date(r.started_at),
            finished_at: r.finished_at.map(date),
            status: r.status.to_string(),
            batch_id: r.batch_id,
            steps: r
                .steps
                .as_deref()
                .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))),
            summary: r.summary,
        }
    }
}

/// `pipeline history --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineHistoryJson {
    runs: Vec<PipelineRunJson>,
}

impl PipelineHistoryJson {
    pub fn new(runs: Vec<PipelineRun>) -> PipelineHistoryJson {
        PipelineHistoryJson {
            runs: runs.into_iter().map(PipelineRunJson::from).collect(),
        }
    }
}
