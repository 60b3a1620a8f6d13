//! `cinematch backtest`: a deployment judged the way it lives, week by week
//! on ratings it has not seen yet.
//!
//! A MovieLens release (or a store's own ratings) is sorted by time and cut
//! into a history and the weeks after it ([`TimeCut`]). For each retraining
//! [`Policy`] the history is loaded into a store of its own and the first
//! model trained, exactly as `load` and `train` do; then, week after week:
//!
//! 1. the lists are served as the server serves them at the start of the
//!    week (the champion with its cold-start list and the niche re-ranking,
//!    every user's history, fold-ins for users with buffered ratings:
//!    [`Known`] and [`Recommender`]), and scored on what each user rated
//!    that week (see [`score`]), next to the all-time most-rated list and a
//!    trending list computed from the same store;
//! 2. the week's ratings go through the real pipeline as a batch file:
//!    ingestion, the drift check, the policy's retraining (with promotion
//!    and the buffer merge) — [`cycle::run_cycle`].
//!
//! Nothing is faked: every list comes from the code that serves requests,
//! every week's batch from a file ingestion reads. The result (per week
//! and the means over the weeks, with the policy and the model's
//! hyperparameters) is returned, recorded in the store the command runs
//! against (`backtests`), logged to MLflow when tracking is on, and charted
//! on the dashboard.

mod policy;
pub mod score;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use policy::Policy;
pub use score::{GroupScore, ListScores, WeekScores};

use super::cycle::{self, CycleOptions};
use super::drift_check::Thresholds;
use super::load::{self, LoadOptions, Source};
use super::retrain::RetrainOptions;
use crate::data::split::SplitOptions;
use crate::data::stream::{cut, sort_by_time, TimeCut};
use crate::data::writer::{write_movies_file, write_ratings_file};
use crate::data::{formats, ReadOptions};
use crate::models::popular::by_count;
use crate::models::Hyperparams;
use crate::progress::{Progress, Silent};
use crate::recommend::{Known, Recommender};
use crate::registry::{self, Objective, TrainOptions};
use crate::store::{self, BacktestRow, Store};
use crate::tracking::{MlflowConfig, RunStatus, RunTracker};
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// What is replayed.
#[derive(Debug, Clone)]
pub enum ReplaySource {
    /// A MovieLens release directory (any published format).
    Release(PathBuf),
    /// Every rating a store holds (both splits and the buffer) and its
    /// movies.
    Store(String),
}

impl ReplaySource {
    /// How the source is named in results (passwords redacted).
    pub fn describe(&self) -> String {
        match self {
            ReplaySource::Release(p) => p.display().to_string(),
            ReplaySource::Store(url) => format!("store {}", store::redact(url)),
        }
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    pub source: ReplaySource,
    pub cut: TimeCut,
    /// The policies replayed, each from the same history.
    pub policies: Vec<Policy>,
    /// The first model's algorithm and hyperparameters (retrains keep them).
    pub params: Hyperparams,
    pub seed: u64,
    /// The history's train share (the rest is its test split), as `load`.
    pub train_fraction: f64,
    pub k: usize,
    pub thresholds: Thresholds,
    pub objective: Objective,
    /// The retrain gate's tolerance.
    pub tolerance: f64,
    /// Serve what you know: every champion refit on every stored rating.
    pub refit: bool,
    /// The trending baseline counts this share of the history's ratings,
    /// the latest (a quarter: 20,169 ratings of ml-latest-small's history).
    pub trending_share: f64,
    /// Where the replay's stores and files go (a temporary directory,
    /// removed afterwards, when `None`).
    pub workdir: Option<PathBuf>,
    pub mlflow: Option<MlflowConfig>,
}

impl BacktestOptions {
    /// The replay: six equal weeks after the earliest 80%, the
    /// `drift` policy, the default ranking model.
    pub fn new(source: ReplaySource) -> BacktestOptions {
        BacktestOptions {
            source,
            cut: TimeCut::Share {
                weeks: 6,
                history_fraction: 0.8,
            },
            policies: vec![Policy::Drift],
            params: Hyperparams::default_for(crate::models::Algo::Ease),
            seed: 42,
            train_fraction: 0.7,
            k: 10,
            thresholds: Thresholds::default(),
            objective: Objective::default(),
            tolerance: 0.005,
            refit: false,
            trending_share: 0.25,
            workdir: None,
            mlflow: MlflowConfig::from_env(),
        }
    }
}

/// One replayed week of one policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeekResult {
    pub week: u32,
    /// The week's ratings and their time span (unix seconds).
    pub ratings: u64,
    pub first_timestamp: i64,
    pub last_timestamp: i64,
    pub scores: WeekScores,
    /// The model that served the week, and its cold-start list.
    pub champion: String,
    pub cold_start: String,
    /// Drift alerts of the week's check that ask for a retrain, and those
    /// that only inform.
    pub retrain_alerts: Vec<String>,
    pub info_alerts: Vec<String>,
    /// Whether the week's cycle retrained, and whether that promoted.
    pub retrained: bool,
    pub promoted: bool,
    pub seconds: f64,
}

/// One policy's replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyResult {
    pub policy: String,
    pub weeks: Vec<WeekResult>,
    /// Means over the weeks (each week weighs the same).
    pub mean: WeekScores,
    pub retrains: u32,
    /// Weeks in which an alert that asks for a retrain fired.
    pub alert_weeks: u32,
    pub algorithm: String,
    pub params: serde_json::Value,
    pub refit: bool,
    pub seconds: f64,
}

/// Everything a backtest measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacktestReport {
    pub backtest_id: String,
    pub source: String,
    /// The history: ratings, and the time of its latest.
    pub history_ratings: u64,
    pub history_end: i64,
    pub weeks: u32,
    pub trending_window: u64,
    pub policies: Vec<PolicyResult>,
}

/// Replays `opts` and records the result in `results` (each policy one
/// row of `backtests`; see the module docs).
pub fn backtest(
    results: &mut dyn Store,
    opts: &BacktestOptions,
    progress: &dyn Progress,
) -> Result<BacktestReport> {
    if opts.policies.is_empty() {
        return Err(Error::InvalidArgument(
            "no retraining policy to replay: name at least one (never, drift, always, every:N)"
                .into(),
        ));
    }
    if !(opts.trending_share > 0.0 && opts.trending_share <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "the trending share must be in (0, 1], got {}",
            opts.trending_share
        )));
    }
    opts.params.validate()?;
    let workdir = WorkDir::new(opts.workdir.as_deref())?;
    let dir = workdir.path();
    progress.stage("backtest: preparing the replay", None);
    let replay = Replay::prepare(&opts.source, &opts.cut, dir)?;
    progress.finish();
    let trending_window = ((replay.history as f64 * opts.trending_share).round() as u64).max(1);
    let backtest_id = registry::random_run_id();
    let total = (replay.weeks.len() * opts.policies.len()) as u64;
    progress.stage("backtest", Some(total));
    let mut policies = Vec::with_capacity(opts.policies.len());
    for &policy in &opts.policies {
        let result = replay_policy(&replay, policy, trending_window, opts, dir, progress)?;
        policies.push(result);
    }
    progress.finish();
    let report = BacktestReport {
        backtest_id,
        source: opts.source.describe(),
        history_ratings: replay.history as u64,
        history_end: replay.history_end,
        weeks: replay.weeks.len() as u32,
        trending_window,
        policies,
    };
    record(results, &report)?;
    track(opts.mlflow.as_ref(), &report);
    Ok(report)
}

/// Where the replay's files live: the directory asked for, or a fresh one
/// under the system's temporary directory that is removed afterwards.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(asked: Option<&Path>) -> Result<WorkDir> {
        let (path, remove) = match asked {
            Some(d) => (d.to_path_buf(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "cinematch-backtest-{}-{}",
                    std::process::id(),
                    registry::random_run_id()
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(WorkDir { path, remove })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The replay written out: a release of the history and a batch file per
/// week, with each week's ratings in memory for scoring.
struct Replay {
    release: PathBuf,
    history: usize,
    history_end: i64,
    /// (batch file, the week's ratings); an empty week has no file.
    weeks: Vec<(Option<PathBuf>, Vec<Rating>)>,
}

impl Replay {
    fn prepare(source: &ReplaySource, how: &TimeCut, dir: &Path) -> Result<Replay> {
        let (movies, mut ratings): (Vec<Movie>, Vec<Rating>) = match source {
            ReplaySource::Release(path) => {
                let data = formats::read_dir(path, ReadOptions::default())?;
                (data.movies, data.ratings)
            }
            ReplaySource::Store(url) => {
                let mut s = store::open(url)?;
                let mut all = s.ratings(Split::Train)?;
                all.extend(s.ratings(Split::Test)?);
                all.extend(s.buffer_ratings(None)?);
                let mut movies = s.movies()?;
                // The replay computes its own genre features on load.
                movies.iter_mut().for_each(|m| m.pca_features = None);
                (movies, all)
            }
        };
        sort_by_time(&mut ratings);
        let (history, chunks) = cut(&ratings, how)?;
        let release = dir.join("history");
        std::fs::create_dir_all(&release).map_err(|e| Error::io(&release, e))?;
        write_movies_file(&release.join("movies.csv"), &movies)?;
        write_ratings_file(&release.join("ratings.csv"), &ratings[..history])?;
        let batches = dir.join("batches");
        std::fs::create_dir_all(&batches).map_err(|e| Error::io(&batches, e))?;
        let mut weeks = Vec::with_capacity(chunks.len());
        for (k, range) in chunks.into_iter().enumerate() {
            let week = ratings[range].to_vec();
            let file = if week.is_empty() {
                None
            } else {
                let path = batches.join(format!("batch_w{}.csv", k + 1));
                write_ratings_file(&path, &week)?;
                Some(path)
            };
            weeks.push((file, week));
        }
        Ok(Replay {
            release,
            history,
            history_end: ratings[..history].last().map_or(0, |r| r.timestamp),
            weeks,
        })
    }
}

fn replay_policy(
    replay: &Replay,
    policy: Policy,
    trending_window: u64,
    opts: &BacktestOptions,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<PolicyResult> {
    let started = Instant::now();
    let path = dir.join(format!("{}.db", policy.to_string().replace(':', "-")));
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let mut store = store::open(&format!("sqlite://{}", path.display()))?;
    let store = store.as_mut();
    load::load(
        store,
        &Source::Dir(replay.release.clone()),
        &LoadOptions {
            split: SplitOptions {
                train_fraction: opts.train_fraction,
                seed: opts.seed,
                ..SplitOptions::default()
            },
            ..LoadOptions::default()
        },
        &Silent,
    )?;
    let mut train = TrainOptions::new(opts.params.clone());
    train.seed = opts.seed;
    train.objective = opts.objective;
    train.refit = opts.refit;
    train.mlflow = None;
    registry::train(store, &train, &Silent)?;

    let mut weeks = Vec::with_capacity(replay.weeks.len());
    for (i, (file, ratings)) in replay.weeks.iter().enumerate() {
        let t = Instant::now();
        let week = i as u32 + 1;
        // 1. What the server would serve at the start of the week.
        let known = Known::load(store)?;
        let rec = Recommender::load(store)?;
        let relevant = score::relevant_movies(ratings, &known);
        let most_rated = by_count(&store.movie_counts(None, None, None)?);
        let trending = by_count(&store.movie_counts(Some(trending_window), None, None)?);
        let scores = score::score_week(&relevant, &known, &rec, &most_rated, &trending, opts.k)?;
        let (champion, cold_start) = (rec.model_version.clone(), rec.cold_start.to_string());
        drop((known, rec));
        // 2. The week through the pipeline.
        let last_alert = store.drift_alerts(None)?.iter().map(|a| a.id).max();
        let (mut retrained, mut promoted) = (false, false);
        if let Some(file) = file {
            let cycle = cycle::run_cycle(
                store,
                &CycleOptions {
                    batch: Some((file.clone(), format!("batch_w{week}"))),
                    retrain_when: policy.retrain_when(week),
                    thresholds: opts.thresholds.clone(),
                    retrain: RetrainOptions {
                        objective: opts.objective,
                        tolerance: opts.tolerance,
                        refit: opts.refit,
                        mlflow: None,
                        ..RetrainOptions::default()
                    },
                    ..CycleOptions::default()
                },
                &Silent,
            )?;
            if !cycle.succeeded {
                let failed = cycle
                    .steps
                    .iter()
                    .find(|s| s.status == crate::types::StepStatus::Failed);
                return Err(Error::Server(format!(
                    "backtest ({policy}): the pipeline cycle of week {week} failed at {}",
                    failed.map_or_else(
                        || "an unknown step".into(),
                        |s| format!("{}: {}", s.name, s.detail)
                    )
                )));
            }
            if let Some(super::retrain::RetrainOutcome::Retrained { promoted: p, .. }) =
                &cycle.retrain
            {
                retrained = true;
                promoted = *p;
            }
        }
        let fired: Vec<_> = store
            .drift_alerts(None)?
            .into_iter()
            .filter(|a| Some(a.id) > last_alert && a.alert_triggered)
            .collect();
        let (retrain_alerts, info_alerts): (Vec<String>, Vec<String>) = {
            let (r, i): (Vec<_>, Vec<_>) = fired
                .iter()
                .partition(|a| super::drift_check::triggers_retraining(&a.feature_name));
            (
                r.iter().map(|a| a.feature_name.clone()).collect(),
                i.iter().map(|a| a.feature_name.clone()).collect(),
            )
        };
        weeks.push(WeekResult {
            week,
            ratings: ratings.len() as u64,
            first_timestamp: ratings.first().map_or(0, |r| r.timestamp),
            last_timestamp: ratings.last().map_or(0, |r| r.timestamp),
            scores,
            champion,
            cold_start,
            retrain_alerts,
            info_alerts,
            retrained,
            promoted,
            seconds: t.elapsed().as_secs_f64(),
        });
        progress.advance(1);
        progress.message(&format!(
            "backtest {policy}, week {week}: served NDCG@10 {:.4} (most-rated {:.4}, trending {:.4}){}",
            scores.served.all.ndcg_at_10,
            scores.most_rated.all.ndcg_at_10,
            scores.trending.all.ndcg_at_10,
            if retrained { ", retrained" } else { "" }
        ));
    }
    let mean = WeekScores {
        served: score::mean_over_weeks(weeks.iter().map(|w| &w.scores.served)),
        most_rated: score::mean_over_weeks(weeks.iter().map(|w| &w.scores.most_rated)),
        trending: score::mean_over_weeks(weeks.iter().map(|w| &w.scores.trending)),
    };
    Ok(PolicyResult {
        policy: policy.to_string(),
        retrains: weeks.iter().filter(|w| w.retrained).count() as u32,
        alert_weeks: weeks
            .iter()
            .filter(|w| !w.retrain_alerts.is_empty())
            .count() as u32,
        weeks,
        mean,
        algorithm: opts.params.algo().to_string(),
        params: serde_json::to_value(&opts.params).unwrap_or_default(),
        refit: opts.refit,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One `backtests` row per policy.
fn record(store: &mut dyn Store, report: &BacktestReport) -> Result<()> {
    for p in &report.policies {
        store.insert_backtest(&BacktestRow {
            id: 0,
            backtest_id: report.backtest_id.clone(),
            created_at: chrono::Utc::now().naive_utc(),
            policy: p.policy.clone(),
            source: report.source.clone(),
            served_ndcg_at_10: Some(p.mean.served.all.ndcg_at_10),
            most_rated_ndcg_at_10: Some(p.mean.most_rated.all.ndcg_at_10),
            trending_ndcg_at_10: Some(p.mean.trending.all.ndcg_at_10),
            report: serde_json::to_string(&BacktestEntry {
                policy: p,
                source: &report.source,
                history_ratings: report.history_ratings,
                history_end: report.history_end,
                trending_window: report.trending_window,
            })
            .map_err(|e| Error::Server(format!("backtest result: {e}")))?,
        })?;
    }
    Ok(())
}

/// What one `backtests` row's `report` holds: the policy's result and the
/// replay it belongs to.
#[derive(Serialize)]
struct BacktestEntry<'a> {
    #[serde(flatten)]
    policy: &'a PolicyResult,
    source: &'a str,
    history_ratings: u64,
    history_end: i64,
    trending_window: u64,
}

/// One MLflow run per policy (tag `cinematch.kind` = `backtest`): the
/// settings as params, the means as metrics and every week's scores as
/// metrics by step.
fn track(cfg: Option<&MlflowConfig>, report: &BacktestReport) {
    let Some(cfg) = cfg else { return };
    for p in &report.policies {
        let mut run = RunTracker::start(
            Some(cfg),
            &[
                (crate::tracking::TAG_KIND, "backtest".to_string()),
                ("cinematch.backtest_id", report.backtest_id.clone()),
                ("cinematch.policy", p.policy.clone()),
            ],
        );
        let mut params: Vec<(String, String)> = vec![
            ("policy".into(), p.policy.clone()),
            ("source".into(), report.source.clone()),
            ("weeks".into(), report.weeks.to_string()),
            ("refit".into(), p.refit.to_string()),
            ("trending_window".into(), report.trending_window.to_string()),
        ];
        if let Some(obj) = p.params.as_object() {
            params.extend(
                obj.iter()
                    .map(|(k, v)| (k.clone(), v.to_string().trim_matches('"').to_string())),
            );
        }
        let mut metrics: Vec<(String, f64)> = Vec::new();
        for (name, l) in [
            ("served", &p.mean.served),
            ("most_rated", &p.mean.most_rated),
            ("trending", &p.mean.trending),
        ] {
            for (group, g) in [("all", l.all), ("returning", l.returning), ("new", l.new)] {
                metrics.push((format!("{name}_{group}_ndcg_at_10"), g.ndcg_at_10));
                metrics.push((format!("{name}_{group}_recall_at_10"), g.recall_at_10));
            }
        }
        metrics.push(("retrains".into(), f64::from(p.retrains)));
        metrics.push(("alert_weeks".into(), f64::from(p.alert_weeks)));
        run.log(&params, &metrics, &[]);
        let steps: Vec<(String, i64, f64)> = p
            .weeks
            .iter()
            .flat_map(|w| {
                [
                    ("week_served_ndcg_at_10", w.scores.served.all.ndcg_at_10),
                    (
                        "week_most_rated_ndcg_at_10",
                        w.scores.most_rated.all.ndcg_at_10,
                    ),
                    ("week_trending_ndcg_at_10", w.scores.trending.all.ndcg_at_10),
                ]
                .map(|(k, v)| (k.to_string(), i64::from(w.week), v))
            })
            .collect();
        run.log_steps(&steps);
        run.finish(RunStatus::Finished, Some(&format!("backtest {}", p.policy)));
    }
}

/// The results of the latest backtests recorded in `store`, newest first:
/// each row's policy result as [`PolicyResult`] (rows another release
/// wrote that do not parse are left out).
pub fn recorded(store: &mut dyn Store, limit: usize) -> Result<Vec<(String, PolicyResult)>> {
    Ok(store
        .backtests(limit)?
        .into_iter()
        .filter_map(|row| {
            let p: PolicyResult = serde_json::from_str(&row.report).ok()?;
            Some((row.backtest_id, p))
        })
        .collect())
}
