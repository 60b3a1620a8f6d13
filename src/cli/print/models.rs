//! `train`, `tune`, `evaluate` and `models`: runs, metrics and the champion.

use cinematch::eval::EvalReport;
use cinematch::format::{decimals, signed, thousands};
use cinematch::models::Algo;
use cinematch::registry::tune::{TuneOptions, TuneOutcome};
use cinematch::registry::view::{self, Comparison, ModelBody, METRICS};
use cinematch::registry::{Objective, RunSummary, TrainOutcome};
use cinematch::store::ArtifactBlob;
use serde::Serialize;

use super::DATE_TIME;
use crate::cli::table;

pub fn trained(out: &TrainOutcome, algo: Algo, objective: Objective) {
    let version = &out.run.model_version;
    println!(
        "trained {version} ({algo}) on {} ratings in {:.2}s, evaluated in {:.2}s",
        thousands(out.run.data_size.unwrap_or(0)),
        out.train_seconds,
        out.eval_seconds
    );
    metrics(&out.report);
    match (&out.decision, out.is_champion) {
        (Some(d), true) => println!("{version} is the champion: {} ({objective})", d.reason),
        (Some(d), false) => println!(
            "the champion is unchanged: {} ({objective}); `cinematch models promote {version}` \
             serves this one anyway",
            d.reason
        ),
        (None, true) => println!("{version} is the champion (the first model)"),
        (None, false) => println!(
            "the champion is unchanged; `cinematch models promote {version}` to serve this one"
        ),
    }
}

pub fn tuned(out: &TuneOutcome, opts: &TuneOptions) {
    println!(
        "tuned {} on {} ratings, scored on a validation split of {} carved from train \
         (the test split was not read); {} trials, {} on validation:",
        opts.algo,
        thousands(out.inner_train as i64),
        thousands(out.validation as i64),
        out.trials.len(),
        opts.objective.label()
    );
    let rows: Vec<Vec<String>> = out
        .trials
        .iter()
        .map(|t| {
            let params = serde_json::to_value(&t.params)
                .ok()
                .and_then(|v| {
                    v.as_object().map(|o| {
                        o.iter()
                            .filter(|(k, _)| *k != "algo")
                            .filter(|(_, v)| !v.is_null())
                            .map(|(k, v)| format!("{k}={}", view::param_value(v)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                })
                .unwrap_or_default();
            vec![
                format!(
                    "{}{}",
                    t.number,
                    if t.number == out.trials[out.best].number {
                        " *"
                    } else {
                        ""
                    }
                ),
                decimals(t.value, 4),
                format!("{:.1}", t.seconds),
                params,
            ]
        })
        .collect();
    table::print(
        &["trial", opts.objective.as_str(), "seconds", "params"],
        &rows,
    );
    println!(
        "* the winner, trained on the whole train split and evaluated once on test (study {}):",
        out.study
    );
}

pub fn evaluated(version: &str, m: &EvalReport) {
    println!("{version} on the current test split:");
    metrics(m);
}

/// An evaluation, each number under the name of what it measures: the list
/// a user sees (the whole catalogue ranked), predicted stars, and the
/// spec's rated-items precision, never one name for two of them.
pub fn metrics(m: &EvalReport) {
    if m.is_empty() {
        println!("  no test split (loaded with --train-fraction 1): nothing to measure");
        return;
    }
    if m.ndcg_at_10.is_some() {
        let sample = match m.users_eligible {
            Some(n) if n > m.users_evaluated => format!(
                ", over a sample of {} of {} users",
                thousands(m.users_evaluated as i64),
                thousands(n as i64)
            ),
            _ => format!(", over {} users", thousands(m.users_evaluated as i64)),
        };
        println!(
            "  the list a user sees (whole catalogue ranked, relevant >= 4.0): NDCG@10 {}  \
             recall@10 {}  precision@10 {}  coverage {}{sample}",
            decimals(m.ndcg_at_10, 4),
            decimals(m.recall_at_10, 4),
            decimals(m.rank_precision_at_10, 4),
            decimals(m.coverage, 4)
        );
    }
    if m.rmse.is_some() {
        println!(
            "  predicted stars: RMSE {}  MAE {}",
            decimals(m.rmse, 4),
            decimals(m.mae, 4)
        );
        println!(
            "  rated-items precision@10 (the spec's precision_at_10: among the movies each user \
             rated, >= 3.5) {}",
            decimals(m.precision_at_10, 4)
        );
    } else {
        println!(
            "  a ranking model: no predicted stars, so no RMSE, MAE or rated-items precision@10"
        );
    }
}

pub(super) fn version_cell(r: &RunSummary) -> String {
    format!(
        "{}{}",
        r.run.model_version,
        if r.is_champion { " *" } else { "" }
    )
}

/// A run's hyperparameters in short: those that differ from the
/// algorithm's defaults, or "defaults".
fn params_cell(r: &RunSummary) -> String {
    if r.notes.as_ref().and_then(|n| n.params.as_ref()).is_none() {
        return String::new();
    }
    let tuned = view::tuned_hyperparameters(r);
    if tuned.is_empty() {
        return "defaults".into();
    }
    tuned
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `models list`: runs newest first, with the objective's change from the
/// previous run of the same algorithm (the spec's LAG query per algorithm).
pub fn models_list(runs: &[RunSummary], objective: Objective) {
    if runs.is_empty() {
        println!("no models yet: train one with `cinematch train`");
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .rev()
        .map(|r| {
            vec![
                version_cell(r),
                r.algorithm().unwrap_or_default(),
                r.run.training_date.format(DATE_TIME).to_string(),
                decimals(r.report.ndcg_at_10, 4),
                decimals(r.report.recall_at_10, 4),
                decimals(r.report.rank_precision_at_10, 4),
                decimals(r.run.rmse, 4),
                decimals(r.run.mae, 4),
                decimals(r.run.precision_at_10, 4),
                thousands(r.run.data_size.unwrap_or(0)),
                signed(r.change, 4),
                params_cell(r),
            ]
        })
        .collect();
    let change = format!("{}_change", objective.as_str());
    table::print(
        &[
            "model_version",
            "algo",
            "training_date",
            "list_ndcg@10",
            "list_recall@10",
            "list_p@10",
            "rmse",
            "mae",
            "rated_p@10",
            "data_size",
            &change,
            "hyperparameters",
        ],
        &rows,
    );
    println!(
        "* champion, chosen on {objective}. list_*: the list a user sees (whole catalogue \
         ranked, relevant >= 4). rated_p@10: the spec's precision_at_10 (among rated movies, \
         >= 3.5). rmse, mae: predicted stars, empty for ranking models. {change}: against the \
         previous run of the same algorithm, {} is better. hyperparameters: those not at the \
         algorithm's defaults.",
        if objective.higher_is_better() {
            "positive"
        } else {
            "negative"
        }
    );
}

/// `models show --json`: the run as `/api/models` gives it, with its artifact.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelShowJson<'a> {
    #[serde(flatten)]
    model: &'a ModelBody,
    artifact: Option<ArtifactJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactJson<'a> {
    algorithm: &'a str,
    format_version: i32,
    size_bytes: usize,
    checksum: String,
}

impl<'a> ModelShowJson<'a> {
    pub fn new(model: &'a ModelBody, artifact: Option<&'a ArtifactBlob>) -> ModelShowJson<'a> {
        ModelShowJson {
            model,
            artifact: artifact.map(|a| ArtifactJson {
                algorithm: &a.algorithm,
                format_version: a.format_version,
                size_bytes: a.bytes.len(),
                checksum: format!("{:08x}", a.checksum),
            }),
        }
    }
}

/// `models show`: one run in full, the objective first.
pub fn model_show(r: &RunSummary, objective: Objective, artifact: Option<&ArtifactBlob>) {
    let run = &r.run;
    let label = |s: &str| format!("{s:<26}");
    let value = match r.value {
        Some(v) => format!("{v:.4}"),
        None => "not measured".to_string(),
    };
    let change = match (r.change, &r.prev_version) {
        (Some(c), Some(p)) => format!(
            " ({c:+.4} from {p}, the previous {} run)",
            r.algorithm().unwrap_or_default()
        ),
        _ => String::new(),
    };
    println!(
        "{}{value}{change}{}",
        label(&format!("{} (objective)", objective.as_str())),
        if r.is_champion { ", the champion" } else { "" }
    );
    println!("{}{}", label("model_version"), run.model_version);
    println!(
        "{}{}",
        label("algorithm"),
        r.algorithm().unwrap_or_default()
    );
    println!("{}{}", label("champion"), r.is_champion);
    println!(
        "{}{}",
        label("training_date"),
        run.training_date.format(DATE_TIME)
    );
    for m in METRICS {
        if let Some(v) = (m.value)(&r.report) {
            println!("{}{v:.4}  {}", label(m.name), m.label);
        }
    }
    println!(
        "{}{}",
        label("data_size"),
        thousands(run.data_size.unwrap_or(0))
    );
    let params = view::hyperparameters(r);
    if !params.is_empty() {
        let tuned: Vec<String> = view::tuned_hyperparameters(r)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        println!("hyperparameters");
        for (k, v) in &params {
            let mark = if tuned.contains(k) {
                "  (not the default)"
            } else {
                ""
            };
            println!("  {k:<24}{v}{mark}");
        }
        if let Some(seed) = r.notes.as_ref().and_then(|n| n.seed) {
            println!("  {:<24}{seed}", "seed");
        }
    }
    if let Some(a) = artifact {
        println!(
            "{}{} bytes, {} format v{}, crc32 {:08x}",
            label("artifact"),
            thousands(a.bytes.len() as i64),
            a.algorithm,
            a.format_version,
            a.checksum
        );
    }
    if let Some(notes) = &run.notes {
        let pretty = serde_json::from_str::<serde_json::Value>(notes)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| notes.clone());
        println!("notes\n{pretty}");
    }
}

/// `models compare`: runs side by side, the best value of each metric
/// marked, differing hyperparameters marked.
pub fn model_compare(c: &Comparison) {
    let mut head: Vec<String> = vec!["".into()];
    head.extend(c.models.iter().map(|m| {
        format!(
            "{} ({}){}",
            m.model_version,
            m.algorithm.as_deref().unwrap_or("?"),
            if m.is_champion { " *" } else { "" }
        )
    }));
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::Number(n) => decimals(n.as_f64(), 4),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in &c.metrics {
        let mut row = vec![m.label.clone()];
        row.extend(
            m.values.iter().enumerate().map(|(i, v)| {
                format!("{}{}", cell(v), if m.best.contains(&i) { " <" } else { "" })
            }),
        );
        rows.push(row);
    }
    for h in &c.hyperparameters {
        let mut row = vec![format!(
            "{}{}",
            h.name,
            if h.differs { " (differs)" } else { "" }
        )];
        row.extend(h.values.iter().map(cell));
        rows.push(row);
    }
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    table::print(&head, &rows);
    println!(
        "< the best value of a metric; * the champion (chosen on {}).",
        c.objective
    );
}

pub fn promoted(version: &str) {
    println!("{version} is now the champion");
}

pub fn rolled_back(from: &str, to: &str) {
    println!("rolled back from {from}; {to} is the champion again");
}
