//! Retraining on train + buffer with the champion's algorithm and
//! hyperparameters, promotion if the challenger is not worse, and the buffer
//! merge, committed together in one transaction: a retrain killed at any
//! point leaves either everything or nothing, so no rating is lost or
//! doubled.

use std::time::Duration;

use super::drift_check::triggers_retraining;
use super::lease::{PipelineLease, DEFAULT_LEASE, PIPELINE_LEASE};

use crate::eval::EvalOptions;
use crate::models::{Algo, Hyperparams};
use crate::progress::Progress;
use crate::registry::{self, Objective, RunNotes, TrainOptions};
use crate::store::{DriftAlert, LeaseHold, ModelRun, RunCommit, Store};
use crate::tracking::MlflowConfig;
use crate::{Error, Result};

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
    /// Length of the pipeline lease [`retrain`] holds (a cycle's retrain
    /// runs under the cycle's lease).
    pub lease: Duration,
    /// Serve what you know: a promoted retrain is refit on every stored
    /// rating and the refit serves (see [`registry::refit`]).
    pub refit: bool,
    /// Skip (and record nothing) when there is nothing new to learn from:
    /// the buffer is empty, no drift alert asks for a retrain within
    /// `window_secs`, and the champion was trained on the current dataset.
    /// Retraining the champion's settings on the same data only records an
    /// identical run.
    pub only_if_new: bool,
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
            lease: DEFAULT_LEASE,
            refit: false,
            only_if_new: false,
        }
    }
}

// One value per retrain: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
        /// The run was good enough to promote, but the champion changed
        /// while it trained (a rollback or another promotion): this is the
        /// champion that stays. `decision` says so too.
        champion_changed: Option<String>,
        /// The refit serving in the promoted run's place
        /// ([`RetrainOptions::refit`]).
        refit: Option<ModelRun>,
    },
}

/// The answer to the spec's "Is retraining needed?", for every place that
/// shows it (`drift status`, `retrain --if-drift`, `/api/status`, the
/// dashboard).
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Triggered alerts within the window that no retrain has acted on yet,
    /// newest first: retraining is needed when there is any.
    pub alerts: Vec<DriftAlert>,
    /// Triggered alerts within the window that the latest retrain already
    /// acted on (raised before it started).
    pub handled: Vec<DriftAlert>,
    /// That retrain's model version, when it handled any.
    pub handled_by: Option<String>,
}

impl Verdict {
    pub fn needed(&self) -> bool {
        !self.alerts.is_empty()
    }

    /// The distinct test names of the open alerts, sorted.
    pub fn features(&self) -> Vec<String> {
        let mut names: Vec<String> = self.alerts.iter().map(|a| a.feature_name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The spec's check (any alert triggered within the window, of the tests
/// that ask for a retrain: see [`triggers_retraining`]), less the alerts
/// a retrain has already acted on: a retrain records in its notes
/// ([`RunNotes::alerts_through`]) the newest alert id when it started, and alerts up to
/// that id were computed on data it trained on and merged. Ids, not times,
/// so no clock of any machine matters. An alert raised after the retrain
/// started (on data it may not have seen) counts again.
pub fn retraining_verdict(store: &mut dyn Store, window_secs: i64) -> Result<Verdict> {
    let triggered: Vec<DriftAlert> = store
        .drift_alerts(Some(window_secs))?
        .into_iter()
        .filter(|a| a.alert_triggered && triggers_retraining(&a.feature_name))
        .collect();
    if triggered.is_empty() {
        return Ok(Verdict::default());
    }
    let latest = store.model_runs()?.into_iter().rev().find_map(|r| {
        let notes = RunNotes::parse(r.notes.as_deref())?;
        if notes.kind.as_deref() != Some("retrain") {
            return None;
        }
        Some((r.model_version, notes.alerts_through))
    });
    let (handled, alerts): (Vec<DriftAlert>, Vec<DriftAlert>) = match &latest {
        Some((_, Some(through))) => triggered.into_iter().partition(|a| a.id <= *through),
        _ => (Vec::new(), triggered),
    };
    Ok(Verdict {
        handled_by: latest.filter(|_| !handled.is_empty()).map(|(v, _)| v),
        alerts,
        handled,
    })
}

/// The tests behind a "retraining needed" verdict (see
/// [`retraining_verdict`]); empty when none is needed.
pub fn retraining_needed(store: &mut dyn Store, window_secs: i64) -> Result<Vec<String>> {
    Ok(retraining_verdict(store, window_secs)?.features())
}

/// `cinematch retrain`: holds the pipeline lease (so no cycle runs
/// meanwhile; [`Error::Busy`] if one does), then retrains
/// unconditionally or, with `if_drift`, when the verdict asks for it.
pub fn retrain(
    store: &mut dyn Store,
    opts: &RetrainOptions,
    progress: &dyn Progress,
) -> Result<RetrainOutcome> {
    let lease = PipelineLease::acquire(store, opts.lease)?;
    let outcome = retrain_leased(store, opts, &lease, progress);
    lease.release(store);
    outcome
}

fn retrain_leased(
    store: &mut dyn Store,
    opts: &RetrainOptions,
    lease: &PipelineLease,
    progress: &dyn Progress,
) -> Result<RetrainOutcome> {
    let trigger = if opts.if_drift {
        let verdict = retraining_verdict(store, opts.window_secs)?;
        if !verdict.needed() {
            let handled = match &verdict.handled_by {
                Some(v) => format!(
                    " ({} triggered alerts were already handled by retrain {v})",
                    verdict.handled.len()
                ),
                None => String::new(),
            };
            return Ok(RetrainOutcome::Skipped {
                reason: format!(
                    "no drift alert triggered in the last {}{handled}: NO ACTION REQUIRED",
                    human_secs(opts.window_secs)
                ),
            });
        }
        format!("drift alerts: {}", verdict.features().join(", "))
    } else {
        if opts.only_if_new {
            if let Some(reason) = nothing_new(store, opts.window_secs)? {
                return Ok(RetrainOutcome::Skipped { reason });
            }
        }
        "unconditional".to_string()
    };
    retrain_now(store, &trigger, opts, lease, progress)
}

/// Why a retrain would learn nothing (see [`RetrainOptions::only_if_new`]),
/// or `None` when there is something new: buffered ratings, an open drift
/// verdict, or a champion trained on another dataset (or none at all).
fn nothing_new(store: &mut dyn Store, window_secs: i64) -> Result<Option<String>> {
    let buffered: i64 = store.buffer_counts()?.iter().map(|(_, n)| n).sum();
    if buffered > 0 {
        return Ok(None);
    }
    if retraining_verdict(store, window_secs)?.needed() {
        return Ok(None);
    }
    let Some(champion) = registry::champion_run(store)? else {
        return Ok(None);
    };
    let trained_on = RunNotes::parse(champion.notes.as_deref())
        .and_then(|n| n.dataset)
        .unwrap_or(0);
    if trained_on != store.dataset_version()? {
        return Ok(None);
    }
    Ok(Some(format!(
        "nothing new to learn from: the buffer is empty and no drift alert triggered in the \
         last {}, so a retrain would only repeat the champion {}; nothing was recorded",
        human_secs(window_secs),
        champion.model_version
    )))
}

/// Retrains without consulting the alerts table; `trigger` says why (it is
/// recorded in the run's notes). The caller holds the pipeline `lease`.
///
/// The promotion is compare-and-set against the champion read at the start:
/// if a rollback or another promotion replaced it meanwhile, the run is
/// recorded (and the buffer merged) without promotion, and the outcome says
/// which champion stays and why.
///
/// The merge moves exactly the buffered ratings training read: ratings that
/// arrive while it trains (posted to the API, ingested by hand) stay
/// buffered for the next retrain, so every rating merged was trained on, and
/// the run's notes name the batches and the count it merged. The commit
/// happens only while `lease` is still this process's, checked in its
/// transaction: a holder that lost it merges and promotes nothing
/// ([`Error::Busy`]).
pub fn retrain_now(
    store: &mut dyn Store,
    trigger: &str,
    opts: &RetrainOptions,
    lease: &PipelineLease,
    progress: &dyn Progress,
) -> Result<RetrainOutcome> {
    // First: alerts raised from here on may concern data this retrain does
    // not see, so they must keep asking for a retrain.
    let alerts_through = store.drift_alerts(None)?.iter().map(|a| a.id).max();
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
        champion_before: champion.clone(),
        alerts_through,
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
    // What training read of the buffer is what the commit merges.
    let read = trained.buffer.take();
    let batches = read.as_ref().map(|b| b.batches.clone()).unwrap_or_default();
    trained.notes.batches = Some(batches.clone());
    let merge_through = read.map(|b| b.bound);
    trained.notes.buffer_through = merge_through.map(|b| {
        b.through
            .format(crate::store::BufferBound::THROUGH_FORMAT)
            .to_string()
    });
    let hold = LeaseHold {
        name: PIPELINE_LEASE.to_string(),
        holder: lease.holder().to_string(),
    };

    let (promoted, decision) = match registry::gate(
        opts.objective,
        opts.tolerance,
        &trained,
        champion_run.as_ref(),
        false,
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
        promote_if_champion_is: Some(champion.clone()),
        merge_buffer: merge_through,
        lease: Some(hold.clone()),
    };
    crate::failpoint::hit("retrain:before_record");
    lease.check()?;
    let (run, merged, promoted, decision, champion_changed) =
        match registry::record(store, &trained, run_id.clone(), &commit) {
            Ok((run, merged)) => (run, merged, promoted, decision, None),
            Err(Error::ChampionChanged { expected, actual }) => {
                let decision = format!(
                    "not promoted: the champion changed from {} to {} while this retrain ran \
                     (a rollback or another promotion), so {} stays champion; the run would \
                     have been {decision}",
                    expected.as_deref().unwrap_or("none"),
                    actual.as_deref().unwrap_or("none"),
                    actual.as_deref().unwrap_or("none"),
                );
                tracing::warn!("{decision}");
                trained.notes.decision = Some(decision.clone());
                trained.notes.champion_changed_to = actual.clone();
                let commit = RunCommit {
                    merge_buffer: merge_through,
                    lease: Some(hold),
                    ..RunCommit::default()
                };
                let (run, merged) = registry::record(store, &trained, run_id, &commit)?;
                (
                    run,
                    merged,
                    false,
                    decision,
                    Some(actual.unwrap_or_default()),
                )
            }
            Err(e) => return Err(e),
        };
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
    let refit = if opts.refit && promoted {
        Some(registry::refit(store, &run, progress)?)
    } else {
        None
    };
    Ok(RetrainOutcome::Retrained {
        refit,
        run,
        promoted,
        decision,
        champion_before: champion,
        merged,
        batches,
        champion_changed,
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
