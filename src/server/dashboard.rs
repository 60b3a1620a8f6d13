//! The dashboard at `/`: one self-contained HTML page a person opens every
//! morning. The server draws the charts as inline SVG, so the page needs no
//! network beyond this server and no chart library; the only script is the
//! explorer's few lines calling the JSON API. The stylesheet, the
//! explorer's markup and its script live beside this file in `dashboard/`
//! (edited as CSS, HTML and JavaScript) and are inlined into the page.
//!
//! Every chart point carries `class="point"` (drift: `drift-point`) and a
//! `data-version` (drift: `data-feature`, `data-alert`) so tests and people
//! with devtools can find them.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::errors::ApiError;
use super::state::AppState;
use super::stats::Statistics as Data;
use crate::format;
use crate::registry::{Objective, RunSummary};
use crate::store::DriftAlert;
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

/// One plotted value.
struct Point {
    y: f64,
    /// Extra classes after the base class.
    class: &'static str,
    /// Pre-escaped `data-*` attributes.
    attrs: String,
    tip: String,
}

/// A small line chart: `points[i]` sits at x-slot `i` (one per version or
/// check, evenly spaced, so versions trained minutes apart stay readable),
/// with an optional dashed `threshold` line through the same slots.
fn chart(
    title: &str,
    base_class: &str,
    x_labels: &[String],
    points: &[Point],
    threshold: Option<&[Option<f64>]>,
    lower_is_better: Option<bool>,
) -> String {
    const W: f64 = 440.0;
    const H: f64 = 210.0;
    const ML: f64 = 54.0;
    const MR: f64 = 16.0;
    const MT: f64 = 16.0;
    const MB: f64 = 36.0;
    let (pw, ph) = (W - ML - MR, H - MT - MB);
    let n = points.len();
    let mut svg = String::new();
    let hint = match lower_is_better {
        Some(true) => " <span class=\"hint\">lower is better</span>",
        Some(false) => " <span class=\"hint\">higher is better</span>",
        None => "",
    };
    let _ = write!(
        svg,
        "<figure class=\"chart\"><figcaption>{}{hint}</figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    let values: Vec<f64> = points
        .iter()
        .map(|p| p.y)
        .chain(threshold.into_iter().flatten().flatten().copied())
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        svg.push_str("<text x=\"50%\" y=\"50%\" text-anchor=\"middle\" class=\"empty\">no data yet</text></svg></figure>");
        return svg;
    }
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad = if max - min < 1e-12 {
        (max.abs() * 0.05).max(0.01)
    } else {
        (max - min) * 0.12
    };
    let mut lo = min - pad;
    let hi = max + pad;
    if min >= 0.0 && lo < 0.0 {
        lo = 0.0;
    }
    let x = |i: usize| {
        if n <= 1 {
            ML + pw / 2.0
        } else {
            ML + pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| MT + ph * (1.0 - (v - lo) / (hi - lo));
    // Grid and y labels.
    let span = hi - lo;
    let decimals = if span >= 10.0 {
        0
    } else if span >= 1.0 {
        1
    } else if span >= 0.1 {
        2
    } else if span >= 0.01 {
        3
    } else {
        4
    };
    for g in 0..=4 {
        let v = lo + span * g as f64 / 4.0;
        let gy = y(v);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{ML}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.decimals$}</text>",
            W - MR,
            ML - 6.0,
            gy + 4.0
        );
    }
    // X labels, thinned to about eight.
    let step = n.div_ceil(8).max(1);
    for (i, label) in x_labels.iter().enumerate() {
        if i % step == 0 || i + 1 == n {
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(i),
                H - MB + 18.0,
                esc(label)
            );
        }
    }
    if let Some(th) = threshold {
        let pts: Vec<String> = th
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| format!("{:.1},{:.1}", x(i), y(t))))
            .collect();
        if pts.len() == 1 {
            let ty = y(th.iter().flatten().next().copied().unwrap_or(lo));
            let _ = write!(
                svg,
                "<line class=\"threshold\" x1=\"{ML}\" x2=\"{}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\"/>",
                W - MR
            );
        } else if !pts.is_empty() {
            let _ = write!(
                svg,
                "<polyline class=\"threshold\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
    }
    if n > 1 {
        let line: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"line\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle class=\"{base_class}{}{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" {}><title>{}</title></circle>",
            if p.class.is_empty() { "" } else { " " },
            p.class,
            x(i),
            y(p.y),
            p.attrs,
            esc(&p.tip)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// One chart per metric, the deployment's objective first: NDCG@10 and
/// recall@10 judge the lists users see, RMSE, MAE and the spec's rated
/// precision@10 the predicted ratings (ranking models have none).
fn model_charts(runs: &[RunSummary], objective: Objective) -> String {
    let labels: Vec<String> = runs
        .iter()
        .map(|r| short_version(&r.run.model_version))
        .collect();
    type Metric = (
        &'static str,
        &'static str,
        fn(&RunSummary) -> Option<f64>,
        bool,
    );
    let mut metrics: Vec<Metric> = vec![
        ("NDCG@10", "ndcg_at_10", |r| r.report.ndcg_at_10, false),
        (
            "Recall@10",
            "recall_at_10",
            |r| r.report.recall_at_10,
            false,
        ),
        ("RMSE", "rmse", |r| r.run.rmse, true),
        ("MAE", "mae", |r| r.run.mae, true),
        (
            "Precision@10",
            "precision_at_10",
            |r| r.run.precision_at_10,
            false,
        ),
    ];
    let first = match objective {
        Objective::Ndcg10 => "ndcg_at_10",
        Objective::Recall10 => "recall_at_10",
        Objective::Rmse => "rmse",
    };
    metrics.sort_by_key(|m| m.1 != first);
    let mut out = String::new();
    for (title, key, get, lower) in metrics {
        // A version without this metric gets no point, and no slot, so the
        // line is not broken by gaps.
        let (labels, points): (Vec<String>, Vec<Point>) = runs
            .iter()
            .zip(&labels)
            .filter_map(|(r, label)| {
                get(r).filter(|v| v.is_finite()).map(|v| {
                    (
                        label.clone(),
                        Point {
                            y: v,
                            class: if r.is_champion { "champion" } else { "" },
                            attrs: format!(
                                "data-version=\"{}\" data-metric=\"{key}\" data-value=\"{v}\"",
                                esc(&r.run.model_version)
                            ),
                            tip: format!(
                                "{} · {} · {title} {v:.4}{}",
                                r.run.model_version,
                                r.run.training_date.format("%Y-%m-%d %H:%M"),
                                if r.is_champion { " · champion" } else { "" }
                            ),
                        },
                    )
                })
            })
            .unzip();
        out.push_str(&chart(title, "point", &labels, &points, None, Some(lower)));
    }
    out
}

fn drift_charts(alerts: &[DriftAlert]) -> String {
    let mut by_feature: BTreeMap<&str, Vec<&DriftAlert>> = BTreeMap::new();
    for a in alerts.iter().rev() {
        by_feature
            .entry(a.feature_name.as_str())
            .or_default()
            .push(a);
    }
    let mut out = String::new();
    for (feature, checks) in by_feature {
        let checks: Vec<&DriftAlert> = checks
            .into_iter()
            .filter(|a| a.drift_score.is_some())
            .collect();
        let labels: Vec<String> = checks
            .iter()
            .map(|a| a.alert_date.format("%m-%d").to_string())
            .collect();
        let points: Vec<Point> = checks
            .iter()
            .map(|a| {
                let score = a.drift_score.unwrap_or(0.0);
                Point {
                    y: score,
                    class: if a.alert_triggered { "alert" } else { "" },
                    attrs: format!(
                        "data-feature=\"{}\" data-alert=\"{}\" data-date=\"{}\"",
                        esc(feature),
                        a.alert_triggered,
                        a.alert_date.format("%Y-%m-%dT%H:%M:%S")
                    ),
                    tip: format!(
                        "{} · score {score:.4} · threshold {}{}{}",
                        a.alert_date.format("%Y-%m-%d %H:%M"),
                        fmt_num(a.threshold, 4),
                        if a.alert_triggered { " · ALERT" } else { "" },
                        a.notes
                            .as_deref()
                            .map(|n| format!(" · {n}"))
                            .unwrap_or_default()
                    ),
                }
            })
            .collect();
        let thresholds: Vec<Option<f64>> = checks.iter().map(|a| a.threshold).collect();
        out.push_str(&chart(
            feature,
            "drift-point",
            &labels,
            &points,
            Some(&thresholds),
            None,
        ));
    }
    out
}

fn render(d: &Data, serving: Option<&str>, backend: &str, notes_private: bool) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>CineMatch dashboard</title><style>{CSS}</style></head><body>\
         <header><h1>CineMatch</h1><span class=\"sub\">{} · generated {now}</span>\
         <nav><a href=\"/api/status\">status</a><a href=\"/api/openapi.json\">API</a><a href=\"/metrics\">metrics</a></nav></header><main>",
        esc(backend)
    );

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
                "<li><b>{}</b> {} &gt; {} <span class=\"note\">{}</span></li>",
                esc(&a.feature_name),
                fmt_num(a.drift_score, 4),
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
            let factors = r
                .notes
                .as_ref()
                .and_then(|n| n.params.as_ref())
                .and_then(|p| serde_json::to_value(p).ok())
                .and_then(|p| p.get("factors").and_then(|f| f.as_u64()));
            let _ = write!(
                h,
                "<p class=\"big mono\">{}</p><p class=\"note\">{}{} · trained {} on {} ratings · chosen on {}</p>\
                 <div class=\"stats\"><div><span>NDCG@10</span><b>{}</b></div><div><span>Recall@10</span><b>{}</b></div>\
                 <div><span>RMSE</span><b>{}</b></div><div><span>Precision@10</span><b>{}</b></div></div>",
                esc(&r.run.model_version),
                esc(&algo),
                factors.map(|f| format!(", {f} factors")).unwrap_or_default(),
                r.run.training_date.format("%Y-%m-%d %H:%M"),
                r.run.data_size.map(format::thousands).unwrap_or_else(|| "?".into()),
                d.objective.label(),
                fmt_num(r.report.ndcg_at_10, 4),
                fmt_num(r.report.recall_at_10, 4),
                fmt_num(r.run.rmse, 4),
                fmt_num(r.run.precision_at_10, 4),
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
            "<p class=\"big\">None yet</p><p class=\"note\">Train one with <code>cinematch train</code>.</p>",
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
            "<div class=\"charts\">{}</div>",
            model_charts(&d.runs, d.objective)
        );
        let _ = write!(
            h,
            "<table><thead><tr><th>Version</th><th>Trained</th><th>Algorithm</th><th class=\"num\">NDCG@10</th>\
             <th class=\"num\">Δ {}</th><th class=\"num\">RMSE</th><th class=\"num\">MAE</th><th class=\"num\">P@10</th><th class=\"num\">Ratings</th></tr></thead><tbody>",
            d.objective.label()
        );
        for r in d.runs.iter().rev().take(30) {
            let algo = r.algorithm().unwrap_or_default();
            let delta_class = match r.change {
                Some(c) if d.objective.better(c, 0.0) => "ok-text",
                Some(c) if d.objective.better(0.0, c) => "warn-text",
                _ => "",
            };
            let _ = write!(
                h,
                "<tr{}><td class=\"mono\">{}{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num {delta_class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                if r.is_champion { " class=\"is-champion\"" } else { "" },
                esc(&r.run.model_version),
                if r.is_champion { " <span class=\"badge\">champion</span>" } else { "" },
                r.run.training_date.format("%Y-%m-%d %H:%M"),
                esc(&algo),
                fmt_num(r.report.ndcg_at_10, 4),
                r.change.map_or_else(|| "–".into(), |d| format!("{d:+.4}")),
                fmt_num(r.run.rmse, 4),
                fmt_num(r.run.mae, 4),
                fmt_num(r.run.precision_at_10, 4),
                r.run.data_size.map(format::thousands).unwrap_or_default()
            );
        }
        h.push_str("</tbody></table>");
        if d.runs.len() > 30 {
            let _ = write!(
                h,
                "<p class=\"note\">The 30 newest of {} versions; /api/models lists all.</p>",
                d.runs.len()
            );
        }
    }
    h.push_str("</section>");

    // Drift.
    let checks = {
        let mut dates: Vec<_> = d.alerts.iter().map(|a| a.alert_date).collect();
        dates.dedup();
        dates.len()
    };
    let _ = write!(
        h,
        "<section class=\"card\" id=\"drift\"><h2>Drift <span class=\"count\">{checks} checks</span></h2>\
         <p class=\"note\">Each test's score per check against its threshold (dashed); \
         <span class=\"alert-dot\"></span> triggered an alert.</p>"
    );
    if d.alerts.is_empty() {
        h.push_str("<p class=\"note\">No drift check has been recorded yet.</p>");
    } else {
        let _ = write!(h, "<div class=\"charts\">{}</div>", drift_charts(&d.alerts));
    }
    h.push_str("</section>");

    // Ingestion and storage side by side.
    h.push_str(
        "<div class=\"row\"><section class=\"card\" id=\"ingestions\"><h2>Ingestion history</h2>",
    );
    if d.ingestions.is_empty() {
        h.push_str("<p class=\"note\">No batch has been ingested yet.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>Batch</th><th>Date</th><th class=\"num\">Ratings</th><th>Status</th><th>Notes</th></tr></thead><tbody>",
        );
        for i in d.ingestions.iter().take(50) {
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
        h.push_str("</tbody></table>");
        if notes_private {
            h.push_str(
                "<p class=\"note\">Notes (file names, digests, errors) are private on this \
                 server: /api/ingestions with the read token has them.</p>",
            );
        }
        if d.ingestions.len() > 50 {
            let _ = write!(
                h,
                "<p class=\"note\">The 50 newest of {}; /api/ingestions lists all.</p>",
                d.ingestions.len()
            );
        }
    }
    h.push_str("</section><section class=\"card\" id=\"tables\"><h2>Tables</h2>");
    let rows: BTreeMap<&str, i64> = d
        .counts
        .iter()
        .map(|c| (c.table.as_str(), c.rows))
        .collect();
    let largest = d.sizes.iter().map(|s| s.bytes).max().unwrap_or(0).max(1);
    h.push_str(
        "<table><thead><tr><th>Table</th><th class=\"num\">Rows</th><th class=\"num\">Size</th><th></th></tr></thead><tbody>",
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
    h.push_str("</tbody></table></section></div>");

    h.push_str(EXPLORER);
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
