//! Request counters and latency histograms, written in the Prometheus text
//! exposition format by hand (it is a few lines; no client crate needed).
//!
//! Series are labelled by the matched route template (`/api/movies/{movieId}`,
//! not the id), so their number stays bounded whatever clients send;
//! unmatched paths share the label `unmatched`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::state::AppState;

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

/// (route, method, status) → latency histogram; the count doubles as the
/// request counter.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let key = (route.to_string(), method.to_string(), status);
        series.entry(key).or_default().observe(seconds);
    }

    /// The request series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let series: Vec<((String, String, u16), Histogram)> = {
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
                "cinematch_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
                escape_label(route),
                escape_label(method),
                h.count
            );
        }
        out.push_str(
            "# HELP cinematch_http_request_duration_seconds Time from request to response, by route template, method and status.\n\
             # TYPE cinematch_http_request_duration_seconds histogram\n",
        );
        for ((route, method, status), h) in &series {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                escape_label(route),
                escape_label(method)
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
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    state.metrics.observe(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
