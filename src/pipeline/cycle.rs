//! One monitoring cycle: ingest (when a batch is given), drift check,
//! retrain if drift; each step's outcome recorded in `pipeline_runs`.
//!
//! Steps are idempotent, so a failed cycle is simply run again: a batch that
//! already landed is skipped, the drift check runs again, and retraining
//! commits atomically or not at all. Cycles never overlap, also across
//! processes and machines: each holds the pipeline lease ([`super::lease`]),
//! as `cinematch retrain` does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::drift_check::{self, Thresholds};
use super::ingest;
use super::lease::{PipelineLease, DEFAULT_LEASE};
use super::retrain::{self, RetrainOptions, RetrainOutcome};
use crate::data::ReadOptions;
use crate::progress::Progress;
use crate::store::Store;
use crate::types::{PipelineStatus, StepStatus};
use crate::{Error, Result};

/// When a cycle retrains: on drift (the spec's pipeline), every cycle, or
/// never (ingest and check only; the buffer waits and users' new ratings
/// are folded in). The backtest compares them; `pipeline run` retrains on
/// drift unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetrainWhen {
    #[default]
    Drift,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct CycleOptions {
    /// A batch file to ingest first, with its batch id.
    pub batch: Option<(PathBuf, String)>,
    /// When the cycle retrains.
    pub retrain_when: RetrainWhen,
    pub read: ReadOptions,
    pub thresholds: Thresholds,
    pub retrain: RetrainOptions,
    /// Length of the pipeline lease (see [`super::lease`]): how long a
    /// vanished holder blocks the next cycle.
    pub lease: Duration,
}

impl Default for CycleOptions {
    fn default() -> Self {
        CycleOptions {
            batch: None,
            retrain_when: RetrainWhen::Drift,
            read: ReadOptions::default(),
            thresholds: Thresholds::default(),
            retrain: RetrainOptions::default(),
            lease: DEFAULT_LEASE,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: StepStatus,
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct CycleReport {
    pub run_id: i64,
    pub succeeded: bool,
    pub steps: Vec<Step>,
    /// Whether drift was detected in this cycle.
    pub drift: bool,
    pub retrain: Option<RetrainOutcome>,
}

impl CycleReport {
    pub fn summary(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("{}: {}", s.name, s.status))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The summary of a run found still 'running' by the next cycle.
pub const INTERRUPTED_RUN: &str = "interrupted: the cycle's process stopped (killed, or lost the \
     database) before it finished; found by the next cycle";

/// Runs one cycle. Refuses with [`Error::Busy`] when another cycle or a
/// retrain holds the pipeline lease. Runs left 'running' by a cycle that
/// died are marked failed with [`INTERRUPTED_RUN`] first.
pub fn run_cycle(
    store: &mut dyn Store,
    opts: &CycleOptions,
    progress: &dyn Progress,
) -> Result<CycleReport> {
    let lease = PipelineLease::acquire(store, opts.lease)?;
    crate::failpoint::hit("pipeline:locked");
    let result = run_locked(store, opts, progress, &lease);
    lease.release(store);
    result
}

fn run_locked(
    store: &mut dyn Store,
    opts: &CycleOptions,
    progress: &dyn Progress,
    lease: &PipelineLease,
) -> Result<CycleReport> {
    let batch_id = opts.batch.as_ref().map(|(_, id)| id.as_str());
    // Cycles never overlap and this one holds the lock, so a run still
    // 'running' belongs to a process that died or lost the database: say so.
    for stale in store
        .pipeline_runs()?
        .into_iter()
        .filter(|r| r.status == PipelineStatus::Running)
    {
        store.finish_pipeline_run(
            stale.id,
            PipelineStatus::Failed,
            stale.steps.as_deref().unwrap_or("[]"),
            INTERRUPTED_RUN,
        )?;
    }
    let run_id = store.start_pipeline_run(batch_id)?;
    let mut steps = Vec::new();
    let mut drift = false;
    let mut retrained = None;
    let mut failed = false;

    if let Some((path, id)) = &opts.batch {
        let t = Instant::now();
        let (status, detail) = match ingest::ingest_file(store, path, id, opts.read) {
            Ok(r) => (
                StepStatus::Ok,
                format!("{} ratings ingested as {id}", r.records),
            ),
            Err(Error::BatchCompleted { .. }) => {
                (StepStatus::Skipped, format!("{id} was already ingested"))
            }
            Err(e) => {
                failed = true;
                (StepStatus::Failed, e.to_string())
            }
        };
        steps.push(step("ingest", status, detail, t));
    }

    if !failed {
        if let Err(e) = lease.check() {
            failed = true;
            steps.push(step(
                "drift_check",
                StepStatus::Failed,
                e.to_string(),
                Instant::now(),
            ));
        }
    }
    if !failed {
        let t = Instant::now();
        match drift_check::check(store, batch_id, &opts.thresholds) {
            Ok(report) => {
                drift = report.any_triggered();
                let fired: Vec<&str> = report
                    .retrain_alerts()
                    .map(|a| a.feature_name.as_str())
                    .collect();
                let info: Vec<&str> = report
                    .triggered()
                    .map(|a| a.feature_name.as_str())
                    .filter(|f| !drift_check::triggers_retraining(f))
                    .collect();
                let noted = if info.is_empty() {
                    String::new()
                } else {
                    format!(" (informational alerts: {})", info.join(", "))
                };
                let detail = if fired.is_empty() {
                    format!(
                        "{} tests, no drift that asks for a retrain{noted}",
                        report.alerts.len()
                    )
                } else {
                    format!("drift in {}{noted}", fired.join(", "))
                };
                steps.push(step("drift_check", StepStatus::Ok, detail, t));
            }
            Err(Error::NotFound(msg)) => {
                steps.push(step("drift_check", StepStatus::Skipped, msg, t))
            }
            Err(e) => {
                failed = true;
                steps.push(step("drift_check", StepStatus::Failed, e.to_string(), t));
            }
        }
    }

    if !failed {
        if let Err(e) = lease.check() {
            failed = true;
            steps.push(step(
                "retrain",
                StepStatus::Failed,
                e.to_string(),
                Instant::now(),
            ));
        }
    }
    if !failed {
        let t = Instant::now();
        let trigger = match opts.retrain_when {
            RetrainWhen::Drift => drift.then_some("drift detected by the pipeline"),
            RetrainWhen::Always => Some("every cycle retrains (policy always)"),
            RetrainWhen::Never => None,
        };
        if let Some(trigger) = trigger {
            match retrain::retrain_now(store, trigger, &opts.retrain, lease, progress) {
                Ok(outcome) => {
                    let detail = match &outcome {
                        RetrainOutcome::Retrained {
                            run,
                            decision,
                            merged,
                            ..
                        } => format!(
                            "{}: {decision}; {merged} buffered ratings merged into ratings",
                            run.model_version
                        ),
                        RetrainOutcome::Skipped { reason } => reason.clone(),
                    };
                    steps.push(step("retrain", StepStatus::Ok, detail, t));
                    retrained = Some(outcome);
                }
                Err(e) => {
                    failed = true;
                    steps.push(step("retrain", StepStatus::Failed, e.to_string(), t));
                }
            }
        } else {
            let why = match opts.retrain_when {
                RetrainWhen::Never => "this cycle never retrains (policy never)",
                _ => "no drift",
            };
            steps.push(step("retrain", StepStatus::Skipped, why.into(), t));
        }
    }

    let report = CycleReport {
        run_id,
        succeeded: !failed,
        steps,
        drift,
        retrain: retrained,
    };
    let steps_json = serde_json::to_string(&report.steps).unwrap_or_default();
    let recorded = store.finish_pipeline_run(
        run_id,
        if failed {
            PipelineStatus::Failed
        } else {
            PipelineStatus::Succeeded
        },
        &steps_json,
        &report.summary(),
    );
    match recorded {
        Ok(()) => Ok(report),
        // Typically the database went away mid-cycle: say where the cycle
        // stopped and what to do, not only what the driver saw.
        Err(Error::Postgres(msg)) => {
            let at = match report.steps.iter().find(|s| s.status == StepStatus::Failed) {
                Some(s) => format!("stopped at step {}", s.name),
                None => "finished its steps".to_string(),
            };
            Err(Error::Postgres(format!(
                "{msg}; pipeline run {run_id} {at} but could not record its outcome (each step \
                 commits whole or not at all): run the cycle again when the database is back"
            )))
        }
        Err(e) => Err(e),
    }
}

fn step(name: &'static str, status: StepStatus, detail: String, t: Instant) -> Step {
    Step {
        name,
        status,
        detail,
        seconds: (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }
}
