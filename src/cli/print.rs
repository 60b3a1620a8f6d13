//! Everything the commands print to stdout: each function takes what the
//! library returned and writes it as text or a [`table`], so the command
//! files only call the library. Numbers go through [`cinematch::format`],
//! as on the dashboard.

use std::path::Path;

use cinematch::data::stream::StreamReport;
use cinematch::data::synth::{SynthReport, WeeklyReport};
use cinematch::data::SkipReport;
use cinematch::eval::EvalReport;
use cinematch::format::{decimals, signed, thousands};
use cinematch::models::Algo;
use cinematch::pipeline::cycle::CycleReport;
use cinematch::pipeline::drift_check::DriftReport;
use cinematch::pipeline::ingest::IngestReport;
use cinematch::pipeline::load::LoadReport;
use cinematch::pipeline::retrain::{RetrainOutcome, Verdict};
use cinematch::recommend::{Item, Recommendations, Similar, SimilarBasis, Strategy};
use cinematch::registry::tune::{TuneOptions, TuneOutcome};
use cinematch::registry::{Objective, RunSummary, TrainOutcome};
use cinematch::store::roles::RolesReport;
use cinematch::store::{
    ArtifactBlob, Backend, DriftAlert, Ingestion, ModelRun, NewDriftAlert, PipelineRun, SplitStats,
    TableCount, TableSize,
};

use super::table;

const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

// --- db -----------------------------------------------------------------------

pub fn schema_version(version: &str, location: &str) {
    println!("schema is at version {version} ({location})");
}

pub fn vacuumed() {
    println!("VACUUM ANALYZE done on ratings, ratings_buffer, movies");
}

pub fn drift_archived(n: u64, older_than: &str) {
    println!("moved {n} drift alerts older than {older_than} into drift_alerts_archive");
}

pub fn db_status(
    location: &str,
    backend: Backend,
    version: Option<String>,
    counts: Vec<TableCount>,
) {
    println!("database: {location} ({backend})");
    println!(
        "schema version: {}",
        version.unwrap_or_else(|| "none".into())
    );
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|t| vec![t.table, thousands(t.rows)])
        .collect();
    table::print(&["table", "rows"], &rows);
}

/// The spec's "Database Statistics" in its three parts.
pub fn db_stats(
    location: &str,
    backend: Backend,
    mut counts: Vec<TableCount>,
    sizes: Vec<TableSize>,
    splits: Vec<SplitStats>,
) {
    println!("Record counts ({location})");
    counts.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.table.cmp(&b.table)));
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|t| vec![t.table, thousands(t.rows)])
        .collect();
    table::print(&["table_name", "records"], &rows);
    println!();
    println!(
        "Storage usage ({})",
        match backend {
            Backend::Postgres => "pg_total_relation_size, indexes included",
            Backend::Sqlite => "SQLite pages (dbstat), indexes included",
        }
    );
    let rows: Vec<Vec<String>> = sizes
        .into_iter()
        .map(|t| {
            vec![
                t.table,
                cinematch::format::bytes(t.bytes),
                thousands(t.bytes),
            ]
        })
        .collect();
    table::print(&["tablename", "size", "size_bytes"], &rows);
    println!();
    println!("Data distribution");
    let rows: Vec<Vec<String>> = splits
        .into_iter()
        .map(|s| {
            vec![
                s.split,
                thousands(s.records),
                decimals(Some(s.avg_rating), 2),
                decimals(Some(s.std_rating), 2),
            ]
        })
        .collect();
    table::print(
        &["data_split", "records", "avg_rating", "std_rating"],
        &rows,
    );
}

pub fn roles_report(report: &RolesReport) {
    for r in &report.roles {
        let mut what = vec![if r.created { "created" } else { "updated" }.to_string()];
        what.push(
            if r.password_set {
                "password set"
            } else {
                "password unchanged"
            }
            .into(),
        );
        if !r.attributes_fixed.is_empty() {
            what.push(format!("now {}", r.attributes_fixed.join(" ")));
        }
        let mut grants = format!("{} on {} tables", r.role.table_privileges(), r.tables);
        if let Some(sp) = r.role.sequence_privileges() {
            grants.push_str(&format!(" and {sp} on {} sequences", r.sequences));
        }
        println!(
            "role {} ({}): {grants} of schema {} in database {}",
            r.role,
            what.join(", "),
            r.schema,
            r.database
        );
    }
    if let Some(r) = report.roles.first() {
        println!(
            "default privileges: tables and sequences that {} {} in schema {} later get the same grants",
            r.default_privileges_for.join(" or "),
            if r.default_privileges_for.len() == 1 {
                "creates"
            } else {
                "create"
            },
            r.schema
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "neither role can create, alter or drop tables; run `cinematch db migrate` as the owner"
    );
}

// --- load and data --------------------------------------------------------------

pub fn load_report(r: &LoadReport, location: &str) {
    let s = &r.summary;
    println!(
        "loaded {} movies and {} ratings ({} train, {} test) into {location}{}",
        thousands(s.movies as i64),
        thousands((s.train + s.test) as i64),
        thousands(s.train as i64),
        thousands(s.test as i64),
        if s.replaced {
            ", replacing the previous dataset"
        } else {
            ""
        }
    );
    println!(
        "read and validated in {:.2}s, written in {:.2}s",
        r.read_secs, r.write_secs
    );
    let ratios: Vec<String> = r
        .pca
        .explained_variance_ratio
        .iter()
        .map(|v| format!("{:.1}%", v * 100.0))
        .collect();
    println!(
        "PCA genre features: 10 components over {} genres explain {:.1}% of the variance ({})",
        r.pca.genres.len(),
        r.pca.total_explained * 100.0,
        ratios.join(", ")
    );
    skipped(&r.skipped);
}

/// Rows `--skip-invalid` dropped: a count per kind and the first examples.
pub fn skipped(skipped: &SkipReport) {
    if skipped.is_empty() {
        return;
    }
    println!(
        "skipped {} invalid rows:",
        thousands(skipped.total() as i64)
    );
    for (kind, n) in &skipped.counts {
        println!("  {:>8}  {kind}", thousands(*n as i64));
    }
    println!("first problems:");
    for e in &skipped.examples {
        println!("  {e}");
    }
}

pub fn stream_report(r: &StreamReport, out: &Path) {
    println!(
        "wrote the history ({} ratings) and {} weekly batches to {}",
        thousands(r.history.ratings as i64),
        r.batches.len(),
        out.display()
    );
    for b in &r.batches {
        println!(
            "  {}  {} ratings, mean {:.3}, {} by users and {} for movies unseen in the history",
            b.path.display(),
            thousands(b.ratings as i64),
            b.mean_rating,
            b.unseen_users,
            b.unseen_movies
        );
    }
    println!(
        "load with `cinematch load {}`, then `cinematch ingest FILE --batch-id batch_wN`",
        out.display()
    );
}

pub fn synth_report(r: &SynthReport, out: &Path) {
    println!(
        "wrote {} ratings by {} users of {} movies to {} (mean rating {:.3})",
        thousands(r.ratings as i64),
        r.users,
        r.movies,
        out.display(),
        r.mean_rating
    );
}

pub fn synth_weekly_report(r: &WeeklyReport, out: &Path) {
    println!(
        "wrote {} history ratings and {} weekly batches to {}",
        thousands(r.history.ratings as i64),
        r.weeks.len(),
        out.display()
    );
    for w in &r.weeks {
        println!(
            "  {}  {} ratings, mean {:.3}, std {:.3}{}",
            w.path.display(),
            thousands(w.ratings as i64),
            w.mean_rating,
            w.std_rating,
            if w.drift.is_empty() {
                String::new()
            } else {
                format!(
                    "  drift: {}",
                    w.drift
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        );
    }
}

// --- train, evaluate, models ----------------------------------------------------

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

fn version_cell(r: &RunSummary) -> String {
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

// --- recommend, similar ---------------------------------------------------------

pub fn recommendations(list: &Recommendations, genre: Option<&str>, why: bool) {
    let g = genre.map(|g| format!(" {g}")).unwrap_or_default();
    match list.strategy {
        Strategy::Model => println!(
            "top {} for user {} by {}:",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::FoldIn => println!(
            "top {} for user {} by {}, folded in from their ratings (newer than the model):",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::Popular => println!(
            "{} cannot rank user {}: cold-start list, most popular{g} by damped mean rating:",
            list.model_version, list.user_id,
        ),
    }
    let score = match list.strategy {
        Strategy::Popular => "damped_mean",
        _ if list
            .items
            .iter()
            .all(|i| i.predicted_rating == Some(i.score)) =>
        {
            "predicted"
        }
        _ => "score",
    };
    items(&list.items, score);
    if why {
        for (i, it) in list.items.iter().enumerate() {
            if it.because.is_empty() {
                continue;
            }
            let reasons: Vec<String> = it
                .because
                .iter()
                .map(|r| format!("{} ({:.0}%)", r.title, r.share * 100.0))
                .collect();
            println!(
                "  {}. {} because you rated {}",
                i + 1,
                it.title,
                reasons.join(", ")
            );
        }
        if list.items.iter().all(|i| i.because.is_empty()) {
            println!(
                "  (no explanations: the {} list has none)",
                list.strategy.as_str()
            );
        }
    }
}

pub fn similar(sim: &Similar) {
    println!(
        "movies like {} ({}), by {}:",
        sim.movie.title,
        sim.movie.movie_id,
        match sim.basis {
            SimilarBasis::ItemWeights => "the champion's item weights (EASE)",
            SimilarBasis::Factors => "the champion's movie factors",
            SimilarBasis::PcaFeatures => "PCA genre features (the model has nothing for it)",
        }
    );
    items(&sim.items, "similarity");
}

fn items(items: &[Item], score: &str) {
    let stars = items
        .iter()
        .any(|i| i.predicted_rating.is_some() && score != "predicted");
    let rows: Vec<Vec<String>> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut row = vec![
                (i + 1).to_string(),
                it.movie_id.to_string(),
                it.title.clone(),
                it.genres.clone(),
                decimals(Some(f64::from(it.score)), 3),
            ];
            if stars {
                row.push(decimals(it.predicted_rating.map(f64::from), 2));
            }
            row
        })
        .collect();
    let mut head = vec!["#", "movieId", "title", "genres", score];
    if stars {
        head.push("predicted_rating");
    }
    table::print(&head, &rows);
}

// --- monitoring -----------------------------------------------------------------

pub fn ingested(r: &IngestReport) {
    println!(
        "ingested {} ratings into ratings_buffer as batch {}",
        thousands(r.records as i64),
        r.batch_id
    );
    skipped(&r.skipped);
}

pub fn drift_check(report: &DriftReport, batch: Option<&str>) {
    println!(
        "compared {} buffered ratings{} with {} training ratings:",
        thousands(report.new_ratings as i64),
        batch.map(|b| format!(" (batch {b})")).unwrap_or_default(),
        thousands(report.baseline_ratings as i64)
    );
    alerts(&report.alerts);
    println!(
        "{}",
        if report.any_triggered() {
            "DRIFT DETECTED: RETRAINING NEEDED"
        } else {
            "no drift: NO ACTION REQUIRED"
        }
    );
}

fn alerts(alerts: &[NewDriftAlert]) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.feature_name.clone(),
                decimals(Some(a.drift_score), 4),
                decimals(Some(a.threshold), 4),
                if a.alert_triggered {
                    "ALERT".into()
                } else {
                    "ok".into()
                },
                a.notes.clone(),
            ]
        })
        .collect();
    table::print(
        &["feature_name", "drift_score", "threshold", "alert", "notes"],
        &rows,
    );
}

/// `drift status`: recent alerts and the verdict over the last day.
pub fn drift_status(alerts: &[DriftAlert], verdict: &Verdict) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.alert_date.format(DATE_TIME).to_string(),
                a.feature_name.clone(),
                decimals(a.drift_score, 4),
                decimals(a.threshold, 4),
                a.alert_triggered.to_string(),
                a.notes.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "alert_date",
            "feature_name",
            "drift_score",
            "threshold",
            "alert_triggered",
            "notes",
        ],
        &rows,
    );
    println!("retraining: {}", verdict_line(verdict));
}

/// The retraining verdict of the last day, as `drift status` and the demo say it.
fn verdict_line(v: &Verdict) -> String {
    if v.needed() {
        format!("RETRAINING NEEDED ({})", v.features().join(", "))
    } else if let Some(by) = &v.handled_by {
        format!(
            "NO ACTION REQUIRED ({} alerts of the last day were handled by retrain {by})",
            v.handled.len()
        )
    } else {
        "NO ACTION REQUIRED".to_string()
    }
}

pub fn retrain(outcome: &RetrainOutcome) {
    match outcome {
        RetrainOutcome::Skipped { reason } => println!("retrain skipped: {reason}"),
        RetrainOutcome::Retrained {
            run,
            promoted,
            decision,
            champion_before,
            merged,
            batches,
            champion_changed,
        } => {
            let measured = match (&run.evaluation, run.rmse) {
                (Some(e), _) if e.ndcg_at_10.is_some() => format!(
                    "NDCG@10 {}, RMSE {}",
                    decimals(e.ndcg_at_10, 4),
                    decimals(run.rmse, 4)
                ),
                (_, Some(r)) => format!("RMSE {r:.4}"),
                _ => "no test metrics".to_string(),
            };
            println!(
                "retrained {} on {} ratings (train + buffer batches {}): {measured}",
                run.model_version,
                thousands(run.data_size.unwrap_or(0)),
                if batches.is_empty() {
                    "none".to_string()
                } else {
                    batches.join(", ")
                },
            );
            println!("{decision}");
            if *promoted {
                println!(
                    "champion: {} -> {}",
                    champion_before.as_deref().unwrap_or("none"),
                    run.model_version
                );
            } else if let Some(now) = champion_changed {
                println!(
                    "champion stays {now} (it replaced {} while this retrain ran); {} is kept in the registry",
                    champion_before.as_deref().unwrap_or("none"),
                    run.model_version
                );
            } else {
                println!(
                    "champion stays {}; the challenger is kept in the registry",
                    champion_before.as_deref().unwrap_or("none")
                );
            }
            println!(
                "merged {} buffered ratings into ratings; the buffer is empty",
                thousands(*merged as i64)
            );
        }
    }
}

pub fn cycle(report: &CycleReport) {
    println!(
        "pipeline run {}: {}",
        report.run_id,
        if report.succeeded {
            "succeeded"
        } else {
            "FAILED"
        }
    );
    for s in &report.steps {
        println!(
            "  {:<12} {:<8} {:>7.2}s  {}",
            s.name, s.status, s.seconds, s.detail
        );
    }
}

pub fn pipeline_history(runs: Vec<PipelineRun>) {
    let rows: Vec<Vec<String>> = runs
        .into_iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.started_at.format(DATE_TIME).to_string(),
                r.finished_at
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_default(),
                r.status,
                r.batch_id.unwrap_or_default(),
                r.summary.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "started_at",
            "finished",
            "status",
            "batch_id",
            "steps",
        ],
        &rows,
    );
}

pub fn buffer_merged(n: u64) {
    println!(
        "merged {} buffered ratings into ratings (data_split = train)",
        thousands(n as i64)
    );
}

pub fn batch_cleared(batch: &str, n: u64) {
    println!(
        "cleared batch {batch}: deleted {} buffered ratings; it is marked 'cleared' and may be ingested again",
        thousands(n as i64)
    );
}

/// What a `buffer clear --yes` left in the buffer, and why.
pub fn buffer_kept(kept: &[(Option<String>, i64)], cleared_any: bool) {
    if !cleared_any {
        println!("no batch to clear");
    }
    for (b, n) in kept {
        match b {
            Some(b) => println!(
                "kept batch {b} ({} ratings posted through the API; --include-api clears them too)",
                thousands(*n)
            ),
            None => println!(
                "kept {} buffered ratings without a batch id (not written by CineMatch)",
                thousands(*n)
            ),
        }
    }
}

/// `scheduler --once`: a batch whose cycle could not start.
pub fn batch_not_run(batch: &str, error: &str) {
    println!("batch {batch}: not processed: {error}");
}

pub fn buffer_status(counts: Vec<(Option<String>, i64)>) {
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(b, n)| vec![b.unwrap_or_default(), thousands(n)])
        .collect();
    table::print(&["batch_id", "ratings"], &rows);
}

// --- demo: the story, then the spec's monitoring queries ------------------------

pub fn demo_start(location: &str) {
    println!("CineMatch demo on {location}");
}

/// One line of the story as the demo tells it.
pub fn demo_line(line: &str) {
    println!("{line}");
}

/// What the demo left in the database, as the spec's queries show it.
pub fn demo_tables(
    ingestions: Vec<Ingestion>,
    runs: &[RunSummary],
    objective: Objective,
    alerts: Vec<DriftAlert>,
    verdict: &Verdict,
) {
    println!();
    ingestions_table(ingestions);
    println!();
    model_runs_table(runs, objective);
    println!();
    drift_alerts_table(alerts);
    println!();
    println!("Is retraining needed? {}", verdict_line(verdict));
}

pub fn demo_finished(took: std::time::Duration, location: &str) {
    println!(
        "demo finished in {:.1}s; explore it with `cinematch --db {location} models list`, `recommend --user 1`, `serve`",
        took.as_secs_f64()
    );
}

fn ingestions_table(ingestions: Vec<Ingestion>) {
    println!("SELECT * FROM ingestion_metadata ORDER BY ingestion_date DESC;");
    let rows: Vec<Vec<String>> = ingestions
        .into_iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.batch_id,
                i.ingestion_date
                    .map(|d| d.format(DATE_TIME).to_string())
                    .unwrap_or_default(),
                i.record_count.map(thousands).unwrap_or_default(),
                i.status.unwrap_or_default(),
                i.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "batch_id",
            "ingestion_date",
            "record_count",
            "status",
            "notes",
        ],
        &rows,
    );
}

/// "svd retrain; promoted ...": what a run was, from its notes.
fn run_summary(r: &RunSummary) -> String {
    let Some(n) = &r.notes else {
        return String::new();
    };
    let kind = n.kind.as_deref().unwrap_or("initial");
    format!(
        "{} {}{}",
        r.algorithm().unwrap_or_default(),
        kind,
        n.decision
            .as_deref()
            .map(|d| format!("; {d}"))
            .unwrap_or_default()
    )
}

fn model_runs_table(runs: &[RunSummary], objective: Objective) {
    println!(
        "SELECT * FROM model_metrics JOIN model_evaluations USING (model_version) \
         ORDER BY training_date DESC;  -- with {objective} - LAG({objective})"
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .rev()
        .map(|r| {
            vec![
                r.run.id.to_string(),
                version_cell(r),
                r.run.training_date.format(DATE_TIME).to_string(),
                decimals(r.report.ndcg_at_10, 4),
                decimals(r.run.rmse, 4),
                decimals(r.run.mae, 4),
                decimals(r.run.precision_at_10, 4),
                r.run.data_size.map(thousands).unwrap_or_default(),
                signed(r.change, 4),
                run_summary(r),
            ]
        })
        .collect();
    let change = format!("{}_change", objective.as_str());
    table::print(
        &[
            "id",
            "model_version",
            "training_date",
            "ndcg@10",
            "rmse",
            "mae",
            "precision_at_10",
            "data_size",
            &change,
            "notes",
        ],
        &rows,
    );
}

fn drift_alerts_table(alerts: Vec<DriftAlert>) {
    println!("SELECT * FROM drift_alerts ORDER BY alert_date DESC;");
    let rows: Vec<Vec<String>> = alerts
        .into_iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.alert_date.format(DATE_TIME).to_string(),
                a.feature_name,
                decimals(a.drift_score, 4),
                decimals(a.threshold, 4),
                a.alert_triggered.to_string(),
                a.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "alert_date",
            "feature_name",
            "drift_score",
            "threshold",
            "alert_triggered",
            "notes",
        ],
        &rows,
    );
}
