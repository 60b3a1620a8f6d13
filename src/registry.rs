//! Training runs and the model registry: train on the stored split, evaluate
//! on the test split, record the run in `model_metrics` with its artifact,
//! and load the champion back, from any process that can reach the database.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use serde_json::json;

use crate::eval::{self, EvalOptions, Metrics, Scorer};
use crate::models::{self, FactorModel, Params};
use crate::progress::Progress;
use crate::store::{ArtifactBlob, ModelRun, NewModelRun, RunCommit, Store};
use crate::tracking::{self, MlflowConfig, RunStatus, RunTracker};
use crate::types::{Rating, Split};
use crate::{Error, Result};

impl Scorer for FactorModel {
    fn predict(&self, user: i32, movie: i32) -> f32 {
        FactorModel::predict(self, user, movie)
    }

    fn score_catalogue(&self, user: i32, out: &mut Vec<(i32, f32)>) -> bool {
        thread_local! {
            static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let Some(u) = self.user_index(user) else {
            return false;
        };
        SCORES.with_borrow_mut(|scores| {
            self.score_all(u, scores);
            out.extend(self.movie_ids().iter().copied().zip(scores.iter().copied()));
        });
        true
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub params: Params,
    pub seed: u64,
    /// Also train on `ratings_buffer` (the retraining path).
    pub include_buffer: bool,
    pub eval: EvalOptions,
    /// Extra fields merged into the run's JSON notes (retrain reasons, batches).
    pub extra_notes: serde_json::Map<String, serde_json::Value>,
    /// Use this run id (e.g. an MLflow run id) instead of a random one.
    pub run_id: Option<String>,
    /// Also track the run in MLflow (see [`crate::tracking`]); the model
    /// version then carries the MLflow run id unless `run_id` is given.
    /// [`TrainOptions::new`] takes it from `MLFLOW_TRACKING_URI`.
    pub mlflow: Option<MlflowConfig>,
}

impl TrainOptions {
    pub fn new(params: Params) -> TrainOptions {
        TrainOptions {
            params,
            seed: 42,
            include_buffer: false,
            eval: EvalOptions::default(),
            extra_notes: Default::default(),
            run_id: None,
            mlflow: MlflowConfig::from_env(),
        }
    }
}

/// A trained and evaluated model, not yet recorded.
pub struct Trained {
    pub model: FactorModel,
    pub metrics: Metrics,
    /// The JSON notes `model_metrics` will hold.
    pub notes: serde_json::Map<String, serde_json::Value>,
    /// Training ratings (train split plus buffer when included).
    pub data_size: usize,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// A finished, recorded training run.
pub struct TrainOutcome {
    pub run: ModelRun,
    pub metrics: Metrics,
    pub model: FactorModel,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// Whether this run became the champion (the first model does).
    pub is_champion: bool,
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

/// Trains on the train split (plus the buffer when asked) and evaluates on
/// the test split, without recording anything.
pub fn fit_and_evaluate(
    store: &mut dyn Store,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<Trained> {
    opts.params.validate()?;
    let mut train = store.ratings(Split::Train)?;
    let buffered = if opts.include_buffer {
        let b = store.buffer_ratings(None)?;
        let n = b.len();
        train.extend(b);
        n
    } else {
        0
    };
    if train.is_empty() {
        return Err(Error::NotFound(
            "there are no training ratings: load a dataset first (`cinematch load DIR`)".into(),
        ));
    }
    let test = store.ratings(Split::Test)?;
    let t0 = Instant::now();
    let model = models::fit(&opts.params, &train, opts.seed, progress)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    progress.stage("evaluating", None);
    let metrics = eval::evaluate(&model, &train, &test, &opts.eval);
    progress.finish();
    let eval_seconds = t1.elapsed().as_secs_f64();

    let mut notes = serde_json::Map::new();
    notes.insert("algorithm".into(), json!(opts.params.algo().as_str()));
    notes.insert(
        "params".into(),
        serde_json::to_value(&opts.params).unwrap_or_default(),
    );
    notes.insert("seed".into(), json!(opts.seed));
    notes.insert(
        "metrics".into(),
        serde_json::to_value(&metrics).unwrap_or_default(),
    );
    notes.insert("train_seconds".into(), json!(round3(train_seconds)));
    notes.insert("eval_seconds".into(), json!(round3(eval_seconds)));
    notes.insert("train_ratings".into(), json!(train.len()));
    notes.insert("buffer_ratings".into(), json!(buffered));
    notes.insert("test_ratings".into(), json!(test.len()));
    for (k, v) in &opts.extra_notes {
        notes.insert(k.clone(), v.clone());
    }
    Ok(Trained {
        model,
        metrics,
        notes,
        data_size: train.len(),
        train_seconds,
        eval_seconds,
    })
}

/// Trains, evaluates on the test split and records the run and its artifact,
/// tracked in MLflow when `opts.mlflow` says so.
pub fn train(
    store: &mut dyn Store,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<TrainOutcome> {
    let mut tracker = start_tracking(opts, "train", &[]);
    let mut trained = fit_and_evaluate(store, opts, progress)?;
    let run_id = opts.run_id.clone().or_else(|| tracker.run_id_for_version());
    log_to_tracker(&mut tracker, &mut trained);
    let (run, _) = record(store, &trained, run_id, &RunCommit::default())?;
    let is_champion = store.champion()?.as_deref() == Some(run.model_version.as_str());
    finish_tracking(
        tracker,
        &run,
        &[("cinematch.champion", is_champion.to_string())],
    );
    Ok(TrainOutcome {
        run,
        metrics: trained.metrics,
        model: trained.model,
        train_seconds: trained.train_seconds,
        eval_seconds: trained.eval_seconds,
        is_champion,
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
    trained.notes.insert("mlflow_run_id".into(), json!(run_id));
    trained
        .notes
        .insert("mlflow_experiment_id".into(), json!(experiment_id));
    let (params, metrics) = mlflow_params_and_metrics(trained);
    tracker.log(&params, &metrics, &[]);
}

/// What a trained model logs to MLflow: every hyperparameter in the notes'
/// `params` (with `algo`) and the seed as params; every number of the notes'
/// `metrics`, `data_size`, the timings and the buffer size as metrics.
pub fn mlflow_params_and_metrics(trained: &Trained) -> (tracking::Params, tracking::Metrics) {
    let as_param = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(p) = trained.notes.get("params").and_then(|p| p.as_object()) {
        params.extend(p.iter().map(|(k, v)| (k.clone(), as_param(v))));
    }
    if let Some(seed) = trained.notes.get("seed") {
        params.push(("seed".into(), as_param(seed)));
    }
    let mut metrics: Vec<(String, f64)> = Vec::new();
    if let Some(m) = trained.notes.get("metrics").and_then(|m| m.as_object()) {
        metrics.extend(
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))),
        );
    }
    metrics.push(("data_size".into(), trained.data_size as f64));
    metrics.push(("train_seconds".into(), trained.train_seconds));
    metrics.push(("eval_seconds".into(), trained.eval_seconds));
    if let Some(b) = trained.notes.get("buffer_ratings").and_then(|b| b.as_f64()) {
        metrics.push(("buffer_ratings".into(), b));
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Writes a run's `model_metrics` row and artifact, and what `commit` asks
/// (promotion, buffer merge), in one transaction.
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
    let blob = ArtifactBlob {
        algorithm: trained.model.algo().as_str().to_string(),
        format_version: models::ARTIFACT_VERSION as i32,
        checksum,
        bytes,
    };
    let run = NewModelRun {
        run_id: run_id.unwrap_or_else(random_run_id),
        rmse: trained.metrics.rmse,
        mae: trained.metrics.mae,
        precision_at_10: trained.metrics.precision_at_10,
        data_size: trained.data_size as i64,
        notes: serde_json::Value::Object(trained.notes.clone()).to_string(),
    };
    store.insert_model_run(&run, &blob, commit)
}

/// Loads a stored model version, verifying its checksum.
pub fn load_model(store: &mut dyn Store, model_version: &str) -> Result<FactorModel> {
    let blob = store.artifact(model_version)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no stored model {model_version:?}; `cinematch models list` shows the versions"
        ))
    })?;
    FactorModel::from_bytes(&blob.bytes)
}

/// The champion's version and model.
pub fn load_champion(store: &mut dyn Store) -> Result<(String, FactorModel)> {
    let version = store.champion()?.ok_or_else(|| {
        Error::NotFound(
            "there is no champion model yet: train one with `cinematch train --algo svd`".into(),
        )
    })?;
    let model = load_model(store, &version)?;
    Ok((version, model))
}

/// Re-evaluates a stored model on the current test split.
pub fn evaluate_stored(
    store: &mut dyn Store,
    model_version: &str,
    opts: &EvalOptions,
) -> Result<Metrics> {
    let model = load_model(store, model_version)?;
    let train: Vec<Rating> = store.ratings(Split::Train)?;
    let test = store.ratings(Split::Test)?;
    Ok(eval::evaluate(&model, &train, &test, opts))
}

/// A run with the change from the previous run, as the spec's LAG query.
#[derive(Debug, Clone)]
pub struct RunWithChange {
    pub run: ModelRun,
    pub prev_rmse: Option<f64>,
    pub rmse_improvement: Option<f64>,
    pub is_champion: bool,
}

/// Every run, oldest first, with `rmse - LAG(rmse)` as the spec computes it.
pub fn runs_with_change(store: &mut dyn Store) -> Result<Vec<RunWithChange>> {
    let champion = store.champion()?;
    let runs = store.model_runs()?;
    let mut prev: Option<f64> = None;
    Ok(runs
        .into_iter()
        .map(|run| {
            let prev_rmse = prev;
            let rmse_improvement = match (run.rmse, prev_rmse) {
                (Some(r), Some(p)) => Some(r - p),
                _ => None,
            };
            prev = run.rmse;
            let is_champion = champion.as_deref() == Some(run.model_version.as_str());
            RunWithChange {
                run,
                prev_rmse,
                rmse_improvement,
                is_champion,
            }
        })
        .collect())
}

/// The tuned defaults of `algo` with `key=value` overrides applied, e.g.
/// `factors=100`, `lr=0.01`. Unknown keys are refused with the valid ones.
pub fn params_with_overrides(algo: models::Algo, overrides: &[(String, String)]) -> Result<Params> {
    let mut value = serde_json::to_value(Params::default_for(algo))
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
    let params: Params = serde_json::from_value(value)
        .map_err(|e| Error::InvalidArgument(format!("invalid {algo} parameters: {e}")))?;
    params.validate()?;
    Ok(params)
}
