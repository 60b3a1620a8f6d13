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

/// Trains, evaluates on the test split and records the run and its artifact.
pub fn train(
    store: &mut dyn Store,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<TrainOutcome> {
    let trained = fit_and_evaluate(store, opts, progress)?;
    let (run, _) = record(store, &trained, opts.run_id.clone(), &RunCommit::default())?;
    let is_champion = store.champion()?.as_deref() == Some(run.model_version.as_str());
    Ok(TrainOutcome {
        run,
        metrics: trained.metrics,
        model: trained.model,
        train_seconds: trained.train_seconds,
        eval_seconds: trained.eval_seconds,
        is_champion,
    })
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
