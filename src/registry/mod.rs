//! Training runs and the model registry: train on the stored split, evaluate
//! on the test split, record the run in `model_metrics` (with its ranking
//! metrics in `model_evaluations`) and its artifact, promote a champion by
//! the deployment's [`Objective`], and load the champion back, from any
//! process that can reach the database.

pub mod cold_start;
mod notes;
mod objective;
pub mod recency;
pub mod tune;
pub mod view;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

pub use notes::RunNotes;
pub use objective::{GateDecision, Objective};

use crate::eval::{self, EvalOptions, EvalReport};
use crate::models::popular::ColdStart;
use crate::models::{self, Hyperparams, Model};
use crate::progress::Progress;
use crate::store::{
    ArtifactBlob, BufferSnapshot, ModelEvaluation, ModelRun, NewModelRun, RunCommit, Store,
};
use crate::tracking::{self, MlflowConfig, MlflowMetrics, MlflowParams, RunStatus, RunTracker};
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub params: Hyperparams,
    pub seed: u64,
    /// Also train on `ratings_buffer` (the retraining path).
    pub include_buffer: bool,
    pub eval: EvalOptions,
    /// What the champion gate compares; recorded in the notes.
    pub objective: Objective,
    /// The gate's relative tolerance (see [`Objective::gate`]).
    pub tolerance: f64,
    /// Whether [`train`] may promote the run: the first model always
    /// becomes the champion; later ones when the gate passes.
    pub promote: bool,
    /// Notes the run starts with (kind, trigger, batches...); the registry
    /// fills in the algorithm, parameters, seed, metrics and timings.
    pub notes: RunNotes,
    /// Use this run id (e.g. an MLflow run id) instead of a random one.
    pub run_id: Option<String>,
    /// Serve what you know: when the run becomes the champion, refit it on
    /// every stored rating and serve the refit (see [`refit`]).
    pub refit: bool,
    /// Also track the run in MLflow (see [`crate::tracking`]); the model
    /// version then carries the MLflow run id unless `run_id` is given.
    /// [`TrainOptions::new`] takes it from `MLFLOW_TRACKING_URI`.
    pub mlflow: Option<MlflowConfig>,
}

impl TrainOptions {
    pub fn new(params: Hyperparams) -> TrainOptions {
        TrainOptions {
            params,
            seed: 42,
            include_buffer: false,
            eval: EvalOptions::default(),
            objective: Objective::default(),
            tolerance: 0.0,
            promote: true,
            notes: RunNotes::default(),
            run_id: None,
            refit: false,
            mlflow: MlflowConfig::from_env(),
        }
    }
}

/// A trained and evaluated model, not yet recorded.
pub struct Trained {
    pub model: Model,
    pub report: EvalReport,
    /// The notes `model_metrics` will hold.
    pub notes: RunNotes,
    /// Training ratings (train split plus buffer when included).
    pub data_size: usize,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// The buffer as it was read for training (when included), without its
    /// ratings: its batches and the bound a merge of exactly those rows needs.
    pub buffer: Option<BufferSnapshot>,
}

/// A finished, recorded training run.
pub struct TrainOutcome {
    pub run: ModelRun,
    pub report: EvalReport,
    pub model: Model,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// Whether this run became the champion.
    pub is_champion: bool,
    /// The gate's verdict against the previous champion (`None` for the
    /// first model, or when promotion was not asked for).
    pub decision: Option<GateDecision>,
    /// The refit serving in its place ([`TrainOptions::refit`]).
    pub refit: Option<ModelRun>,
}

/// A random run id: 12 hex digits, unique enough to tell runs apart at a glance.
pub fn random_run_id() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Trains on `train` and evaluates on `test`, without a store: the one
/// path training, retraining and tuning share. `movies` (the catalogue)
/// gives the genres the lists of ranking models are re-ranked by.
pub fn fit_and_evaluate_on(
    params: &Hyperparams,
    seed: u64,
    train: &[Rating],
    test: &[Rating],
    movies: &[Movie],
    eval_opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<(Model, EvalReport, f64, f64)> {
    let t0 = Instant::now();
    let model = models::fit(params, train, seed, progress)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    progress.stage("evaluating", None);
    let report = evaluate_model(&model, movies, train, test, eval_opts);
    progress.finish();
    Ok((model, report, train_seconds, t1.elapsed().as_secs_f64()))
}

/// Trains on the train split (plus the buffer when asked) and evaluates on
/// the test split, without recording anything.
pub fn fit_and_evaluate(
    store: &mut dyn Store,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<Trained> {
    opts.params.validate()?;
    let mut train = store.ratings(Split::Train)?;
    let buffer = if opts.include_buffer {
        let mut b = store.buffer_snapshot()?;
        train.append(&mut b.ratings);
        Some(b)
    } else {
        None
    };
    let buffered = buffer.as_ref().map_or(0, |b| b.bound.rows);
    if train.is_empty() {
        return Err(Error::NotFound(
            "there are no training ratings: load a dataset first".into(),
        ));
    }
    let test = store.ratings(Split::Test)?;
    let dataset = store.dataset_version()?;
    let movies = store.movies()?;
    let (mut model, report, train_seconds, eval_seconds) = fit_and_evaluate_on(
        &opts.params,
        opts.seed,
        &train,
        &test,
        &movies,
        &opts.eval,
        progress,
    )?;
    // Everything the store knows, for the cold-start list the run serves.
    let cold_start = {
        let mut known: Vec<Rating> = Vec::with_capacity(train.len() + test.len());
        known.extend_from_slice(&train);
        known.extend_from_slice(&test);
        if !opts.include_buffer {
            known.extend(store.buffer_ratings(None)?);
        }
        cold_start::choose(&known)
    };
    let mut notes = opts.notes.clone();
    notes.algorithm = Some(opts.params.algo());
    notes.params = Some(opts.params.clone());
    notes.seed = Some(opts.seed);
    notes.metrics = Some(report.clone());
    notes.objective = Some(opts.objective.as_str().to_string());
    notes.train_seconds = Some(round3(train_seconds));
    notes.eval_seconds = Some(round3(eval_seconds));
    notes.train_ratings = Some(train.len() as u64);
    notes.buffer_ratings = Some(buffered);
    notes.test_ratings = Some(test.len() as u64);
    notes.cold_start = Some(cold_start);
    notes.recency = recency::choose(&mut model, &train, &test);
    notes.dataset = Some(dataset);
    Ok(Trained {
        model,
        report,
        notes,
        data_size: train.len(),
        train_seconds,
        eval_seconds,
        buffer,
    })
}

/// How model `version` is served beyond its hyperparameters, as its run
/// recorded the choices made on time-ordered evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Serving {
    /// The list for users nobody knows ([`cold_start`]); runs recorded
    /// before the choice existed, and models without a run, serve the
    /// all-time most-rated list.
    pub cold_start: ColdStart,
    /// The history half-life to serve with ([`recency`]), when the run
    /// chose one and its hyperparameters did not set one themselves.
    pub history_half_life: Option<models::signal::HalfLife>,
}

/// See [`Serving`].
pub fn serving(store: &mut dyn Store, version: &str) -> Result<Serving> {
    let notes = store
        .model_runs()?
        .into_iter()
        .find(|r| r.model_version == version)
        .and_then(|r| RunNotes::parse(r.notes.as_deref()));
    Ok(Serving {
        cold_start: notes
            .as_ref()
            .and_then(|n| n.cold_start.as_ref())
            .map_or(ColdStart::MostRated { liked: false }, |c| c.chosen),
        history_half_life: notes
            .as_ref()
            .and_then(|n| n.recency.as_ref())
            .map(|c| c.chosen)
            .filter(|h| h.as_days().is_some()),
    })
}

/// The champion's version and its run, if there is a champion.
pub fn champion_run(store: &mut dyn Store) -> Result<Option<ModelRun>> {
    let Some(version) = store.champion()? else {
        return Ok(None);
    };
    Ok(store
        .model_runs()?
        .into_iter()
        .find(|r| r.model_version == version))
}

/// The evaluation a recorded run stored: the spec's columns and its
/// `model_evaluations` row (the database's exact numbers), completed from
/// the run's notes for what neither holds and for runs recorded before
/// `model_evaluations` existed.
pub fn run_report(run: &ModelRun) -> EvalReport {
    let mut r = RunNotes::parse(run.notes.as_deref())
        .and_then(|n| n.metrics)
        .unwrap_or_default();
    if run.rmse.is_some() || run.evaluation.is_some() {
        r.rmse = run.rmse;
        r.mae = run.mae;
        r.precision_at_10 = run.precision_at_10;
    }
    if let Some(e) = &run.evaluation {
        r.rank_precision_at_10 = e.catalogue_precision_at_10;
        r.recall_at_10 = e.recall_at_10;
        r.ndcg_at_10 = e.ndcg_at_10;
        r.coverage = e.coverage;
        if let Some(n) = e.test_ratings {
            r.test_ratings = n.max(0) as u64;
        }
        if let Some(n) = e.users_evaluated {
            r.users_evaluated = n.max(0) as u64;
        }
        r.users_eligible = e
            .users_eligible
            .map(|n| n.max(0) as u64)
            .or(r.users_eligible);
    }
    r
}

/// The champion gate for a trained challenger against the current champion
/// run (`None`: no champion, the challenger is the first model). A retrain
/// (the champion's own configuration on more data) replaces it when not
/// worse within `tolerance`; a new `train` run only when `strict`ly better,
/// so training the same thing twice does not churn the champion.
///
/// A champion trained and scored on another dataset (one `load --replace`
/// replaced) does not gate at all: its score came from another test split
/// and says nothing about a run on this one, so the challenger is promoted
/// and the reason says so.
pub fn gate(
    objective: Objective,
    tolerance: f64,
    challenger: &Trained,
    champion: Option<&ModelRun>,
    strict: bool,
) -> Option<GateDecision> {
    let champion = champion?;
    let dataset_of = |n: Option<&RunNotes>| n.and_then(|n| n.dataset).unwrap_or(0);
    let theirs = dataset_of(RunNotes::parse(champion.notes.as_deref()).as_ref());
    if theirs != dataset_of(Some(&challenger.notes)) {
        return Some(GateDecision {
            promote: true,
            reason: format!(
                "the champion {} was trained and scored on another dataset (replaced by \
                 `load --replace`), so it does not gate a run on this one",
                champion.model_version
            ),
        });
    }
    let (new, old) = (
        objective.value(&challenger.report),
        objective.value(&run_report(champion)),
    );
    let mut d = objective.gate(new, old, tolerance);
    if strict {
        if let (Some(n), Some(o)) = (new, old) {
            if !objective.better(n, o) {
                d = GateDecision {
                    promote: false,
                    reason: format!(
                        "{} {n:.4} is not better than the champion's {o:.4}",
                        objective.label()
                    ),
                };
            }
        }
    }
    Some(d)
}

/// Trains, evaluates on the test split and records the run and its
/// artifact, tracked in MLflow when `opts.mlflow` says so. The run becomes
/// the champion if it is the first model, or (with `opts.promote`) if it
/// passes the gate against the current champion on `opts.objective`.
pub fn train(
    store: &mut dyn Store,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<TrainOutcome> {
    let mut tracker = start_tracking(opts, "train", &[]);
    let mut trained = fit_and_evaluate(store, opts, progress)?;
    if trained.notes.kind.is_none() {
        trained.notes.kind = Some("train".into());
    }
    let champion = champion_run(store)?;
    let decision = if opts.promote {
        gate(
            opts.objective,
            opts.tolerance,
            &trained,
            champion.as_ref(),
            true,
        )
    } else {
        None
    };
    if let Some(d) = &decision {
        trained.notes.decision = Some(format!(
            "{}: {}",
            if d.promote {
                "promoted"
            } else {
                "kept the champion"
            },
            d.reason
        ));
        trained.notes.champion_before = champion.as_ref().map(|r| r.model_version.clone());
    }
    let run_id = opts.run_id.clone().or_else(|| tracker.run_id_for_version());
    log_to_tracker(&mut tracker, &mut trained);
    let commit = RunCommit {
        promote_reason: decision
            .as_ref()
            .filter(|d| d.promote)
            .map(|d| format!("train: {}", d.reason)),
        ..RunCommit::default()
    };
    let (run, _) = record(store, &trained, run_id, &commit)?;
    let is_champion = store.champion()?.as_deref() == Some(run.model_version.as_str());
    finish_tracking(
        tracker,
        &run,
        &[("cinematch.champion", is_champion.to_string())],
    );
    if is_champion {
        set_mlflow_champion(opts.mlflow.as_ref(), &trained.notes, &run);
    }
    let refit = if opts.refit && is_champion {
        Some(refit(store, &run, progress)?)
    } else {
        None
    };
    Ok(TrainOutcome {
        refit,
        run,
        report: trained.report,
        model: trained.model,
        train_seconds: trained.train_seconds,
        eval_seconds: trained.eval_seconds,
        is_champion,
        decision,
    })
}

/// Starts the MLflow run of a training of `kind` (`train`, `retrain`), when
/// `opts.mlflow` is set; a tracker that does nothing otherwise or when MLflow
/// fails (with a warning). Dropping it before [`finish_tracking`] (an error)
/// ends the MLflow run as failed.
pub fn start_tracking(opts: &TrainOptions, kind: &str, tags: &[(&str, String)]) -> RunTracker {
    if opts.mlflow.is_none() {
        return RunTracker::off();
    }
    let mut all: Vec<(&str, String)> = vec![
        (tracking::TAG_KIND, kind.to_string()),
        (
            "cinematch.algorithm",
            opts.params.algo().as_str().to_string(),
        ),
    ];
    all.extend(tags.iter().cloned());
    RunTracker::start(opts.mlflow.as_ref(), &all)
}

/// Logs a trained model's params (hyperparameters and seed, as in the notes)
/// and metrics (the evaluation, `data_size`, timings) to its MLflow run, and
/// notes the MLflow run in the notes `model_metrics` will hold.
pub fn log_to_tracker(tracker: &mut RunTracker, trained: &mut Trained) {
    let (Some(run_id), Some(experiment_id)) = (tracker.run_id(), tracker.experiment_id()) else {
        return;
    };
    trained.notes.mlflow_run_id = Some(run_id.to_string());
    trained.notes.mlflow_experiment_id = Some(experiment_id.to_string());
    let (params, metrics) = mlflow_params_and_metrics(trained);
    tracker.log(&params, &metrics, &mlflow_metric_labels());
}

/// What each logged metric measures, as MLflow tags
/// (`cinematch.metric.NAME`) and the run's description: one meaning per
/// metric name, the same labels `models show` prints (see
/// [`view::METRICS`]).
pub fn mlflow_metric_labels() -> Vec<(&'static str, String)> {
    let mut tags: Vec<(&'static str, String)> = Vec::new();
    let mut note = String::from("Metrics: ");
    for (i, m) in view::METRICS.iter().enumerate() {
        let key: &'static str = match m.name {
            "ndcg_at_10" => "cinematch.metric.ndcg_at_10",
            "recall_at_10" => "cinematch.metric.recall_at_10",
            "catalogue_precision_at_10" => "cinematch.metric.catalogue_precision_at_10",
            "coverage" => "cinematch.metric.coverage",
            "rmse" => "cinematch.metric.rmse",
            "mae" => "cinematch.metric.mae",
            "precision_at_10" => "cinematch.metric.precision_at_10",
            _ => continue,
        };
        tags.push((key, m.label.to_string()));
        if i > 0 {
            note.push_str("; ");
        }
        note.push_str(&format!("{} = {}", m.name, m.label));
    }
    note.push_str(
        "; rank_precision_at_10 is catalogue_precision_at_10 (the name the evaluation notes use).",
    );
    tags.push(("mlflow.note.content", note));
    tags
}

/// What a trained model logs to MLflow: every hyperparameter (with `algo`)
/// and the seed as params; every measured metric of the evaluation,
/// `data_size`, the timings and the buffer size as metrics (a metric that
/// was not measured, such as a ranking model's RMSE, is not logged).
pub fn mlflow_params_and_metrics(trained: &Trained) -> (MlflowParams, MlflowMetrics) {
    let as_param = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut params: Vec<(String, String)> = Vec::new();
    // Through the JSON text, as the notes hold them: f32 values print as
    // typed (0.01), not widened to f64 (0.009999999776482582).
    if let Some(p) = trained
        .notes
        .params
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        if let Some(obj) = p.as_object() {
            params.extend(obj.iter().map(|(k, v)| (k.clone(), as_param(v))));
        }
    }
    if let Some(seed) = trained.notes.seed {
        params.push(("seed".into(), seed.to_string()));
    }
    let mut metrics: Vec<(String, f64)> = Vec::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&trained.report) {
        metrics.extend(
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))),
        );
    }
    // The list a user sees' precision also under the API's name, beside the
    // spec's rated-items `precision_at_10`, so neither is read as the other.
    if let Some(p) = trained.report.rank_precision_at_10 {
        metrics.push(("catalogue_precision_at_10".into(), p));
    }
    metrics.push(("data_size".into(), trained.data_size as f64));
    metrics.push(("train_seconds".into(), trained.train_seconds));
    metrics.push(("eval_seconds".into(), trained.eval_seconds));
    if let Some(b) = trained.notes.buffer_ratings {
        metrics.push(("buffer_ratings".into(), b as f64));
    }
    (params, metrics)
}

/// Tags the MLflow run with the recorded model version (and `tags`), names
/// it after it and ends it as finished.
pub fn finish_tracking(mut tracker: RunTracker, run: &ModelRun, tags: &[(&str, String)]) {
    if !tracker.is_active() {
        return;
    }
    tracker.set_tag(tracking::TAG_MODEL_VERSION, &run.model_version);
    if !tags.is_empty() {
        tracker.log(&[], &[], tags);
    }
    tracker.finish(RunStatus::Finished, Some(&run.model_version));
}

/// After a promotion, points the alias `champion` of the MLflow registered
/// model at the promoted run (when tracking is on and the run was tracked).
pub fn set_mlflow_champion(cfg: Option<&MlflowConfig>, notes: &RunNotes, run: &ModelRun) {
    if let (Some(cfg), Some(run_id)) = (cfg, notes.mlflow_run_id.as_deref()) {
        tracking::set_champion_alias(cfg, run_id, &run.model_version);
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `model_evaluations` row of a report.
fn evaluation_row(algo: models::Algo, r: &EvalReport) -> ModelEvaluation {
    let measured = r.test_ratings > 0;
    ModelEvaluation {
        algorithm: algo.as_str().to_string(),
        ndcg_at_10: r.ndcg_at_10,
        recall_at_10: r.recall_at_10,
        catalogue_precision_at_10: r.rank_precision_at_10,
        coverage: r.coverage,
        users_evaluated: measured.then_some(r.users_evaluated as i64),
        users_eligible: r.users_eligible.map(|n| n as i64),
        test_ratings: Some(r.test_ratings as i64),
    }
}

/// Writes a run's `model_metrics` and `model_evaluations` rows and its
/// artifact, and what `commit` asks (promotion, buffer merge), in one
/// transaction.
pub fn record(
    store: &mut dyn Store,
    trained: &Trained,
    run_id: Option<String>,
    commit: &RunCommit,
) -> Result<(ModelRun, u64)> {
    let bytes = trained.model.to_bytes();
    let checksum = u32::from_le_bytes(
        bytes[bytes.len().saturating_sub(4)..]
            .try_into()
            .unwrap_or([0; 4]),
    );
    let algo = trained.model.algo();
    let blob = ArtifactBlob {
        algorithm: algo.as_str().to_string(),
        format_version: models::ARTIFACT_VERSION as i32,
        checksum,
        bytes,
    };
    let r = &trained.report;
    let run = NewModelRun {
        run_id: run_id.unwrap_or_else(random_run_id),
        rmse: r.rmse,
        mae: r.mae,
        precision_at_10: r.precision_at_10,
        data_size: trained.data_size as i64,
        notes: trained.notes.to_json(),
        evaluation: evaluation_row(algo, r),
    };
    store.insert_model_run(&run, &blob, commit)
}

/// Serve what you know: trains `evaluated`'s algorithm, hyperparameters
/// and seed again on every rating `ratings` holds (train, test and what
/// retrains merged), records it as a refit of `evaluated` and, if
/// `evaluated` is still the champion, makes the refit the champion in the
/// same transaction (compare-and-set).
///
/// The refit has no test split left to be judged on, so it carries the
/// evaluated run's metrics and evaluation row (its notes name the run in
/// `refit_of`): the champion gate keeps comparing what was measured. What
/// training on the test ratings too is worth is for the backtest to say.
pub fn refit(
    store: &mut dyn Store,
    evaluated: &ModelRun,
    progress: &dyn Progress,
) -> Result<ModelRun> {
    let notes = RunNotes::parse(evaluated.notes.as_deref()).ok_or_else(|| {
        Error::NotFound(format!(
            "{} has no CineMatch notes (algorithm, hyperparameters): it cannot be refit",
            evaluated.model_version
        ))
    })?;
    let params = notes.params.clone().ok_or_else(|| {
        Error::NotFound(format!(
            "{} records no hyperparameters: it cannot be refit",
            evaluated.model_version
        ))
    })?;
    let seed = notes.seed.unwrap_or(42);
    let mut all = store.ratings(Split::Train)?;
    all.extend(store.ratings(Split::Test)?);
    let t0 = Instant::now();
    let model = models::fit(&params, &all, seed, progress)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let mut refit_notes = RunNotes {
        kind: Some("refit".into()),
        refit_of: Some(evaluated.model_version.clone()),
        train_ratings: Some(all.len() as u64),
        buffer_ratings: Some(0),
        train_seconds: Some(round3(train_seconds)),
        eval_seconds: None,
        decision: None,
        trigger: None,
        mlflow_run_id: None,
        mlflow_experiment_id: None,
        champion_changed_to: None,
        ..notes
    };
    refit_notes.champion_before = store.champion()?;
    let trained = Trained {
        model,
        report: run_report(evaluated),
        notes: refit_notes,
        data_size: all.len(),
        train_seconds,
        eval_seconds: 0.0,
        buffer: None,
    };
    let serving = store.champion()?.as_deref() == Some(evaluated.model_version.as_str());
    let commit = RunCommit {
        promote_reason: serving.then(|| {
            format!(
                "refit of {} on every stored rating ({})",
                evaluated.model_version,
                all.len()
            )
        }),
        promote_if_champion_is: serving.then(|| Some(evaluated.model_version.clone())),
        merge_buffer: None,
        lease: None,
    };
    Ok(record(store, &trained, None, &commit)?.0)
}

/// Loads a stored model version, verifying its checksum.
pub fn load_model(store: &mut dyn Store, model_version: &str) -> Result<Model> {
    let blob = store
        .artifact(model_version)?
        .ok_or_else(|| Error::NotFound(format!("no stored model {model_version:?}")))?;
    Model::from_bytes(&blob.bytes)
}

/// The champion's version and model.
pub fn load_champion(store: &mut dyn Store) -> Result<(String, Model)> {
    let version = store
        .champion()?
        .ok_or_else(|| Error::NotFound("there is no champion model yet: train one".into()))?;
    let model = load_model(store, &version)?;
    Ok((version, model))
}

/// The rating model whose predicted stars are shown beside a ranking
/// champion's list: the champion itself when it predicts ratings, else
/// the recorded rating model with the lowest test RMSE (the spec's "best
/// performing model" query). `None` when no rating model was ever trained.
pub fn load_rating_model(store: &mut dyn Store) -> Result<Option<(String, Model)>> {
    let champion = store.champion()?;
    let runs = store.model_runs()?;
    if let Some(c) = champion.as_deref() {
        let predicts = runs
            .iter()
            .find(|r| r.model_version == c)
            .and_then(|r| RunNotes::parse(r.notes.as_deref()))
            .and_then(|n| n.algo())
            .is_some_and(|a| a.predicts_ratings());
        if predicts {
            return Ok(Some((c.to_string(), load_model(store, c)?)));
        }
    }
    let best = runs
        .iter()
        .filter(|r| {
            RunNotes::parse(r.notes.as_deref())
                .and_then(|n| n.algo())
                .is_some_and(|a| a.predicts_ratings())
        })
        .filter_map(|r| Some((r.rmse.filter(|x| x.is_finite())?, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, run)) => {
            let version = run.model_version.clone();
            let model = load_model(store, &version)?;
            Ok(Some((version, model)))
        }
        None => Ok(None),
    }
}

/// Re-evaluates a stored model on the current test split.
pub fn evaluate_stored(
    store: &mut dyn Store,
    model_version: &str,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let model = load_model(store, model_version)?;
    let train: Vec<Rating> = store.ratings(Split::Train)?;
    let test = store.ratings(Split::Test)?;
    let movies = store.movies()?;
    Ok(evaluate_model(&model, &movies, &train, &test, opts))
}

/// [`eval::evaluate`] of the lists `model` serves (re-ranked for short
/// histories where the model asks for it; see [`models::Listed`]).
pub fn evaluate_model(
    model: &Model,
    movies: &[Movie],
    train: &[Rating],
    test: &[Rating],
    opts: &EvalOptions,
) -> EvalReport {
    eval::evaluate(
        &models::Listed::new(model, movies, train),
        train,
        test,
        opts,
    )
}

/// A run with its typed notes and evaluation, and the change of the
/// objective from the previous run of the same algorithm (the spec's LAG
/// query, on the deployment's objective, partitioned by algorithm: an svd
/// run is not better or worse than the ials run before it).
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run: ModelRun,
    pub notes: Option<RunNotes>,
    pub report: EvalReport,
    /// The objective's value for this run, and for the previous run of the
    /// same algorithm.
    pub value: Option<f64>,
    pub prev_value: Option<f64>,
    /// That previous run of the same algorithm.
    pub prev_version: Option<String>,
    /// `value - prev_value`.
    pub change: Option<f64>,
    pub is_champion: bool,
}

impl RunSummary {
    /// The run's algorithm, from its notes or its evaluation row.
    pub fn algorithm(&self) -> Option<String> {
        self.notes
            .as_ref()
            .and_then(|n| n.algo())
            .map(|a| a.as_str().to_string())
            .or_else(|| self.run.evaluation.as_ref().map(|e| e.algorithm.clone()))
    }
}

/// Every run, oldest first, with the change of `objective` from the
/// previous run of the same algorithm, as the spec's LAG query computes it
/// for RMSE with `PARTITION BY algorithm`.
pub fn run_summaries(store: &mut dyn Store, objective: Objective) -> Result<Vec<RunSummary>> {
    let champion = store.champion()?;
    let runs = store.model_runs()?;
    // The latest run of each algorithm so far: (algorithm, version, value).
    let mut prev: Vec<(Option<String>, String, Option<f64>)> = Vec::new();
    Ok(runs
        .into_iter()
        .map(|run| {
            let notes = RunNotes::parse(run.notes.as_deref());
            let report = run_report(&run);
            let value = objective.value(&report);
            let is_champion = champion.as_deref() == Some(run.model_version.as_str());
            let mut s = RunSummary {
                run,
                notes,
                report,
                value,
                prev_value: None,
                prev_version: None,
                change: None,
                is_champion,
            };
            let algo = s.algorithm();
            match prev.iter_mut().find(|(a, _, _)| *a == algo) {
                Some(p) => {
                    s.prev_version = Some(p.1.clone());
                    s.prev_value = p.2;
                    *p = (algo, s.run.model_version.clone(), value);
                }
                None => prev.push((algo, s.run.model_version.clone(), value)),
            }
            s.change = value.zip(s.prev_value).map(|(r, p)| r - p);
            s
        })
        .collect())
}

/// The tuned defaults of `algo` with `key=value` overrides applied, e.g.
/// `factors=100`, `lr=0.01`. Unknown keys are refused with the valid ones.
pub fn params_with_overrides(
    algo: models::Algo,
    overrides: &[(String, String)],
) -> Result<Hyperparams> {
    let mut value = serde_json::to_value(Hyperparams::default_for(algo))
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| Error::InvalidArgument("parameters are not an object".into()))?;
    let known: Vec<String> = obj.keys().filter(|k| *k != "algo").cloned().collect();
    for (key, raw) in overrides {
        if key == "algo" || !obj.contains_key(key) {
            return Err(Error::InvalidArgument(format!(
                "{algo} has no parameter {key:?}; its parameters are: {}",
                known.join(", ")
            )));
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.clone()));
        obj.insert(key.clone(), v);
    }
    let params: Hyperparams = serde_json::from_value(value)
        .map_err(|e| Error::InvalidArgument(format!("invalid {algo} parameters: {e}")))?;
    params.validate()?;
    Ok(params)
}
