//! The registry as people read it: one JSON shape for a run (the API's
//! `/api/models` and `cinematch models list --json` print the same
//! [`ModelBody`]), version names resolved from what people type (a unique
//! prefix, `vN`), hyperparameters in short, and runs side by side
//! ([`compare`]).
//!
//! One meaning per metric name ([`METRICS`]): `precision_at_10` is the
//! spec's rated-items precision (a test rating >= 3.5 counts as relevant,
//! only rated movies are ranked); `catalogue_precision_at_10`,
//! `recall_at_10`, `ndcg_at_10` and `coverage` are measured on the list a
//! user sees (the whole catalogue ranked, a test rating >= 4 relevant).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{run_summaries, Objective, RunSummary};
use crate::eval::EvalReport;
use crate::store::Store;
use crate::{Error, Result};

/// A metric a run may carry: its JSON name (as in [`ModelBody`] and the
/// evaluation notes), the label every table and chart uses, and its sense.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The JSON field name (snake case, as the notes and the CLI print it).
    pub name: &'static str,
    /// The label: names the protocol, so one label has one meaning.
    pub label: &'static str,
    /// A short column header for tables.
    pub short: &'static str,
    pub higher_is_better: bool,
    pub value: fn(&EvalReport) -> Option<f64>,
}

/// Every metric, the list a user sees first.
pub const METRICS: [Metric; 7] = [
    Metric {
        name: "ndcg_at_10",
        label: "NDCG@10 (the list a user sees)",
        short: "ndcg@10",
        higher_is_better: true,
        value: |r| r.ndcg_at_10,
    },
    Metric {
        name: "recall_at_10",
        label: "recall@10 (the list a user sees)",
        short: "recall@10",
        higher_is_better: true,
        value: |r| r.recall_at_10,
    },
    Metric {
        name: "catalogue_precision_at_10",
        label: "precision@10 (the list a user sees)",
        short: "list_p@10",
        higher_is_better: true,
        value: |r| r.rank_precision_at_10,
    },
    Metric {
        name: "coverage",
        label: "coverage (share of the catalogue in some user's list)",
        short: "coverage",
        higher_is_better: true,
        value: |r| r.coverage,
    },
    Metric {
        name: "rmse",
        label: "RMSE (predicted stars)",
        short: "rmse",
        higher_is_better: false,
        value: |r| r.rmse,
    },
    Metric {
        name: "mae",
        label: "MAE (predicted stars)",
        short: "mae",
        higher_is_better: false,
        value: |r| r.mae,
    },
    Metric {
        name: "precision_at_10",
        label: "rated-items precision@10 (spec: among rated movies, >= 3.5)",
        short: "rated_p@10",
        higher_is_better: true,
        value: |r| r.precision_at_10,
    },
];

/// One model version with its metrics, as `/api/models` and
/// `cinematch models list --json` give it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelBody {
    pub model_version: String,
    /// `YYYY-MM-DDTHH:MM:SS`, as stored.
    pub training_date: String,
    pub algorithm: Option<String>,
    /// Test RMSE; null for ranking models (they predict no ratings) and
    /// without a test split.
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    /// The spec's rated-items precision@10: among the movies each user
    /// rated in the test split, the share of the top 10 rated >= 3.5. Not
    /// the precision of the list a user sees (`cataloguePrecisionAt10`).
    pub precision_at_10: Option<f64>,
    /// NDCG@10 of the list a user sees (the whole catalogue ranked;
    /// relevant = test rating >= 4).
    pub ndcg_at_10: Option<f64>,
    /// Recall@10 of the list a user sees.
    pub recall_at_10: Option<f64>,
    /// Precision@10 of the list a user sees (hits / 10 over the whole
    /// catalogue).
    pub catalogue_precision_at_10: Option<f64>,
    /// Share of the catalogue in some user's top 10.
    pub coverage: Option<f64>,
    pub data_size: Option<i64>,
    /// RMSE of the previous run (of any algorithm: the spec's LAG).
    pub prev_rmse: Option<f64>,
    /// `rmse - prev_rmse` (negative is better), as the spec's LAG query.
    pub rmse_improvement: Option<f64>,
    /// The deployment's objective (`ndcg@10`, `rmse`), and this run's
    /// value of it and its change from the previous run of the same
    /// algorithm.
    pub objective: String,
    pub objective_value: Option<f64>,
    pub objective_change: Option<f64>,
    /// The previous run of the same algorithm, which `objectiveChange` is
    /// measured from.
    pub previous_same_algorithm: Option<String>,
    pub is_champion: bool,
    /// The run's hyperparameters (without `algo`), as trained.
    #[schema(value_type = Option<Object>)]
    pub hyperparameters: Option<Value>,
    /// The run's JSON notes: hyperparameters, seed, extra metrics, timings.
    #[schema(value_type = Option<Object>)]
    pub notes: Option<Value>,
}

impl ModelBody {
    /// `prev_rmse`: the previous run's RMSE (the spec's LAG).
    pub fn new(r: &RunSummary, objective: Objective, prev_rmse: Option<f64>) -> ModelBody {
        let run = &r.run;
        ModelBody {
            model_version: run.model_version.clone(),
            training_date: run.training_date.format("%Y-%m-%dT%H:%M:%S").to_string(),
            algorithm: r.algorithm(),
            rmse: run.rmse,
            mae: run.mae,
            precision_at_10: run.precision_at_10,
            ndcg_at_10: r.report.ndcg_at_10,
            recall_at_10: r.report.recall_at_10,
            catalogue_precision_at_10: r.report.rank_precision_at_10,
            coverage: r.report.coverage,
            data_size: run.data_size,
            prev_rmse,
            rmse_improvement: run.rmse.zip(prev_rmse).map(|(a, b)| a - b),
            objective: objective.as_str().to_string(),
            objective_value: r.value,
            objective_change: r.change,
            previous_same_algorithm: r.prev_version.clone(),
            is_champion: r.is_champion,
            hyperparameters: hyperparameters_json(r),
            notes: run
                .notes
                .as_deref()
                .map(|n| serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.to_string()))),
        }
    }

    /// Every run as a body, oldest first, with the spec's RMSE LAG.
    pub fn all(runs: &[RunSummary], objective: Objective) -> Vec<ModelBody> {
        let mut prev = None;
        runs.iter()
            .map(|r| {
                let body = ModelBody::new(r, objective, prev);
                prev = r.run.rmse;
                body
            })
            .collect()
    }
}

/// The registry: `/api/models` and `cinematch models list --json`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsBody {
    pub champion: Option<String>,
    /// What runs are compared on in this deployment.
    pub objective: String,
    /// Oldest first.
    pub models: Vec<ModelBody>,
}

impl ModelsBody {
    pub fn new(champion: Option<String>, objective: Objective, runs: &[RunSummary]) -> ModelsBody {
        ModelsBody {
            champion,
            objective: objective.as_str().to_string(),
            models: ModelBody::all(runs, objective),
        }
    }
}

/// The run's hyperparameters as JSON (without `algo`), through the notes'
/// JSON text so f32 values read as typed.
fn hyperparameters_json(r: &RunSummary) -> Option<Value> {
    let params = r.notes.as_ref()?.params.as_ref()?;
    let mut v: Value = serde_json::to_string(params)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())?;
    let obj = v.as_object_mut()?;
    obj.remove("algo");
    obj.retain(|_, v| !v.is_null());
    Some(v)
}

/// The run's hyperparameters as `key=value` pairs, in their declared
/// order, values as typed on a command line (see [`param_value`]).
pub fn hyperparameters(r: &RunSummary) -> Vec<(String, String)> {
    match hyperparameters_json(r) {
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), param_value(v))).collect(),
        _ => Vec::new(),
    }
}

/// The run's hyperparameters that differ from its algorithm's defaults
/// (what makes a tuned run look different from the default one), as
/// `key=value` pairs; empty for a run with the defaults.
pub fn tuned_hyperparameters(r: &RunSummary) -> Vec<(String, String)> {
    let Some(algo) = r.notes.as_ref().and_then(|n| n.algo()) else {
        return hyperparameters(r);
    };
    let defaults: Value = serde_json::to_string(&crate::models::Hyperparams::default_for(algo))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    match hyperparameters_json(r) {
        Some(Value::Object(o)) => o
            .iter()
            .filter(|(k, v)| defaults.get(k.as_str()) != Some(*v))
            .map(|(k, v)| (k.clone(), param_value(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A hyperparameter as typed on a command line: strings bare, f32 values
/// without the digits their widening to f64 invents (0.1, not
/// 0.10000000149011612).
pub fn param_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            if f64::from(x as f32) == x {
                (x as f32).to_string()
            } else {
                x.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// The stored version `given` names: the exact version, `vN` (the run
/// numbered N, as versions end in `_vN`), or a prefix of exactly one
/// version (with or without its `run_`). [`Error::UnknownModel`] when none
/// matches, [`Error::AmbiguousModel`] with the candidates when several do.
pub fn resolve_version(store: &mut dyn Store, given: &str) -> Result<String> {
    let versions: Vec<String> = store
        .model_runs()?
        .into_iter()
        .map(|r| r.model_version)
        .collect();
    resolve_in(&versions, given)
}

/// [`resolve_version`] over a list of versions.
pub fn resolve_in(versions: &[String], given: &str) -> Result<String> {
    let given = given.trim();
    if let Some(v) = versions.iter().find(|v| *v == given) {
        return Ok(v.clone());
    }
    let numbered = given
        .strip_prefix(['v', 'V'])
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|n| format!("_v{}", n.trim_start_matches('0')));
    let matches: Vec<&String> = match &numbered {
        Some(suffix) => versions.iter().filter(|v| v.ends_with(suffix)).collect(),
        None if given.is_empty() => Vec::new(),
        None => versions
            .iter()
            .filter(|v| {
                v.starts_with(given) || v.strip_prefix("run_").is_some_and(|s| s.starts_with(given))
            })
            .collect(),
    };
    match matches.as_slice() {
        [] => Err(Error::UnknownModel {
            version: given.to_string(),
        }),
        [one] => Ok((*one).clone()),
        many => Err(Error::AmbiguousModel {
            given: given.to_string(),
            candidates: many.iter().map(|v| v.to_string()).collect(),
        }),
    }
}

/// One row of a comparison: a metric or a hyperparameter, its value per
/// run (in the order asked), and which runs are best on it (metrics only).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompareRow {
    pub name: String,
    pub label: String,
    pub values: Vec<Value>,
    /// Indexes (into `values`) of the best value; empty for
    /// hyperparameters and when fewer than two runs measured it.
    pub best: Vec<usize>,
    /// Whether the values differ between the runs.
    pub differs: bool,
}

/// Runs side by side: `cinematch models compare` (and the dashboard's).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub objective: String,
    /// The runs, in the order asked.
    pub models: Vec<ModelBody>,
    pub metrics: Vec<CompareRow>,
    /// Every hyperparameter any of the runs has, and the seed.
    pub hyperparameters: Vec<CompareRow>,
}

/// The runs `versions` names (each resolved by [`resolve_version`]), side by
/// side: every metric with the best marked, every hyperparameter.
pub fn compare(
    store: &mut dyn Store,
    objective: Objective,
    versions: &[String],
) -> Result<Comparison> {
    if versions.len() < 2 {
        return Err(Error::InvalidArgument(
            "a comparison needs at least two model versions".into(),
        ));
    }
    let runs = run_summaries(store, objective)?;
    let all: Vec<String> = runs.iter().map(|r| r.run.model_version.clone()).collect();
    let bodies = ModelBody::all(&runs, objective);
    let mut picked: Vec<usize> = Vec::with_capacity(versions.len());
    for given in versions {
        let v = resolve_in(&all, given)?;
        let i = all.iter().position(|x| *x == v).unwrap_or_default();
        if picked.contains(&i) {
            return Err(Error::InvalidArgument(format!(
                "{given:?} names {v} twice in the comparison"
            )));
        }
        picked.push(i);
    }
    let chosen: Vec<&RunSummary> = picked.iter().map(|&i| &runs[i]).collect();
    let mut metrics = Vec::new();
    for m in METRICS {
        let vals: Vec<Option<f64>> = chosen.iter().map(|r| (m.value)(&r.report)).collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let measured: Vec<f64> = vals.iter().flatten().copied().collect();
        let best = if measured.len() < 2 {
            Vec::new()
        } else {
            let top = if m.higher_is_better {
                measured.iter().copied().fold(f64::MIN, f64::max)
            } else {
                measured.iter().copied().fold(f64::MAX, f64::min)
            };
            vals.iter()
                .enumerate()
                .filter(|(_, v)| **v == Some(top))
                .map(|(i, _)| i)
                .collect()
        };
        metrics.push(CompareRow {
            name: m.name.to_string(),
            label: m.label.to_string(),
            differs: vals.windows(2).any(|w| w[0] != w[1]),
            values: vals
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect(),
            best,
        });
    }
    let params: Vec<Vec<(String, String)>> = chosen
        .iter()
        .map(|r| {
            let mut p = hyperparameters(r);
            if let Some(seed) = r.notes.as_ref().and_then(|n| n.seed) {
                p.push(("seed".into(), seed.to_string()));
            }
            p
        })
        .collect();
    let mut names: Vec<String> = Vec::new();
    for p in &params {
        for (k, _) in p {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let hyperparameters = names
        .into_iter()
        .map(|name| {
            let vals: Vec<Option<&String>> = params
                .iter()
                .map(|p| p.iter().find(|(k, _)| *k == name).map(|(_, v)| v))
                .collect();
            CompareRow {
                label: name.clone(),
                name,
                differs: vals.windows(2).any(|w| w[0] != w[1]),
                values: vals
                    .iter()
                    .map(|v| v.map_or(Value::Null, |s| Value::String(s.clone())))
                    .collect(),
                best: Vec::new(),
            }
        })
        .collect();
    Ok(Comparison {
        objective: objective.as_str().to_string(),
        models: picked.iter().map(|&i| bodies[i].clone()).collect(),
        metrics,
        hyperparameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_one_label_naming_its_protocol() {
        let label = |n: &str| METRICS.iter().find(|m| m.name == n).unwrap().label;
        assert!(label("precision_at_10").contains("rated-items"));
        for n in ["ndcg_at_10", "recall_at_10", "catalogue_precision_at_10"] {
            assert!(label(n).contains("the list a user sees"), "{n}");
        }
        let mut labels: Vec<&str> = METRICS.iter().map(|m| m.label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), METRICS.len());
        let tags = super::super::mlflow_metric_labels();
        assert_eq!(tags.len(), METRICS.len() + 1);
    }

    #[test]
    fn versions_resolve_by_number_prefix_or_in_full() {
        let vs: Vec<String> = ["run_abc123_v1", "run_abd456_v2", "run_ffe_v12"]
            .map(String::from)
            .to_vec();
        assert_eq!(resolve_in(&vs, "v2").unwrap(), "run_abd456_v2");
        assert_eq!(resolve_in(&vs, "V12").unwrap(), "run_ffe_v12");
        assert_eq!(resolve_in(&vs, "abc").unwrap(), "run_abc123_v1");
        assert_eq!(resolve_in(&vs, "run_ff").unwrap(), "run_ffe_v12");
        assert_eq!(resolve_in(&vs, "run_abc123_v1").unwrap(), "run_abc123_v1");
        match resolve_in(&vs, "ab") {
            Err(Error::AmbiguousModel { candidates, .. }) => {
                assert_eq!(candidates, ["run_abc123_v1", "run_abd456_v2"])
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
        assert!(matches!(
            resolve_in(&vs, "v3"),
            Err(Error::UnknownModel { .. })
        ));
        assert!(matches!(
            resolve_in(&vs, ""),
            Err(Error::UnknownModel { .. })
        ));
    }
}
