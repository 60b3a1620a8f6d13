//! `/metrics` in the Prometheus text exposition format, written by hand (it
//! is a few lines; no client crate needed): request counters and latency
//! histograms, and the gauges of what the server serves and what the
//! database holds. The handler gathers the values ([`Serving`],
//! [`Database`]); this module only counts and renders, so it depends on no
//! other part of the server.
//!
//! Every label has a bounded set of values whatever clients send: routes
//! are the matched templates (`/api/movies/{movieId}`, not the id;
//! unmatched paths share `unmatched`), methods are the nine of RFC 9110 and
//! PATCH (anything else counts as `other`), statuses are what the server
//! answers. A client inventing paths or methods cannot grow the series, or
//! the memory behind them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency buckets, in seconds: fine below 5 ms, where
/// the recommendation endpoint should live, coarse above.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The label of a request method: the standard ones by name, any other
/// (HTTP allows any token) as `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// (route, method, status) → latency histogram; the count doubles as the
/// request counter. Routes are the router's templates, so every key part
/// comes from a bounded set.
#[derive(Default)]
pub struct RequestMetrics {
    series: Mutex<BTreeMap<(String, &'static str, u16), Histogram>>,
}

impl RequestMetrics {
    pub fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let key = (route.to_string(), method_label(method), status);
        series.entry(key).or_default().observe(seconds);
    }

    /// The request series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let series: Vec<((String, &'static str, u16), Histogram)> = {
            let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
            s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        out.push_str(
            "# HELP cinematch_http_requests_total HTTP requests answered, by route template, method and status.\n\
             # TYPE cinematch_http_requests_total counter\n",
        );
        for ((route, method, status), h) in &series {
            let _ = writeln!(
                out,
                "cinematch_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape_label(route),
                h.count
            );
        }
        out.push_str(
            "# HELP cinematch_http_request_duration_seconds Time from request to response, by route template, method and status.\n\
             # TYPE cinematch_http_request_duration_seconds histogram\n",
        );
        for ((route, method, status), h) in &series {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape_label(route),
            );
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = writeln!(
                    out,
                    "cinematch_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += h.buckets[BUCKETS.len()];
            let _ = writeln!(
                out,
                "cinematch_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "cinematch_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "cinematch_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}

/// Label values may hold any text; the format escapes `\`, `"` and newlines.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(
    State(metrics): State<Arc<RequestMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    metrics.observe(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// What this server serves, from memory.
pub struct Serving<'a> {
    /// The loaded champion and its algorithm, if any.
    pub model: Option<(&'a str, &'a str)>,
    pub catalogue_movies: usize,
    /// When the served snapshot was loaded (Unix seconds).
    pub loaded_at: Option<i64>,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Ratings received since the snapshot, kept apart until the next one.
    pub recent_ratings: usize,
    pub recent_users: usize,
    /// Database statistics computed for the dashboard and this page, which
    /// share one cache.
    pub stats_refreshes: u64,
    /// Users whose list is held in memory, and users the background
    /// precomputation has still to reach.
    pub lists_cached: usize,
    pub precompute_remaining: usize,
    /// The request pool: its size, and the connections requests hold now.
    pub db_connections: usize,
    pub db_connections_in_use: usize,
}

/// One drift test of the last check.
pub struct DriftScore<'a> {
    pub feature: &'a str,
    pub score: Option<f64>,
    pub triggered: bool,
}

/// What the database holds, from the cached statistics.
pub struct Database<'a> {
    pub buffer_ratings: i64,
    /// The last drift check: when (Unix seconds), and its tests.
    pub last_check: Option<(i64, Vec<DriftScore<'a>>)>,
}

/// The serving gauges in Prometheus text format.
pub fn render_serving(out: &mut String, s: &Serving<'_>) {
    out.push_str(
        "# HELP cinematch_model_info The model version this server answers with (value 1).\n\
         # TYPE cinematch_model_info gauge\n",
    );
    if let Some((version, algorithm)) = s.model {
        let _ = writeln!(
            out,
            "cinematch_model_info{{model_version=\"{}\",algorithm=\"{}\"}} 1",
            escape_label(version),
            escape_label(algorithm)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cinematch_model_loaded Whether a champion model is loaded.\n\
         # TYPE cinematch_model_loaded gauge\ncinematch_model_loaded {}",
        u8::from(s.model.is_some())
    );
    let _ = writeln!(
        out,
        "# HELP cinematch_catalogue_movies Movies in the served catalogue.\n\
         # TYPE cinematch_catalogue_movies gauge\ncinematch_catalogue_movies {}",
        s.catalogue_movies
    );
    if let Some(at) = s.loaded_at {
        let _ = writeln!(
            out,
            "# HELP cinematch_model_loaded_timestamp_seconds When the served snapshot was loaded.\n\
             # TYPE cinematch_model_loaded_timestamp_seconds gauge\n\
             cinematch_model_loaded_timestamp_seconds {at}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP cinematch_model_reloads_total Snapshots loaded (champion changes).\n\
         # TYPE cinematch_model_reloads_total counter\ncinematch_model_reloads_total {}\n\
         # HELP cinematch_model_reload_failures_total Champion checks or loads that failed.\n\
         # TYPE cinematch_model_reload_failures_total counter\ncinematch_model_reload_failures_total {}",
        s.reloads, s.reload_failures
    );
    let _ = writeln!(
        out,
        "# HELP cinematch_recent_ratings Ratings received since the served snapshot was loaded, held in memory until the next.\n\
         # TYPE cinematch_recent_ratings gauge\ncinematch_recent_ratings {}\n\
         # HELP cinematch_recent_rating_users Users with ratings received since the served snapshot.\n\
         # TYPE cinematch_recent_rating_users gauge\ncinematch_recent_rating_users {}\n\
         # HELP cinematch_stats_refreshes_total Times the dashboard's database statistics were computed (they are cached).\n\
         # TYPE cinematch_stats_refreshes_total counter\ncinematch_stats_refreshes_total {}",
        s.recent_ratings, s.recent_users, s.stats_refreshes
    );
    let _ = writeln!(
        out,
        "# HELP cinematch_lists_cached Users whose recommendation list is held in memory for the served model.\n\
         # TYPE cinematch_lists_cached gauge\ncinematch_lists_cached {}\n\
         # HELP cinematch_lists_precompute_remaining Users the background precomputation of lists has still to reach.\n\
         # TYPE cinematch_lists_precompute_remaining gauge\ncinematch_lists_precompute_remaining {}",
        s.lists_cached, s.precompute_remaining
    );
    let _ = writeln!(
        out,
        "# HELP cinematch_db_connections Connections the request pool may hold (--pool for reads, plus 2 only writes take; the probes have their own).\n\
         # TYPE cinematch_db_connections gauge\ncinematch_db_connections {}\n\
         # HELP cinematch_db_connections_in_use Request-pool connections held by requests now.\n\
         # TYPE cinematch_db_connections_in_use gauge\ncinematch_db_connections_in_use {}",
        s.db_connections, s.db_connections_in_use
    );
}

/// The database gauges: whether it answered this scrape, and the cached
/// statistics when they could be had in time.
pub fn render_database(out: &mut String, up: bool, db: Option<&Database<'_>>) {
    let _ = writeln!(
        out,
        "# HELP cinematch_database_up Whether the database answered this scrape.\n\
         # TYPE cinematch_database_up gauge\ncinematch_database_up {}",
        u8::from(up)
    );
    let Some(db) = db else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP cinematch_buffer_ratings Ratings waiting in ratings_buffer.\n\
         # TYPE cinematch_buffer_ratings gauge\ncinematch_buffer_ratings {}",
        db.buffer_ratings
    );
    if let Some((at, tests)) = &db.last_check {
        let _ = writeln!(
            out,
            "# HELP cinematch_drift_last_check_timestamp_seconds When the last drift check ran.\n\
             # TYPE cinematch_drift_last_check_timestamp_seconds gauge\n\
             cinematch_drift_last_check_timestamp_seconds {at}\n\
             # HELP cinematch_drift_last_check_tests Tests in the last drift check.\n\
             # TYPE cinematch_drift_last_check_tests gauge\ncinematch_drift_last_check_tests {}\n\
             # HELP cinematch_drift_last_check_alerts Tests of the last drift check that triggered an alert.\n\
             # TYPE cinematch_drift_last_check_alerts gauge\ncinematch_drift_last_check_alerts {}",
            tests.len(),
            tests.iter().filter(|t| t.triggered).count()
        );
        out.push_str(
            "# HELP cinematch_drift_score Score of each test in the last drift check.\n\
             # TYPE cinematch_drift_score gauge\n",
        );
        for t in tests {
            if let Some(score) = t.score {
                let _ = writeln!(
                    out,
                    "cinematch_drift_score{{feature=\"{}\",triggered=\"{}\"}} {score}",
                    escape_label(t.feature),
                    t.triggered,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let m = RequestMetrics::default();
        for i in 0..1000 {
            let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            m.observe("unmatched", &method, 405, 0.001);
        }
        m.observe("unmatched", &Method::GET, 404, 0.001);
        let mut out = String::new();
        m.render(&mut out);
        let totals: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("cinematch_http_requests_total{"))
            .collect();
        assert_eq!(
            totals,
            [
                "cinematch_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
                "cinematch_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 1000",
            ]
        );
    }
}
