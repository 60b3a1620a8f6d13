//! `train`, `tune`, `evaluate` and `models`: runs, metrics and the champion.

use cinematch::eval::EvalReport;
use cinematch::format::{decimals, signed, thousands};
use cinematch::models::Algo;
use cinematch::registry::tune::{TuneOptions, TuneOutcome};
use cinematch::registry::{Objective, RunSummary, TrainOutcome};
use cinematch::store::{ArtifactBlob, ModelRun};

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
                            .map(|(k, v)| format!("{k}={}", param_value(v)))
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

/// A hyperparameter as typed on a command line: strings bare, f32 values
/// without the digits their widening to f64 invents (0.1, not
/// 0.10000000149011612).
fn param_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_f64() => {
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

pub fn evaluated(version: &str, m: &EvalReport) {
    println!("{version} on the current test split:");
    metrics(m);
}

pub fn metrics(m: &EvalReport) {
    if m.is_empty() {
        println!("  no test split (loaded with --train-fraction 1): nothing to measure");
        return;
    }
    if m.rmse.is_some() {
        println!(
            "  RMSE {}  MAE {}  precision@10 (rated items, >=3.5) {}",
            decimals(m.rmse, 4),
            decimals(m.mae, 4),
            decimals(m.precision_at_10, 4)
        );
    } else {
        println!("  a ranking model: no predicted ratings, so no RMSE, MAE or rated precision");
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
            "  full catalogue (relevant >= 4.0): NDCG@10 {}  recall@10 {}  precision@10 {}  coverage {}{sample}",
            decimals(m.ndcg_at_10, 4),
            decimals(m.recall_at_10, 4),
            decimals(m.rank_precision_at_10, 4),
            decimals(m.coverage, 4)
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

/// `models list`: runs oldest last, with the objective's change as the
/// spec's LAG query does for RMSE.
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
                decimals(r.run.rmse, 4),
                decimals(r.run.mae, 4),
                decimals(r.run.precision_at_10, 4),
                thousands(r.run.data_size.unwrap_or(0)),
                signed(r.change, 4),
            ]
        })
        .collect();
    let change = format!("{}_change", objective.as_str());
    table::print(
        &[
            "model_version",
            "algo",
            "training_date",
            "ndcg@10",
            "recall@10",
            "rmse",
            "mae",
            "precision_at_10",
            "data_size",
            &change,
        ],
        &rows,
    );
    println!(
        "* champion, chosen on {objective}. {change} = {objective} - LAG({objective}): {} is \
         better. rmse is empty for ranking models (they predict no ratings).",
        if objective.higher_is_better() {
            "positive"
        } else {
            "negative"
        }
    );
}

/// `models show`: one run in full.
pub fn model_show(run: &ModelRun, champion: bool, artifact: Option<&ArtifactBlob>) {
    println!("model_version    {}", run.model_version);
    println!("champion         {champion}");
    println!("training_date    {}", run.training_date.format(DATE_TIME));
    println!("rmse             {}", decimals(run.rmse, 4));
    println!("mae              {}", decimals(run.mae, 4));
    println!("precision_at_10  {}", decimals(run.precision_at_10, 4));
    println!("data_size        {}", thousands(run.data_size.unwrap_or(0)));
    if let Some(a) = artifact {
        println!(
            "artifact         {} bytes, {} format v{}, crc32 {:08x}",
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

pub fn promoted(version: &str) {
    println!("{version} is now the champion");
}

pub fn rolled_back(from: &str, to: &str) {
    println!("rolled back from {from}; {to} is the champion again");
}
