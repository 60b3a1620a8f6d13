//! Retraining on train + buffer with the champion's algorithm and
//! hyperparameters, promotion if the challenger is not worse, and the buffer
//! merge, committed together in one transaction: a retrain killed at any
//! point leaves either everything or nothing, so no rating is lost or
//! doubled.

use crate::eval::EvalOptions;
use crate::models::{Algo, Hyperparams};
use crate::progress::Progress;
use crate::registry::{self, Objective, RunNotes, TrainOptions};
use crate::store::{ModelRun, RunCommit, Store};
use crate::tracking::MlflowConfig;
use crate::Result;

#[derive(Debug, Clone)]
pub struct RetrainOptions {
    /// Only retrain if a drift alert fired within `window_secs` (the spec's
    /// "Is retraining needed?" query).
    pub if_drift: bool,
    pub window_secs: i64,
    /// What the challenger and the champion are compared on.
    pub objective: Objective,
    /// Promote when the challenger is not worse than the champion on the
    /// objective by more than this share (see [`Objective::gate`]).
    pub tolerance: f64,
    pub eval: EvalOptions,
    /// Also track the retrain in MLflow (see [`crate::tracking`]); the
    /// default takes it from `MLFLOW_TRACKING_URI`.
    pub mlflow: Option<MlflowConfig>,
}

impl Default for RetrainOptions {
    fn default() -> Self {
        RetrainOptions {
            if_drift: false,
            window_secs: 24 * 3600,
            objective: Objective::default(),
            tolerance: 0.005,
            eval: EvalOptions::default(),
            mlflow: MlflowConfig::from_env(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum RetrainOutcome {
    /// Nothing was done, and why.
    Skipped { reason: String },
    Retrained {
        run: ModelRun,
        promoted: bool,
        /// Human-readable decision, also in the run's notes.
        decision: String,
        champion_before: Option<String>,
        /// Ratings moved from the buffer into `ratings`.
        merged: u64,
        batches: Vec<String>,
    },
}

/// The spec's "Is retraining needed?": any alert triggered within the window.
pub fn retraining_needed(store: &mut dyn Store, window_secs: i64) -> Result<Vec<String>> {
    let mut names: Vec<String> = store
        .drift_alerts(Some(window_secs))?
        .into_iter()
        .filter(|a| a.alert_triggered)
        .map(|a| a.feature_name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

pub fn retrain(
    store: &mut dyn Store,
    opts: &RetrainOptions,
    progress: &dyn Progress,
) -> Result<RetrainOutcome> {
    let trigger = if opts.if_drift {
        let fired = retraining_needed(store, opts.window_secs)?;
        if fired.is_empty() {
            return Ok(RetrainOutcome::Skipped {
                reason: format!(
                    "no drift alert triggered in the last {}: NO ACTION REQUIRED",
                    human_secs(opts.window_secs)
                ),
            });
        }
        format!("drift alerts: {}", fired.join(", "))
    } else {
        "unconditional".to_string()
    };
    retrain_now(store, &trigger, opts, progress)
}

/// Retrains without consulting the alerts table; `trigger` says why (it is
/// recorded in the run's notes).
pub fn retrain_now(
    store: &mut dyn Store,
    trigger: &str,
    opts: &RetrainOptions,
    progress: &dyn Progress,
) -> Result<RetrainOutcome> {
    let champion_run = registry::champion_run(store)?;
    let champion = champion_run.as_ref().map(|r| r.model_version.clone());
    // The champion's algorithm, hyperparameters and seed, from its notes.
    let notes = champion_run
        .as_ref()
        .and_then(|r| RunNotes::parse(r.notes.as_deref()));
    let params: Hyperparams = notes
        .as_ref()
        .and_then(|n| n.params.clone())
        .unwrap_or_else(|| Hyperparams::default_for(Algo::Ease));
    let seed = notes.as_ref().and_then(|n| n.seed).unwrap_or(42);
    let batches: Vec<String> = store
        .buffer_counts()?
        .into_iter()
        .map(|(b, _)| b.unwrap_or_else(|| "(no batch id)".into()))
        .collect();

    let mut train_opts = TrainOptions::new(params);
    train_opts.seed = seed;
    train_opts.include_buffer = true;
    train_opts.eval = opts.eval.clone();
    train_opts.mlflow = opts.mlflow.clone();
    train_opts.objective = opts.objective;
    train_opts.tolerance = opts.tolerance;
    train_opts.notes = RunNotes {
        kind: Some("retrain".into()),
        trigger: Some(trigger.to_string()),
        batches: Some(batches.clone()),
        champion_before: champion.clone(),
        ..RunNotes::default()
    };
    let mut tracker = registry::start_tracking(
        &train_opts,
        "retrain",
        &[
            ("cinematch.trigger", trigger.to_string()),
            (
                "cinematch.champion_before",
                champion.clone().unwrap_or_default(),
            ),
        ],
    );
    let mut trained = registry::fit_and_evaluate(store, &train_opts, progress)?;

    let (promoted, decision) = match registry::gate(
        opts.objective,
        opts.tolerance,
        &trained.report,
        champion_run.as_ref(),
    ) {
        None => (true, "promoted: no champion to compare with".to_string()),
        Some(d) if d.promote => (true, format!("promoted: {}", d.reason)),
        Some(d) => (false, format!("rejected: {}", d.reason)),
    };
    trained.notes.decision = Some(decision.clone());
    let run_id = tracker.run_id_for_version();
    registry::log_to_tracker(&mut tracker, &mut trained);
    let commit = RunCommit {
        promote_reason: promoted.then(|| format!("retrain ({trigger}); {decision}")),
        merge_buffer: true,
    };
    crate::failpoint::hit("retrain:before_record");
    let (run, merged) = registry::record(store, &trained, run_id, &commit)?;
    registry::finish_tracking(
        tracker,
        &run,
        &[
            ("cinematch.champion", promoted.to_string()),
            ("cinematch.promoted", promoted.to_string()),
            ("cinematch.decision", decision.clone()),
            ("cinematch.merged_ratings", merged.to_string()),
        ],
    );
    if promoted {
        registry::set_mlflow_champion(opts.mlflow.as_ref(), &trained.notes, &run);
    }
    Ok(RetrainOutcome::Retrained {
        run,
        promoted,
        decision,
        champion_before: champion,
        merged,
        batches,
    })
}

/// `86400` -> `24h`, for messages.
pub fn human_secs(s: i64) -> String {
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parses `30d`, `24h`, `15m`, `90s` (or bare seconds) into seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 86400),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('s') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    match num.trim().parse::<i64>() {
        Ok(n) if n >= 0 && n.checked_mul(mult).is_some() => Ok(n * mult),
        _ => Err(crate::Error::InvalidArgument(format!(
            "{s:?} is not a duration: use e.g. 30d, 24h, 15m or 90s"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("24h").unwrap(), 86400);
        assert_eq!(parse_duration_secs("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration_secs("15m").unwrap(), 900);
        assert_eq!(parse_duration_secs("90").unwrap(), 90);
        assert!(parse_duration_secs("-1h").is_err());
        assert!(parse_duration_secs("soon").is_err());
        assert_eq!(human_secs(86400), "1d");
        assert_eq!(human_secs(7200), "2h");
    }
}
