//! Honest hyperparameter search: `cinematch tune`.
//!
//! Choosing hyperparameters by their test score makes the test score a lie
//! (the number reported is the best of many draws on the very data it
//! claims to be unseen). Tuning therefore never reads the test split:
//!
//! 1. a validation split is carved out of the train split (a seeded random
//!    [`validation_fraction`](TuneOptions::validation_fraction) of its
//!    ratings, by the same exact-size assignment `load` uses);
//! 2. every trial trains on the rest of train and is scored on the
//!    validation ratings by the one evaluation path, on the objective;
//!    every trial is recorded (`tuning_trials`, and as an MLflow child run
//!    when tracking is on);
//! 3. the winner is trained once on the whole train split and evaluated
//!    once on the test split, recorded as a normal run and offered to the
//!    champion gate.
//!
//! The search is seeded and starts with the current defaults, so a tuned
//! setting is never worse on validation than the defaults. After five
//! trials, every other trial is drawn near the best so far (continuous
//! parameters scaled by up to 2x either way, integers to a neighbouring
//! value, categories mostly kept) and the rest uniformly from the
//! per-algorithm space (`space`): random search that also refines. A trial
//! budget or a time budget ends it. With `folds > 1` every trial is scored
//! on that many validation splits (seeds `seed`, `seed + 1`, ...) and
//! averaged, which makes the choice less dependent on one carving.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    fit_and_evaluate_on, params_with_overrides, random_run_id, train, Objective, RunNotes,
    TrainOptions, TrainOutcome,
};
use crate::data::split::{assign_splits, SplitOptions, SplitStrategy};
use crate::eval::{EvalOptions, EvalReport};
use crate::models::{Algo, Hyperparams};
use crate::progress::Progress;
use crate::store::{Store, TuningTrial};
use crate::tracking::{MlflowConfig, RunStatus, RunTracker, TAG_KIND};
use crate::types::{Rating, Split};
use crate::{Error, Result};

/// When the search stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// After this many trials (the defaults count as the first).
    Trials(usize),
    /// When the next trial would start after this much time.
    Time(Duration),
}

/// What `tune` does; [`TuneOptions::new`] has the documented defaults.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub algo: Algo,
    /// What trials are compared on (on the validation split).
    pub objective: Objective,
    pub budget: Budget,
    /// Share of the train split held out for validation.
    pub validation_fraction: f64,
    /// How it is held out: a seeded random share (a random split's
    /// question), or the latest ratings of the train split by time (what a
    /// deployment faces: settings such as a recency half-life can only be
    /// chosen this way). Never the test split either way.
    pub validation: SplitStrategy,
    /// Validation splits each trial is averaged over.
    pub folds: usize,
    /// Seeds the carving, the search and every training.
    pub seed: u64,
    pub eval: EvalOptions,
    /// Offer the winner to the champion gate (with this tolerance), which
    /// compares on the deployment's objective.
    pub promote: bool,
    pub deployment_objective: Objective,
    pub tolerance: f64,
    pub mlflow: Option<MlflowConfig>,
}

impl TuneOptions {
    /// 20 trials, 30% of train for validation, seed 42; the objective a
    /// model of `algo` is naturally judged by (RMSE for rating models,
    /// NDCG@10 for ranking models) unless the caller sets one.
    pub fn new(algo: Algo) -> TuneOptions {
        TuneOptions {
            algo,
            objective: if algo.predicts_ratings() {
                Objective::Rmse
            } else {
                Objective::Ndcg10
            },
            budget: Budget::Trials(20),
            validation_fraction: 0.3,
            validation: SplitStrategy::Random,
            folds: 1,
            seed: 42,
            eval: EvalOptions::default(),
            promote: true,
            deployment_objective: Objective::default(),
            tolerance: 0.0,
            mlflow: MlflowConfig::from_env(),
        }
    }
}

/// One evaluated setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub number: usize,
    pub params: Hyperparams,
    /// The objective on the validation split, averaged over the folds
    /// (`None`: not measurable).
    pub value: Option<f64>,
    /// The full evaluation on the first fold.
    pub report: EvalReport,
    pub seconds: f64,
}

/// A finished search.
pub struct TuneOutcome {
    /// Identifies the search in `tuning_trials`.
    pub study: String,
    pub trials: Vec<Trial>,
    /// Index of the winner in `trials`.
    pub best: usize,
    /// Ratings the trials trained and validated on.
    pub inner_train: usize,
    pub validation: usize,
    /// The winner trained on the whole train split, evaluated on test,
    /// recorded.
    pub outcome: TrainOutcome,
}

/// A distribution of one hyperparameter.
#[derive(Debug, Clone, Copy)]
enum Dist {
    /// Log-uniform between the bounds.
    Log(f64, f64),
    /// One of these integers.
    Ints(&'static [i64]),
    /// One of these strings.
    Words(&'static [&'static str]),
}

/// The search space of each algorithm: ranges wide enough to contain the
/// usual optima on MovieLens-sized data.
fn space(algo: Algo) -> &'static [(&'static str, Dist)] {
    match algo {
        Algo::Baseline => &[
            ("reg_u", Dist::Log(1.0, 50.0)),
            ("reg_i", Dist::Log(1.0, 50.0)),
        ],
        Algo::Svd => &[
            ("factors", Dist::Ints(&[25, 50, 100, 150, 200])),
            ("epochs", Dist::Ints(&[20, 40, 60, 80])),
            ("lr", Dist::Log(0.002, 0.03)),
            ("reg", Dist::Log(0.01, 0.3)),
        ],
        Algo::Als => &[
            ("factors", Dist::Ints(&[8, 16, 32, 64])),
            ("iterations", Dist::Ints(&[10, 15, 20])),
            ("lambda", Dist::Log(0.03, 1.0)),
            ("bias_reg", Dist::Log(0.5, 20.0)),
        ],
        Algo::Ials => &[
            ("factors", Dist::Ints(&[32, 64, 128])),
            ("iterations", Dist::Ints(&[10, 15, 20])),
            ("reg", Dist::Log(0.05, 200.0)),
            ("alpha", Dist::Log(0.5, 100.0)),
            ("signal", Dist::Words(&["all", "weighted", ">=3.5"])),
        ],
        Algo::Ease => &[
            ("lambda", Dist::Log(10.0, 5000.0)),
            (
                "signal",
                Dist::Words(&["all", "weighted", ">=3.0", ">=3.5"]),
            ),
        ],
    }
}

/// Four significant digits: readable, and as good.
fn round4(x: f64) -> String {
    format!("{}", format!("{x:.4e}").parse::<f64>().unwrap_or(x))
}

/// A random setting of `algo`: the defaults with each searched parameter
/// drawn from its distribution.
fn sample(algo: Algo, rng: &mut ChaCha8Rng) -> Result<Hyperparams> {
    let overrides: Vec<(String, String)> = space(algo)
        .iter()
        .map(|(name, dist)| {
            let v = match *dist {
                Dist::Log(lo, hi) => {
                    round4((lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp())
                }
                Dist::Ints(xs) => xs[rng.random_range(0..xs.len())].to_string(),
                Dist::Words(ws) => ws[rng.random_range(0..ws.len())].to_string(),
            };
            (name.to_string(), v)
        })
        .collect();
    params_with_overrides(algo, &overrides)
}

/// A setting near `best`: each searched parameter moved a little (see the
/// module docs), staying inside its space.
fn perturb(best: &Hyperparams, rng: &mut ChaCha8Rng) -> Result<Hyperparams> {
    let algo = best.algo();
    let current = serde_json::to_value(best).unwrap_or_default();
    let overrides: Vec<(String, String)> = space(algo)
        .iter()
        .map(|(name, dist)| {
            let v = match *dist {
                Dist::Log(lo, hi) => {
                    let x = current[name].as_f64().unwrap_or(lo);
                    let factor = 2f64.powf(rng.random::<f64>() * 2.0 - 1.0);
                    round4((x * factor).clamp(lo, hi))
                }
                Dist::Ints(xs) => {
                    let x = current[name].as_i64().unwrap_or(xs[0]);
                    let i = xs.iter().position(|&v| v == x).unwrap_or(0) as i64;
                    let j = (i + rng.random_range(-1..=1)).clamp(0, xs.len() as i64 - 1);
                    xs[j as usize].to_string()
                }
                Dist::Words(ws) => {
                    let w = current[name].as_str().unwrap_or(ws[0]).to_string();
                    if rng.random::<f64>() < 0.8 {
                        w
                    } else {
                        ws[rng.random_range(0..ws.len())].to_string()
                    }
                }
            };
            (name.to_string(), v)
        })
        .collect();
    params_with_overrides(algo, &overrides)
}

/// The train split cut in two, `(inner train, validation)`: by a seeded
/// exact-size random assignment, or (`SplitStrategy::Time`) the latest
/// `fraction` of it by time held out.
pub fn carve_validation(
    train: &[Rating],
    fraction: f64,
    seed: u64,
    strategy: SplitStrategy,
) -> Result<(Vec<Rating>, Vec<Rating>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "the validation fraction must be strictly between 0 and 1, got {fraction}"
        )));
    }
    let splits = assign_splits(
        train,
        &SplitOptions {
            strategy,
            train_fraction: 1.0 - fraction,
            seed,
        },
    )?;
    let mut inner = Vec::with_capacity(train.len());
    let mut valid = Vec::with_capacity(train.len() / 3);
    for (r, s) in train.iter().zip(splits) {
        match s {
            Split::Train => inner.push(*r),
            Split::Test => valid.push(*r),
        }
    }
    Ok((inner, valid))
}

fn better(objective: Objective, a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => objective.better(a, b),
        (Some(_), None) => true,
        _ => false,
    }
}

/// Runs the search described in the module docs.
pub fn tune(
    store: &mut dyn Store,
    opts: &TuneOptions,
    progress: &dyn Progress,
) -> Result<TuneOutcome> {
    let train_split = store.ratings(Split::Train)?;
    if train_split.is_empty() {
        return Err(Error::NotFound(
            "there are no training ratings to tune on: load a dataset first".into(),
        ));
    }
    // A time split is one split whatever the seed: one fold.
    let folds = match opts.validation {
        SplitStrategy::Time => 1,
        SplitStrategy::Random => opts.folds.max(1),
    };
    let folds: Vec<(Vec<Rating>, Vec<Rating>)> = (0..folds as u64)
        .map(|f| {
            carve_validation(
                &train_split,
                opts.validation_fraction,
                opts.seed + f,
                opts.validation,
            )
        })
        .collect::<Result<_>>()?;
    if folds
        .iter()
        .any(|(inner, valid)| valid.is_empty() || inner.is_empty())
    {
        return Err(Error::InvalidArgument(format!(
            "{} training ratings are too few to carve a validation split from",
            train_split.len()
        )));
    }
    drop(train_split);
    let movies = store.movies()?;
    let (inner_len, valid_len) = (folds[0].0.len(), folds[0].1.len());
    let study = random_run_id();
    let parent = if opts.mlflow.is_some() {
        RunTracker::start(
            opts.mlflow.as_ref(),
            &[
                (TAG_KIND, "tune".to_string()),
                ("cinematch.algorithm", opts.algo.as_str().to_string()),
                ("cinematch.study", study.clone()),
            ],
        )
    } else {
        RunTracker::off()
    };
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7475_6e65);
    let mut trials: Vec<Trial> = Vec::new();
    let mut best = 0usize;
    loop {
        let n = trials.len();
        let done = match opts.budget {
            Budget::Trials(max) => n >= max.max(1),
            Budget::Time(limit) => n > 0 && started.elapsed() >= limit,
        };
        if done {
            break;
        }
        let params = if n == 0 {
            Hyperparams::default_for(opts.algo)
        } else if n >= 5 && n % 2 == 1 {
            perturb(&trials[best].params, &mut rng)?
        } else {
            sample(opts.algo, &mut rng)?
        };
        let t0 = Instant::now();
        let silent = crate::progress::Silent;
        let mut reports = Vec::with_capacity(folds.len());
        for (inner, valid) in &folds {
            let (_, report, _, _) = fit_and_evaluate_on(
                &params, opts.seed, inner, valid, &movies, &opts.eval, &silent,
            )?;
            reports.push(report);
        }
        let values: Vec<Option<f64>> = reports.iter().map(|r| opts.objective.value(r)).collect();
        let value = if values.iter().all(Option::is_some) {
            Some(values.iter().flatten().sum::<f64>() / values.len() as f64)
        } else {
            None
        };
        let report = reports.swap_remove(0);
        let trial = Trial {
            number: n + 1,
            params,
            value,
            report,
            seconds: t0.elapsed().as_secs_f64(),
        };
        record_trial(store, &study, opts, &trial, valid_len)?;
        track_trial(opts, &parent, &study, &trial);
        if n > 0 && better(opts.objective, value, trials[best].value) {
            best = n;
        }
        progress.message(&format!(
            "trial {}: {} {} ({:.1}s){}",
            trial.number,
            opts.objective.label(),
            value.map_or("n/a".into(), |v| format!("{v:.4}")),
            trial.seconds,
            if best == n { ", best so far" } else { "" }
        ));
        trials.push(trial);
    }
    let winner = trials[best].clone();
    let mut topts = TrainOptions::new(winner.params.clone());
    topts.seed = opts.seed;
    topts.eval = opts.eval.clone();
    topts.objective = opts.deployment_objective;
    topts.promote = opts.promote;
    topts.tolerance = opts.tolerance;
    topts.mlflow = opts.mlflow.clone();
    topts.notes = RunNotes {
        kind: Some("tune".into()),
        ..RunNotes::default()
    };
    topts.notes.extra.insert(
        "tuning".into(),
        json!({
            "study": study,
            "trials": trials.len(),
            "best_trial": winner.number,
            "objective": opts.objective.as_str(),
            "validation_value": winner.value,
            "validation_fraction": opts.validation_fraction,
            "validation": match opts.validation {
                SplitStrategy::Time => "time",
                SplitStrategy::Random => "random",
            },
            "folds": folds.len(),
            "inner_train_ratings": inner_len,
            "validation_ratings": valid_len,
        }),
    );
    drop(folds);
    let outcome = train(store, &topts, progress)?;
    if let Some(id) = parent.run_id().map(str::to_string) {
        let mut parent = parent;
        parent.log(
            &[("best_trial".into(), winner.number.to_string())],
            &winner
                .value
                .map(|v| vec![(format!("best_validation_{}", metric_key(opts.objective)), v)])
                .unwrap_or_default(),
            &[("cinematch.model_version", outcome.run.model_version.clone())],
        );
        tracing::debug!(mlflow_run = %id, "tuning study tracked");
        parent.finish(RunStatus::Finished, Some(&format!("tune {}", opts.algo)));
    }
    Ok(TuneOutcome {
        study,
        trials,
        best,
        inner_train: inner_len,
        validation: valid_len,
        outcome,
    })
}

/// MLflow metric keys cannot hold `@`.
fn metric_key(o: Objective) -> String {
    o.as_str().replace('@', "_at_")
}

fn record_trial(
    store: &mut dyn Store,
    study: &str,
    opts: &TuneOptions,
    t: &Trial,
    validation: usize,
) -> Result<()> {
    store.insert_tuning_trial(&TuningTrial {
        study: study.to_string(),
        trial: t.number as i64,
        algorithm: opts.algo.as_str().to_string(),
        params: serde_json::to_string(&t.params).unwrap_or_default(),
        objective: opts.objective.as_str().to_string(),
        value: t.value,
        validation_ratings: validation as i64,
        seconds: t.seconds,
    })
}

/// One MLflow child run per trial, under the study's parent run.
fn track_trial(opts: &TuneOptions, parent: &RunTracker, study: &str, t: &Trial) {
    let Some(parent_id) = parent.run_id() else {
        return;
    };
    let mut child = RunTracker::start(
        opts.mlflow.as_ref(),
        &[
            ("mlflow.parentRunId", parent_id.to_string()),
            (TAG_KIND, "tune-trial".to_string()),
            ("cinematch.study", study.to_string()),
        ],
    );
    let mut params: Vec<(String, String)> = Vec::new();
    let as_text = serde_json::to_string(&t.params).unwrap_or_default();
    if let Ok(serde_json::Value::Object(p)) = serde_json::from_str(&as_text) {
        params.extend(p.iter().map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        }));
    }
    let mut metrics: Vec<(String, f64)> = Vec::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&t.report) {
        metrics.extend(
            m.iter()
                .filter_map(|(k, v)| Some((format!("validation_{k}"), v.as_f64()?))),
        );
    }
    metrics.push(("seconds".into(), t.seconds));
    child.log(&params, &metrics, &[]);
    child.finish(
        RunStatus::Finished,
        Some(&format!("{study} trial {}", t.number)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carving_is_exact_seeded_and_disjoint() {
        let ratings: Vec<Rating> = (0..1000)
            .map(|i| Rating {
                user_id: i % 37,
                movie_id: i,
                rating: 4.0,
                timestamp: 0,
            })
            .collect();
        let (a, b) = carve_validation(&ratings, 0.3, 9, SplitStrategy::Random).unwrap();
        assert_eq!((a.len(), b.len()), (700, 300));
        let (a2, b2) = carve_validation(&ratings, 0.3, 9, SplitStrategy::Random).unwrap();
        assert_eq!((a.clone(), b.clone()), (a2, b2));
        let mut ids: Vec<i32> = a.iter().chain(&b).map(|r| r.movie_id).collect();
        ids.sort();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        let (_, b3) = carve_validation(&ratings, 0.3, 10, SplitStrategy::Random).unwrap();
        assert_ne!(b, b3, "another seed, another validation split");
        assert!(carve_validation(&ratings, 1.0, 1, SplitStrategy::Random).is_err());
        assert!(carve_validation(&ratings, 0.0, 1, SplitStrategy::Random).is_err());
        // By time: exactly the latest 30% held out (times 700..999 of a
        // shuffled 0..999), whatever the seed.
        let timed: Vec<Rating> = ratings
            .iter()
            .map(|r| Rating {
                timestamp: i64::from(r.movie_id * 7919 % 1000),
                ..*r
            })
            .collect();
        let (inner, valid) = carve_validation(&timed, 0.3, 9, SplitStrategy::Time).unwrap();
        let (_, again) = carve_validation(&timed, 0.3, 10, SplitStrategy::Time).unwrap();
        assert_eq!(valid, again);
        let mut times: Vec<i64> = valid.iter().map(|r| r.timestamp).collect();
        times.sort();
        assert_eq!(times, (700..1000).collect::<Vec<i64>>());
        assert_eq!(inner.len(), 700);
    }

    #[test]
    fn samples_stay_in_their_space_and_validate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for algo in Algo::ALL {
            let mut last = Hyperparams::default_for(algo);
            for i in 0..100 {
                let p = if i % 2 == 0 {
                    sample(algo, &mut rng).unwrap()
                } else {
                    perturb(&last, &mut rng).unwrap()
                };
                last = p.clone();
                assert_eq!(p.algo(), algo);
                p.validate().unwrap();
                let v = serde_json::to_value(&p).unwrap();
                for (name, dist) in space(algo) {
                    match *dist {
                        Dist::Log(lo, hi) => {
                            let x = v[name].as_f64().unwrap();
                            assert!(x >= lo * 0.999 && x <= hi * 1.001, "{algo} {name} {x}");
                        }
                        Dist::Ints(xs) => assert!(xs.contains(&v[name].as_i64().unwrap())),
                        Dist::Words(ws) => assert!(ws.contains(&v[name].as_str().unwrap())),
                    }
                }
            }
        }
    }
}
