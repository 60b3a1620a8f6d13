//! The dashboard at `/`: one self-contained HTML page a person opens every
//! morning. The server draws the charts as inline SVG, so the page needs no
//! network beyond this server and no chart library; the only script is the
//! explorer's few lines calling the JSON API. The stylesheet, the
//! explorer's markup and its script live beside this file in `dashboard/`
//! (edited as CSS, HTML and JavaScript) and are inlined into the page.
//!
//! People first: the explorer leads, then the verdict and the champion, the
//! model versions (per-algorithm charts, a table to compare and promote
//! in), the backtest and list quality when there are rows, drift, ingestion
//! and tables.
//!
//! Every chart point is a circle with its series' name in `data-series`:
//! model points `class="point"` with `data-version`, `data-metric`,
//! `data-value` (and `champion`, `tuned` classes); drift points
//! `drift-point` with `data-feature`, `data-alert`, `data-batch`,
//! `data-score`, `data-threshold`, `data-ratio`; list quality points
//! `quality-point`, backtest points `bt-point` with `data-value`; so tests
//! and people with devtools can find them.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

mod charts;

use charts::{Chart, Guide, Point, Series};

use super::errors::ApiError;
use super::state::AppState;
use super::stats::Statistics as Data;
use crate::format;
use crate::pipeline::backtest::PolicyResult;
use crate::registry::{Objective, RunSummary};
use crate::store::{DriftAlert, Ingestion, PipelineRun};
use crate::types::IngestionStatus;

/// The monitoring dashboard.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses(
        (status = 200, description = "The dashboard (HTML, self-contained)", content_type = "text/html", body = String),
        (status = 503, description = "Database unavailable", body = super::errors::ErrorBody)
    )
)]
pub async fn page(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Cached for every client: a burst of page loads costs the database one
    // computation (see `stats`).
    let data = state.statistics().await.map_err(|e| ApiError::from(&*e))?;
    let serving = state
        .snapshot
        .load()
        .as_ref()
        .and_then(|s| s.model_version().map(str::to_string));
    // The audit notes (file names, digests, errors) are what the read token
    // guards on `/api/ingestions`; the page carries no token, so it leaves
    // them out on a server that has one.
    let notes_private = state.read_token.is_some();
    let html = render(&data, serving.as_deref(), state.backend, notes_private);
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "run_abc123_v7" → "v7": what fits under a chart axis.
fn short_version(v: &str) -> String {
    match v.rfind("_v") {
        Some(i) if v[i + 2..].chars().all(|c| c.is_ascii_digit()) && i + 2 < v.len() => {
            v[i + 1..].to_string()
        }
        _ => v.to_string(),
    }
}

fn fmt_num(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "–".to_string(), |v| format::decimals(Some(v), digits))
}

/// What the full-catalogue metrics measure, said wherever they are shown.
const LIST: &str = "the list a user sees";
/// The spec's precision@10, always labelled with what it counts.
const RATED_P10: &str = "P@10 (rated items ≥3.5)";

/// A metric of a run, as the charts and the tables show it.
struct Metric {
    title: &'static str,
    key: &'static str,
    hint: &'static str,
    get: fn(&RunSummary) -> Option<f64>,
    lower_is_better: bool,
}

/// Every metric, the deployment's objective first: the full-catalogue ones
/// judge the list a user sees (ranking models have them too), RMSE, MAE
/// and the spec's rated precision@10 the predicted ratings (ranking models
/// have none).
fn metrics(objective: Objective) -> Vec<Metric> {
    let mut m = vec![
        Metric {
            title: "NDCG@10",
            key: "ndcg_at_10",
            hint: LIST,
            get: |r| r.report.ndcg_at_10,
            lower_is_better: false,
        },
        Metric {
            title: "Recall@10",
            key: "recall_at_10",
            hint: LIST,
            get: |r| r.report.recall_at_10,
            lower_is_better: false,
        },
        Metric {
            title: "P@10",
            key: "catalogue_precision_at_10",
            hint: LIST,
            get: |r| r.report.rank_precision_at_10,
            lower_is_better: false,
        },
        Metric {
            title: "Coverage",
            key: "coverage",
            hint: "share of the catalogue in some user's list",
            get: |r| r.report.coverage,
            lower_is_better: false,
        },
        Metric {
            title: "RMSE",
            key: "rmse",
            hint: "predicted ratings",
            get: |r| r.run.rmse,
            lower_is_better: true,
        },
        Metric {
            title: "MAE",
            key: "mae",
            hint: "predicted ratings",
            get: |r| r.run.mae,
            lower_is_better: true,
        },
        Metric {
            title: RATED_P10,
            key: "precision_at_10",
            hint: "the spec's, among the movies a user rated",
            get: |r| r.run.precision_at_10,
            lower_is_better: false,
        },
    ];
    let first = match objective {
        Objective::Ndcg10 => "ndcg_at_10",
        Objective::Recall10 => "recall_at_10",
        Objective::Rmse => "rmse",
    };
    m.sort_by_key(|m| m.key != first);
    m
}

/// A run recorded by `tune` (its hyperparameters searched for).
fn is_tuned(r: &RunSummary) -> bool {
    r.notes
        .as_ref()
        .and_then(|n| n.kind.as_deref())
        .is_some_and(|k| k == "tune")
}

/// The run's hyperparameters, `key=value` comma-separated, without the
/// algorithm (its own column).
fn params_compact(r: &RunSummary) -> String {
    let Some(serde_json::Value::Object(map)) = r
        .notes
        .as_ref()
        .and_then(|n| n.params.as_ref())
        .and_then(|p| serde_json::to_value(p).ok())
    else {
        return String::new();
    };
    map.iter()
        .filter(|(k, v)| k.as_str() != "algo" && !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::Number(n) => format!("{k}={}", short_number(n)),
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hyperparameter as people write it: integers whole, others to four
/// significant digits (0.1, not 0.09999999776482582).
fn short_number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(x)) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) => format!("{x:.3e}"),
        (None, Some(x)) if x == 0.0 || !x.is_finite() => x.to_string(),
        (None, Some(x)) => {
            let digits = 3i32
                .saturating_sub(x.abs().log10().floor() as i32)
                .clamp(0, 12) as usize;
            let t = format!("{x:.digits$}");
            if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                t
            }
        }
        _ => n.to_string(),
    }
}

/// A colour per algorithm, in name order (stable across page loads).
fn algo_colors(runs: &[RunSummary]) -> BTreeMap<String, usize> {
    let names: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|r| r.algorithm().unwrap_or_else(|| "?".into()))
        .collect();
    names.into_iter().enumerate().map(|(i, a)| (a, i)).collect()
}

/// One chart per metric with one series per algorithm: x slots are the
/// versions that have the metric, oldest first; the champion's point is
/// filled and larger, a tuned run's ring dashed.
fn model_charts(runs: &[RunSummary], objective: Objective) -> String {
    let colors = algo_colors(runs);
    let mut out = String::new();
    for m in metrics(objective) {
        let with: Vec<&RunSummary> = runs
            .iter()
            .filter(|r| (m.get)(r).is_some_and(f64::is_finite))
            .collect();
        let labels: Vec<String> = with
            .iter()
            .map(|r| short_version(&r.run.model_version))
            .collect();
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for (slot, r) in with.iter().enumerate() {
            let v = (m.get)(r).unwrap_or_default();
            let algo = r.algorithm().unwrap_or_else(|| "?".into());
            let tuned = is_tuned(r);
            let class = match (r.is_champion, tuned) {
                (true, true) => "champion tuned",
                (true, false) => "champion",
                (false, true) => "tuned",
                (false, false) => "",
            };
            let params = params_compact(r);
            series
                .entry(algo.clone())
                .or_insert_with(|| Series {
                    name: algo.clone(),
                    color: colors.get(&algo).copied().unwrap_or(0),
                    dashed: false,
                    points: vec![],
                })
                .points
                .push(Point {
                    slot,
                    y: v,
                    class,
                    attrs: format!(
                        "data-version=\"{}\" data-metric=\"{}\" data-value=\"{v}\" data-algorithm=\"{}\"",
                        esc(&r.run.model_version),
                        m.key,
                        esc(&algo)
                    ),
                    tip: format!(
                        "{} · {algo}{} · {} · {} {v:.4}{}{}",
                        r.run.model_version,
                        if tuned { " (tuned)" } else { "" },
                        r.run.training_date.format("%Y-%m-%d %H:%M"),
                        m.title,
                        if r.is_champion { " · champion" } else { "" },
                        if params.is_empty() {
                            String::new()
                        } else {
                            format!(" · {params}")
                        }
                    ),
                });
        }
        let hint = format!(
            "{} · {}",
            esc(m.hint),
            if m.lower_is_better {
                "lower is better"
            } else {
                "higher is better"
            }
        );
        let series: Vec<Series> = series.into_values().collect();
        let legend = !series.is_empty();
        out.push_str(
            &Chart {
                title: m.title,
                hint,
                base_class: "point",
                x_labels: labels,
                series,
                guide: Guide::None,
                legend,
                footer: String::new(),
            }
            .render(),
        );
    }
    out
}

/// The models table: every metric under what it measures, the objective's
/// change from the previous run of the same algorithm, hyperparameters, a
/// box to compare and a promote button.
fn model_table(h: &mut String, runs: &[RunSummary], objective: Objective) {
    // The previous value of the objective per algorithm, oldest first.
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    let changes: Vec<Option<f64>> = runs
        .iter()
        .map(|r| {
            let algo = r.algorithm().unwrap_or_default();
            let change = r.value.zip(last.get(&algo).copied()).map(|(v, p)| v - p);
            if let Some(v) = r.value {
                last.insert(algo, v);
            }
            change
        })
        .collect();
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"model-table\"><thead>\
         <tr class=\"group\"><th colspan=\"3\"></th><th colspan=\"5\" class=\"span\">{LIST}</th>\
         <th colspan=\"3\" class=\"span\">predicted ratings</th><th colspan=\"2\"></th></tr>\
         <tr><th>Version <span class=\"hint\">(tick to compare) · hyperparameters</span></th><th>Trained</th><th>Algorithm</th>\
         <th class=\"num\">NDCG@10</th><th class=\"num\" title=\"the objective's change from the previous run of the same algorithm\">Δ {}</th>\
         <th class=\"num\">Recall@10</th><th class=\"num\">P@10</th><th class=\"num\">Coverage</th>\
         <th class=\"num\">RMSE</th><th class=\"num\">MAE</th><th class=\"num\">{}</th>\
         <th class=\"num\">Ratings</th><th></th></tr></thead><tbody>",
        objective.label(),
        esc(RATED_P10)
    );
    for (r, change) in runs.iter().zip(&changes).rev().take(30) {
        let algo = r.algorithm().unwrap_or_default();
        let delta_class = match change {
            Some(c) if objective.better(*c, 0.0) => "ok-text",
            Some(c) if objective.better(0.0, *c) => "warn-text",
            _ => "",
        };
        let v = esc(&r.run.model_version);
        let _ = write!(
            h,
            "<tr data-version=\"{v}\"{}><td class=\"version\"><label><input type=\"checkbox\" class=\"cmp\" value=\"{v}\" aria-label=\"compare {v}\"> \
             <span class=\"mono\">{v}</span></label><span class=\"badges\">{}{}</span><div class=\"params mono\">{}</div></td>\
             <td class=\"date\">{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num {delta_class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td>\
             <td class=\"act\"><button type=\"button\" class=\"promote small\" data-version=\"{v}\"{}>Promote</button></td></tr>",
            if r.is_champion { " class=\"is-champion\"" } else { "" },
            if r.is_champion { " <span class=\"badge\">champion</span>" } else { "" },
            if is_tuned(r) { " <span class=\"badge tuned\">tuned</span>" } else { "" },
            esc(&params_compact(r)),
            r.run.training_date.format("%m-%d %H:%M"),
            esc(&algo),
            fmt_num(r.report.ndcg_at_10, 4),
            change.map_or_else(|| "–".into(), |d| format!("{d:+.4}")),
            fmt_num(r.report.recall_at_10, 4),
            fmt_num(r.report.rank_precision_at_10, 4),
            fmt_num(r.report.coverage, 4),
            fmt_num(r.run.rmse, 4),
            fmt_num(r.run.mae, 4),
            fmt_num(r.run.precision_at_10, 4),
            r.run.data_size.map(format::thousands).unwrap_or_default(),
            if r.is_champion { " hidden" } else { "" }
        );
    }
    h.push_str("</tbody></table></div>");
    if runs.len() > 30 {
        let _ = write!(
            h,
            "<p class=\"note\">The 30 newest of {} versions; /api/models lists all.</p>",
            runs.len()
        );
    }
}

/// The batch a drift check ran on: the pipeline run around it, else the
/// latest batch ingested before it (`true`: inferred so).
fn batch_of(
    at: chrono::NaiveDateTime,
    runs: &[PipelineRun],
    ingestions: &[Ingestion],
) -> Option<(String, bool)> {
    runs.iter()
        .filter(|r| r.started_at <= at && r.finished_at.is_none_or(|f| at <= f))
        .filter_map(|r| r.batch_id.as_ref().map(|b| (r.started_at, b)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, b)| (b.clone(), false))
        .or_else(|| {
            ingestions
                .iter()
                .filter(|i| i.status == Some(IngestionStatus::Completed))
                .filter_map(|i| i.ingestion_date.filter(|d| *d <= at).map(|d| (d, i)))
                .max_by_key(|(d, _)| *d)
                .map(|(_, i)| (i.batch_id.clone(), true))
        })
}

/// The name of each check (distinct alert date, oldest first) on the x
/// axis: its batch, or its number and date.
fn check_labels(d: &Data, dates: &[chrono::NaiveDateTime]) -> Vec<(String, String)> {
    dates
        .iter()
        .enumerate()
        .map(
            |(i, at)| match batch_of(*at, &d.pipeline_runs, &d.ingestions) {
                Some((b, false)) => (b.clone(), format!("batch {b}")),
                Some((b, true)) => (
                    b.clone(),
                    format!("after batch {b} (the latest ingested before the check)"),
                ),
                None => (
                    format!("#{} {}", i + 1, at.format("%m-%d")),
                    "no batch recorded for this check".into(),
                ),
            },
        )
        .collect()
}

/// The name of the drift test that scores the champion's lists per batch.
const RANKING_QUALITY: &str = "ranking_quality";

/// A chart per drift test, checks on the x axis by batch, each score drawn
/// relative to its threshold (score ÷ threshold, the dashed line at 1), so
/// a threshold of 16.9 stays visible under scores up to 1,405.
fn drift_charts(d: &Data) -> String {
    let alerts: Vec<&DriftAlert> = d
        .alerts
        .iter()
        .rev()
        .filter(|a| a.feature_name != RANKING_QUALITY && a.drift_score.is_some())
        .collect();
    let mut dates: Vec<chrono::NaiveDateTime> = alerts.iter().map(|a| a.alert_date).collect();
    dates.sort();
    dates.dedup();
    let labels = check_labels(d, &dates);
    let mut by_feature: BTreeMap<&str, Vec<&DriftAlert>> = BTreeMap::new();
    for a in &alerts {
        by_feature
            .entry(a.feature_name.as_str())
            .or_default()
            .push(a);
    }
    let mut out = String::new();
    for (feature, checks) in by_feature {
        let relative = checks
            .iter()
            .all(|a| a.threshold.is_some_and(|t| t > 0.0 && t.is_finite()));
        let points: Vec<Point> = checks
            .iter()
            .map(|a| {
                let score = a.drift_score.unwrap_or(0.0);
                let slot = dates.binary_search(&a.alert_date).unwrap_or(0);
                let ratio = a.threshold.filter(|_| relative).map(|t| score / t);
                let (batch, batch_note) = &labels[slot];
                Point {
                    slot,
                    y: ratio.unwrap_or(score),
                    class: if a.alert_triggered { "alert" } else { "" },
                    attrs: format!(
                        "data-feature=\"{}\" data-alert=\"{}\" data-date=\"{}\" data-batch=\"{}\" data-score=\"{score}\" data-threshold=\"{}\" data-ratio=\"{}\"",
                        esc(feature),
                        a.alert_triggered,
                        a.alert_date.format("%Y-%m-%dT%H:%M:%S"),
                        esc(batch),
                        a.threshold.map(|t| t.to_string()).unwrap_or_default(),
                        ratio.map(|r| r.to_string()).unwrap_or_default()
                    ),
                    tip: format!(
                        "{batch_note} · {} · score {score:.4} · threshold {}{}{}{}",
                        a.alert_date.format("%Y-%m-%d %H:%M"),
                        fmt_num(a.threshold, 4),
                        ratio.map(|r| format!(" · {r:.2}× the threshold")).unwrap_or_default(),
                        if a.alert_triggered { " · ALERT" } else { "" },
                        a.notes
                            .as_deref()
                            .map(|n| format!(" · {n}"))
                            .unwrap_or_default()
                    ),
                }
            })
            .collect();
        let (guide, hint) = if relative {
            (
                Guide::Level(1.0),
                "score ÷ threshold · above the dashed line (1) alerts".to_string(),
            )
        } else {
            let mut th = vec![None; dates.len()];
            for a in &checks {
                if let Ok(i) = dates.binary_search(&a.alert_date) {
                    th[i] = a.threshold;
                }
            }
            (Guide::PerSlot(th), "score · dashed: threshold".to_string())
        };
        out.push_str(
            &Chart {
                title: feature,
                hint,
                base_class: "drift-point",
                x_labels: labels.iter().map(|(l, _)| l.clone()).collect(),
                series: vec![Series {
                    name: feature.to_string(),
                    color: 0,
                    dashed: false,
                    points,
                }],
                guide,
                legend: false,
                footer: String::new(),
            }
            .render(),
        );
    }
    out
}

/// NDCG@10 of the champion's lists on each batch (`ranking_quality` drift
/// rows) against its alert level; empty without such rows.
fn quality_chart(d: &Data) -> String {
    let rows: Vec<&DriftAlert> = d
        .alerts
        .iter()
        .rev()
        .filter(|a| a.feature_name == RANKING_QUALITY && a.drift_score.is_some())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let dates: Vec<chrono::NaiveDateTime> = rows.iter().map(|a| a.alert_date).collect();
    let labels = check_labels(d, &dates);
    let points = rows
        .iter()
        .enumerate()
        .map(|(slot, a)| {
            let v = a.drift_score.unwrap_or_default();
            Point {
                slot,
                y: v,
                class: if a.alert_triggered { "alert" } else { "" },
                attrs: format!(
                    "data-batch=\"{}\" data-value=\"{v}\" data-threshold=\"{}\" data-alert=\"{}\"",
                    esc(&labels[slot].0),
                    a.threshold.map(|t| t.to_string()).unwrap_or_default(),
                    a.alert_triggered
                ),
                tip: format!(
                    "{} · NDCG@10 {v:.4} · alert level {}{}",
                    labels[slot].1,
                    fmt_num(a.threshold, 4),
                    if a.alert_triggered { " · ALERT" } else { "" }
                ),
            }
        })
        .collect();
    Chart {
        title: "NDCG@10 per batch",
        hint: "the champion's lists on each new batch · dashed: alert level".into(),
        base_class: "quality-point",
        x_labels: labels.into_iter().map(|(l, _)| l).collect(),
        series: vec![Series {
            name: "champion's lists".into(),
            color: 0,
            dashed: false,
            points,
        }],
        guide: Guide::PerSlot(rows.iter().map(|a| a.threshold).collect()),
        legend: false,
        footer: String::new(),
    }
    .render()
}

/// The latest backtest: per week, the NDCG@10 of the lists each policy
/// served against the most-rated and trending baselines; empty without a
/// readable backtest.
fn backtest_section(d: &Data) -> String {
    let policies: Vec<PolicyResult> = d
        .backtest
        .iter()
        .rev()
        .filter_map(|r| serde_json::from_str(&r.report).ok())
        .collect();
    let Some(first) = policies.first() else {
        return String::new();
    };
    let weeks = policies.iter().map(|p| p.weeks.len()).max().unwrap_or(0);
    if weeks == 0 {
        return String::new();
    }
    let labels: Vec<String> = (0..weeks)
        .map(|i| {
            first
                .weeks
                .get(i)
                .map_or_else(|| format!("week {}", i + 1), |w| format!("week {}", w.week))
        })
        .collect();
    let point = |series: &str, slot: usize, week: u32, v: f64| Point {
        slot,
        y: v,
        class: "",
        attrs: format!(
            "data-series=\"{}\" data-week=\"{week}\" data-value=\"{v}\"",
            esc(series)
        ),
        tip: format!("{series} · week {week} · NDCG@10 {v:.4}"),
    };
    let mut series: Vec<Series> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = format!("served ({})", p.policy);
            Series {
                points: p
                    .weeks
                    .iter()
                    .enumerate()
                    .map(|(slot, w)| point(&name, slot, w.week, w.scores.served.all.ndcg_at_10))
                    .collect(),
                name,
                color: i,
                dashed: false,
            }
        })
        .collect();
    type Baseline = (
        &'static str,
        fn(&crate::pipeline::backtest::WeekResult) -> f64,
    );
    let baselines: [Baseline; 2] = [
        ("most rated", |w| w.scores.most_rated.all.ndcg_at_10),
        ("trending", |w| w.scores.trending.all.ndcg_at_10),
    ];
    for (j, (name, get)) in baselines.into_iter().enumerate() {
        series.push(Series {
            name: name.to_string(),
            color: policies.len() + j,
            dashed: true,
            points: first
                .weeks
                .iter()
                .enumerate()
                .map(|(slot, w)| point(name, slot, w.week, get(w)))
                .collect(),
        });
    }
    let row = &d.backtest[0];
    let mut h = String::new();
    let _ = write!(
        h,
        "<section class=\"card\" id=\"backtest\"><h2>Backtest <span class=\"count\">{} weeks</span></h2>\
         <p class=\"note\">{} replayed {} ({}): each week's lists scored on that week's ratings.</p><div class=\"charts\">{}</div></section>",
        weeks,
        esc(&row.backtest_id),
        esc(&row.source),
        row.created_at.format("%Y-%m-%d %H:%M"),
        Chart {
            title: "NDCG@10 per week",
            hint: "served lists against the baselines (dashed) · higher is better".into(),
            base_class: "bt-point",
            x_labels: labels,
            series,
            guide: Guide::None,
            legend: true,
            footer: String::new(),
        }
        .render()
    );
    h
}

/// One ingestion row of a table.
fn ingestion_row(h: &mut String, i: &Ingestion, notes_private: bool) {
    let status = i.status.map_or("?", IngestionStatus::as_str);
    let _ = write!(
        h,
        "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td>\
         <td><span class=\"status status-{}\">{}</span></td><td class=\"notes\">{}</td></tr>",
        esc(&i.batch_id),
        i.ingestion_date
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        i.record_count.map(format::thousands).unwrap_or_default(),
        esc(&status.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
        esc(status),
        if notes_private {
            String::new()
        } else {
            esc(i.notes.as_deref().unwrap_or(""))
        }
    );
}

const INGESTION_HEAD: &str = "<div class=\"scroll\"><table><thead><tr><th>Batch</th><th>Date</th><th class=\"num\">Ratings</th><th>Status</th><th>Notes</th></tr></thead><tbody>";

/// Ingestion history: the batches that went in, the failed ones folded
/// away under their count.
fn ingestion_section(h: &mut String, d: &Data, notes_private: bool) {
    h.push_str("<section class=\"card\" id=\"ingestions\"><h2>Ingestion history</h2>");
    if d.ingestions.is_empty() {
        h.push_str("<p class=\"note\">No batch has been ingested yet.</p></section>");
        return;
    }
    let (failed, ok): (Vec<&Ingestion>, Vec<&Ingestion>) = d
        .ingestions
        .iter()
        .partition(|i| i.status == Some(IngestionStatus::Failed));
    if ok.is_empty() {
        h.push_str("<p class=\"note\">No batch has gone in yet.</p>");
    } else {
        h.push_str(INGESTION_HEAD);
        for i in ok.iter().take(50) {
            ingestion_row(h, i, notes_private);
        }
        h.push_str("</tbody></table></div>");
        if ok.len() > 50 {
            let _ = write!(
                h,
                "<p class=\"note\">The 50 newest of {}; /api/ingestions lists all.</p>",
                ok.len()
            );
        }
    }
    if !failed.is_empty() {
        let _ = write!(
            h,
            "<details id=\"failed-ingestions\"><summary>{} failed ingestion{} (refused files; they may be delivered again)</summary>{INGESTION_HEAD}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" }
        );
        for i in failed.iter().take(50) {
            ingestion_row(h, i, notes_private);
        }
        h.push_str("</tbody></table></div></details>");
    }
    if notes_private {
        h.push_str(
            "<p class=\"note\">Notes (file names, digests, errors) are private on this \
             server: /api/ingestions with the read token has them.</p>",
        );
    }
    h.push_str("</section>");
}

fn render(d: &Data, serving: Option<&str>, backend: &str, notes_private: bool) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>CineMatch dashboard</title><style>{CSS}</style></head><body>\
         <header><h1>CineMatch</h1><span class=\"sub\">{} · <span id=\"generated\">generated {now}</span></span>\
         <button type=\"button\" id=\"refresh\" class=\"small\" title=\"Load the page again (the explorer's user and title stay)\">Refresh</button>\
         <nav><a href=\"#explorer\">people</a><a href=\"#models\">models</a><a href=\"#drift\">drift</a><a href=\"#ingestions\">ingestion</a>\
         <a href=\"/api/status\">status</a><a href=\"/api/openapi.json\">API</a><a href=\"/metrics\">metrics</a></nav></header><main>",
        esc(backend)
    );

    // People first: the explorer.
    h.push_str(EXPLORER);

    // Verdict and champion.
    h.push_str("<div class=\"row\">");
    if d.recent.is_empty() {
        h.push_str(
            "<section class=\"card verdict ok\" id=\"verdict\" data-retraining-needed=\"false\">\
             <h2>Retraining needed?</h2><p class=\"big\">No</p>\
             <p class=\"note\">No drift alert was triggered in the last day, or the latest \
             retrain already acted on it.</p>",
        );
    } else {
        h.push_str(
            "<section class=\"card verdict bad\" id=\"verdict\" data-retraining-needed=\"true\">\
             <h2>Retraining needed?</h2><p class=\"big\">Yes</p><ul class=\"alerts\">",
        );
        for a in &d.recent {
            let _ = write!(
                h,
                "<li><b>{}</b> {} {} {} <span class=\"note\">{}</span></li>",
                esc(&a.feature_name),
                fmt_num(a.drift_score, 4),
                // `ranking_quality` alerts below its level, the rest above.
                match a.drift_score.zip(a.threshold) {
                    Some((s, t)) if s < t => "&lt;",
                    _ => "&gt;",
                },
                fmt_num(a.threshold, 4),
                a.alert_date.format("%Y-%m-%d %H:%M")
            );
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<p class=\"note\">{} ratings waiting in ratings_buffer.</p></section>",
        format::thousands(d.buffer)
    );

    h.push_str("<section class=\"card champion\" id=\"champion\"><h2>Champion</h2>");
    match d
        .champion
        .as_deref()
        .and_then(|v| d.runs.iter().find(|r| r.run.model_version == v))
    {
        Some(r) => {
            let algo = r.algorithm().unwrap_or_else(|| "?".into());
            let params = params_compact(r);
            let _ = write!(
                h,
                "<p class=\"big mono\" id=\"champion-version\">{}</p><p class=\"note\">{}{}{} · trained {} on {} ratings · chosen on {}</p>\
                 <div class=\"stats\"><div><span>NDCG@10</span><b>{}</b></div><div><span>Recall@10</span><b>{}</b></div>\
                 <div><span>P@10</span><b>{}</b></div><div><span>RMSE</span><b>{}</b></div><div><span>{}</span><b>{}</b></div></div>\
                 <p class=\"note\">NDCG@10, Recall@10 and P@10: {LIST} (the full catalogue). RMSE and {}: its predicted ratings.</p>",
                esc(&r.run.model_version),
                esc(&algo),
                if is_tuned(r) { " (tuned)" } else { "" },
                if params.is_empty() { String::new() } else { format!(" · {}", esc(&params)) },
                r.run.training_date.format("%Y-%m-%d %H:%M"),
                r.run.data_size.map(format::thousands).unwrap_or_else(|| "?".into()),
                d.objective.label(),
                fmt_num(r.report.ndcg_at_10, 4),
                fmt_num(r.report.recall_at_10, 4),
                fmt_num(r.report.rank_precision_at_10, 4),
                fmt_num(r.run.rmse, 4),
                esc(RATED_P10),
                fmt_num(r.run.precision_at_10, 4),
                esc(RATED_P10),
            );
            match serving {
                Some(s) if s == r.run.model_version => {
                    h.push_str("<p class=\"note ok-text\">This server is serving it.</p>")
                }
                Some(s) => {
                    let _ = write!(
                        h,
                        "<p class=\"note warn-text\">This server still serves {}; it switches at the next reload check.</p>",
                        esc(s)
                    );
                }
                None => h.push_str(
                    "<p class=\"note warn-text\">This server has not loaded it yet.</p>",
                ),
            }
        }
        None => h.push_str(
            "<p class=\"big\" id=\"champion-version\">None yet</p><p class=\"note\">Train one with <code>cinematch train</code>.</p>",
        ),
    }
    h.push_str("</section></div>");

    // Model history.
    let _ = write!(
        h,
        "<section class=\"card\" id=\"models\"><h2>Model versions <span class=\"count\">{}</span></h2>",
        d.runs.len()
    );
    if d.runs.is_empty() {
        h.push_str("<p class=\"note\">No model has been trained yet.</p>");
    } else {
        let _ = write!(
            h,
            "<p class=\"note\">One line per algorithm; <span class=\"mark champion\"></span> the champion, \
             <span class=\"mark tuned\"></span> a tuned run (dashed ring). The list a user sees: the full-catalogue \
             top 10 against each user's held-out ratings ≥4; {RATED_P10}: the spec's, among the movies a user rated.</p>\
             <div class=\"charts\">{}</div>",
            model_charts(&d.runs, d.objective)
        );
        h.push_str(
            "<div class=\"model-actions\"><button type=\"button\" id=\"compare-btn\">Compare selected</button>\
             <button type=\"button\" id=\"rollback-btn\" class=\"secondary\">Roll back the champion</button>\
             <span class=\"note\" id=\"model-status\" role=\"status\">Tick two or more versions to compare them; \
             promoting and rolling back need the write token (typed in the explorer above).</span></div>\
             <div id=\"compare\" class=\"scroll\" hidden></div>\
             <p class=\"note narrow-only\">Swipe the table sideways for the metrics and the promote buttons.</p>",
        );
        model_table(&mut h, &d.runs, d.objective);
    }
    h.push_str("</section>");

    // The backtest and the lists' quality per batch, side by side.
    let backtest = backtest_section(d);
    let quality = quality_chart(d);
    if !backtest.is_empty() || !quality.is_empty() {
        h.push_str("<div class=\"row\">");
        h.push_str(&backtest);
        if !quality.is_empty() {
            let _ = write!(
                h,
                "<section class=\"card\" id=\"quality\"><h2>List quality</h2>\
                 <p class=\"note\">How good the champion's lists were on each new batch of ratings.</p>\
                 <div class=\"charts\">{quality}</div></section>"
            );
        }
        h.push_str("</div>");
    }

    // Drift.
    let checks = {
        let mut dates: Vec<_> = d
            .alerts
            .iter()
            .filter(|a| a.feature_name != RANKING_QUALITY)
            .map(|a| a.alert_date)
            .collect();
        dates.sort();
        dates.dedup();
        dates.len()
    };
    let _ = write!(
        h,
        "<section class=\"card\" id=\"drift\"><h2>Drift <span class=\"count\">{checks} checks</span></h2>\
         <p class=\"note\">Each test's score per check (by batch) divided by its threshold: above the dashed \
         line at 1 it alerts (<span class=\"alert-dot\"></span>). Hover a point for the score and the threshold.</p>"
    );
    if checks == 0 {
        h.push_str("<p class=\"note\">No drift check has been recorded yet.</p>");
    } else {
        let _ = write!(h, "<div class=\"charts\">{}</div>", drift_charts(d));
    }
    h.push_str("</section>");

    // Ingestion and storage side by side.
    h.push_str("<div class=\"row\">");
    ingestion_section(&mut h, d, notes_private);
    h.push_str("<section class=\"card\" id=\"tables\"><h2>Tables</h2>");
    let rows: BTreeMap<&str, i64> = d
        .counts
        .iter()
        .map(|c| (c.table.as_str(), c.rows))
        .collect();
    let largest = d.sizes.iter().map(|s| s.bytes).max().unwrap_or(0).max(1);
    h.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Table</th><th class=\"num\">Rows</th><th class=\"num\">Size</th><th></th></tr></thead><tbody>",
    );
    for s in &d.sizes {
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"barcell\"><div class=\"bar\" style=\"width:{:.1}%\"></div></td></tr>",
            esc(&s.table),
            rows.get(s.table.as_str())
                .map(|r| format::thousands(*r))
                .unwrap_or_default(),
            format::bytes(s.bytes),
            100.0 * s.bytes as f64 / largest as f64
        );
    }
    h.push_str("</tbody></table></div></section></div>");

    let _ = write!(h, "</main><script>{SCRIPT}</script></body></html>");
    h
}

/// The page's look; inlined so the page stays one self-contained response.
const CSS: &str = include_str!("dashboard/style.css");

/// The explorer's markup: a user's lists, a title's matches and similar movies.
const EXPLORER: &str = include_str!("dashboard/explorer.html");

/// The explorer: fetches the JSON API and fills the lists with textContent
/// only (titles never become markup). `/?user=1&movie=toy` runs it on load.
///
/// For tests and devtools: every result `<li>` carries `data-movie-id`; each
/// result list's `data-state` is `loading` while a request runs, then
/// `done`, `empty`, `error` or (rejected by the form's own checks)
/// `invalid`; `#user-recs` has `data-strategy` (`model`, `fold-in` or
/// `popular`).
const SCRIPT: &str = include_str!("dashboard/explorer.js");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PipelineStatus;

    fn at(s: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn hyperparameters_read_as_people_write_them() {
        let n = |v: serde_json::Value| short_number(v.as_number().unwrap());
        assert_eq!(n(serde_json::json!(0.09999999776482582)), "0.1");
        assert_eq!(n(serde_json::json!(100)), "100");
        assert_eq!(n(serde_json::json!(0.0)), "0");
        assert_eq!(n(serde_json::json!(1.5)), "1.5");
        assert_eq!(n(serde_json::json!(123.456)), "123.5");
        assert_eq!(n(serde_json::json!(1e-7)), "1.000e-7");
    }

    #[test]
    fn a_check_is_named_by_its_pipeline_run_else_the_batch_ingested_before() {
        let run = |batch: &str, from: &str, to: &str| PipelineRun {
            id: 1,
            started_at: at(from),
            finished_at: Some(at(to)),
            status: PipelineStatus::Succeeded,
            batch_id: Some(batch.into()),
            steps: None,
            summary: None,
        };
        let ingestion = |batch: &str, when: &str, status| Ingestion {
            id: 1,
            batch_id: batch.into(),
            ingestion_date: Some(at(when)),
            record_count: Some(10),
            status: Some(status),
            notes: None,
        };
        let runs = [
            run("w01", "2026-01-01 10:00:00", "2026-01-01 10:05:00"),
            run("w02", "2026-01-08 10:00:00", "2026-01-08 10:05:00"),
        ];
        let ingestions = [
            ingestion("w02", "2026-01-08 10:01:00", IngestionStatus::Completed),
            ingestion("late", "2026-01-09 09:00:00", IngestionStatus::Completed),
            ingestion("broken", "2026-01-09 09:30:00", IngestionStatus::Failed),
        ];
        // Inside a run: its batch.
        assert_eq!(
            batch_of(at("2026-01-08 10:02:00"), &runs, &ingestions),
            Some(("w02".to_string(), false))
        );
        // Outside every run: the latest batch that went in before, never a
        // failed one, said to be inferred.
        assert_eq!(
            batch_of(at("2026-01-09 10:00:00"), &runs, &ingestions),
            Some(("late".to_string(), true))
        );
        // Before anything: none.
        assert_eq!(
            batch_of(at("2025-12-01 00:00:00"), &runs, &ingestions),
            None
        );
    }

    #[test]
    fn one_value_is_a_line_not_a_panel() {
        let html = Chart {
            title: "RMSE",
            hint: String::new(),
            base_class: "point",
            x_labels: vec!["v2".into()],
            series: vec![Series {
                name: "svd".into(),
                color: 1,
                dashed: false,
                points: vec![Point {
                    slot: 0,
                    y: 0.88264,
                    class: "champion",
                    attrs: "data-version=\"run_v2\"".into(),
                    tip: "tip".into(),
                }],
            }],
            guide: Guide::None,
            legend: true,
            footer: String::new(),
        }
        .render();
        assert!(!html.contains("<svg"), "{html}");
        assert!(
            html.contains(
                "svd v2: <b class=\"point s1 champion\" data-version=\"run_v2\">0.8826</b>"
            ),
            "{html}"
        );
        assert!(html.ends_with("</figure>"), "{html}");
    }

    #[test]
    fn a_chart_draws_each_series_in_its_colour_and_the_threshold_level() {
        let point = |slot: usize, y: f64| Point {
            slot,
            y,
            class: "",
            attrs: String::new(),
            tip: String::new(),
        };
        let html = Chart {
            title: "t",
            hint: String::new(),
            base_class: "p",
            x_labels: vec!["a".into(), "b".into(), "c".into()],
            series: vec![
                Series {
                    name: "svd".into(),
                    color: 0,
                    dashed: false,
                    points: vec![point(0, 0.5), point(2, 2.0)],
                },
                Series {
                    name: "<ease>".into(),
                    color: 1,
                    dashed: true,
                    points: vec![point(1, 0.7), point(2, 0.9)],
                },
            ],
            guide: Guide::Level(1.0),
            legend: true,
            footer: String::new(),
        }
        .render();
        assert_eq!(
            html.matches("<polyline class=\"line s0\"").count(),
            1,
            "{html}"
        );
        assert_eq!(
            html.matches("<polyline class=\"line s1 dashed\"").count(),
            1,
            "{html}"
        );
        assert_eq!(html.matches("<circle class=\"p s0\"").count(), 2, "{html}");
        assert_eq!(html.matches("<circle class=\"p s1\"").count(), 2, "{html}");
        assert!(
            html.contains("class=\"threshold\" data-level=\"1\""),
            "{html}"
        );
        // The legend names both, escaped.
        assert!(
            html.contains("</span>svd</li>") && html.contains("&lt;ease&gt;</li>"),
            "{html}"
        );
        assert!(!html.contains("<ease>"), "{html}");
    }
}
