//! The dashboard's line charts, drawn by the server as inline SVG: a few
//! series over shared x slots (one per model version, drift check or
//! week), an optional dashed guide (a threshold) and an HTML legend.
//!
//! Every point is a `<circle>` with the chart's base class, its series'
//! class (`s0`, `s1`, ... a colour each) and its own classes, its `data-*`
//! attributes and a `<title>` tooltip, so tests and people with devtools
//! can find it. The SVG scales with its box (`viewBox`), so a chart fits a
//! phone's width.

use std::fmt::Write;

use super::esc;

/// One plotted value.
pub(super) struct Point {
    /// Its x slot, in `Chart::x_labels`.
    pub slot: usize,
    pub y: f64,
    /// Extra classes after the base and the series class.
    pub class: &'static str,
    /// Pre-escaped `data-*` attributes.
    pub attrs: String,
    pub tip: String,
}

/// Points joined by a line, in one colour.
pub(super) struct Series {
    pub name: String,
    /// The colour class, `s0`..`s5`.
    pub color: usize,
    /// Dashed line (a baseline rather than a measured series).
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// The dashed red line of a threshold.
pub(super) enum Guide {
    None,
    /// One level across the chart (score / threshold = 1).
    Level(f64),
    /// A level per x slot (thresholds that changed over time).
    PerSlot(Vec<Option<f64>>),
}

pub(super) struct Chart<'a> {
    pub title: &'a str,
    /// Pre-escaped HTML after the title (what the metric means, which way
    /// is better).
    pub hint: String,
    pub base_class: &'a str,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
    pub guide: Guide,
    /// A legend naming the series (off for a single unnamed series).
    pub legend: bool,
    /// Extra HTML under the legend (the marks' meaning).
    pub footer: String,
}

pub(super) const COLORS: usize = 6;

const W: f64 = 440.0;
const H: f64 = 210.0;
const ML: f64 = 50.0;
const MR: f64 = 14.0;
const MT: f64 = 14.0;
const MB: f64 = 34.0;

impl Chart<'_> {
    pub fn render(&self) -> String {
        let (pw, ph) = (W - ML - MR, H - MT - MB);
        let n = self.x_labels.len();
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<figure class=\"chart\"><figcaption>{}{}</figcaption>",
            esc(self.title),
            if self.hint.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"hint\">{}</span>", self.hint)
            },
        );
        // One value is a number, not a chart: said in a line, so it does
        // not fill a whole panel.
        let total: usize = self.series.iter().map(|s| s.points.len()).sum();
        if total == 1 && matches!(self.guide, Guide::None) {
            if let Some((series, p)) = self
                .series
                .iter()
                .find_map(|s| s.points.first().map(|p| (s, p)))
            {
                let label = self.x_labels.get(p.slot).map(String::as_str).unwrap_or("");
                let _ = write!(
                    svg,
                    "<p class=\"single\" title=\"{}\"><span class=\"swatch s{}\"></span>{} {}: <b class=\"{} s{}{}{}\" {}>{}</b> \
                     <span class=\"note\">one version has it so far</span></p></figure>",
                    esc(&p.tip),
                    series.color % COLORS,
                    esc(&series.name),
                    esc(label),
                    self.base_class,
                    series.color % COLORS,
                    if p.class.is_empty() { "" } else { " " },
                    p.class,
                    p.attrs,
                    format_value(p.y)
                );
                return svg;
            }
        }
        let _ = write!(
            svg,
            "<svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-label=\"{}\">",
            esc(self.title)
        );
        let guides: Vec<f64> = match &self.guide {
            Guide::None => vec![],
            Guide::Level(v) => vec![*v],
            Guide::PerSlot(v) => v.iter().flatten().copied().collect(),
        };
        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.y))
            .chain(guides.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() || n == 0 {
            svg.push_str(
                "<text x=\"50%\" y=\"50%\" text-anchor=\"middle\" class=\"empty\">no data yet</text></svg></figure>",
            );
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
        // X labels, thinned to about six, each cut to what fits.
        let step = n.div_ceil(6).max(1);
        for (i, label) in self.x_labels.iter().enumerate() {
            if i % step == 0 || i + 1 == n {
                let short: String = if label.chars().count() > 12 {
                    let tail: String = label
                        .chars()
                        .rev()
                        .take(11)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    format!("…{tail}")
                } else {
                    label.clone()
                };
                let anchor = if n > 1 && i == 0 {
                    "start"
                } else if n > 1 && i + 1 == n {
                    "end"
                } else {
                    "middle"
                };
                let _ = write!(
                    svg,
                    "<text class=\"tick xtick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\"><title>{}</title>{}</text>",
                    x(i),
                    H - MB + 18.0,
                    esc(label),
                    esc(&short)
                );
            }
        }
        match &self.guide {
            Guide::None => {}
            Guide::Level(v) => {
                let gy = y(*v);
                let _ = write!(
                    svg,
                    "<line class=\"threshold\" data-level=\"{v}\" x1=\"{ML}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\"/>",
                    W - MR
                );
            }
            Guide::PerSlot(th) => {
                let pts: Vec<String> = th
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| t.map(|t| format!("{:.1},{:.1}", x(i), y(t))))
                    .collect();
                if pts.len() == 1 {
                    let gy = y(guides[0]);
                    let _ = write!(
                        svg,
                        "<line class=\"threshold\" x1=\"{ML}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\"/>",
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
        }
        for s in &self.series {
            if s.points.len() > 1 {
                let line: Vec<String> = s
                    .points
                    .iter()
                    .map(|p| format!("{:.1},{:.1}", x(p.slot), y(p.y)))
                    .collect();
                let _ = write!(
                    svg,
                    "<polyline class=\"line s{}{}\" data-series=\"{}\" points=\"{}\"/>",
                    s.color % COLORS,
                    if s.dashed { " dashed" } else { "" },
                    esc(&s.name),
                    line.join(" ")
                );
            }
        }
        for s in &self.series {
            for p in &s.points {
                let _ = write!(
                    svg,
                    "<circle class=\"{} s{}{}{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" data-series=\"{}\" {}><title>{}</title></circle>",
                    self.base_class,
                    s.color % COLORS,
                    if p.class.is_empty() { "" } else { " " },
                    p.class,
                    x(p.slot),
                    y(p.y),
                    esc(&s.name),
                    p.attrs,
                    esc(&p.tip)
                );
            }
        }
        svg.push_str("</svg>");
        if self.legend {
            svg.push_str("<ul class=\"legend\">");
            for s in &self.series {
                let _ = write!(
                    svg,
                    "<li><span class=\"swatch s{}{}\"></span>{}</li>",
                    s.color % COLORS,
                    if s.dashed { " dashed" } else { "" },
                    esc(&s.name)
                );
            }
            svg.push_str("</ul>");
        }
        svg.push_str(&self.footer);
        svg.push_str("</figure>");
        svg
    }
}

/// A single value, four decimals (or whole when large).
fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}
