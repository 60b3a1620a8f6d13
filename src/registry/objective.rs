//! What "better" means for a deployment: the metric the champion gate,
//! `retrain`, the demo, `models list` and the dashboard compare models on.
//!
//! RMSE measures how well a model predicts the stars of movies people did
//! rate; NDCG@10 measures the list a person is shown out of the whole
//! catalogue. They disagree: RMSE-optimal models put obscure movies with a
//! few 5-star ratings on top, and lose to a most-popular list on NDCG. The
//! default is therefore `ndcg@10`; `rmse` stays available for deployments
//! that show predicted ratings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::eval::EvalReport;
use crate::{Error, Result};

/// The metric models are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Objective {
    /// Full-catalogue NDCG@10 (higher is better).
    #[default]
    #[serde(rename = "ndcg@10")]
    Ndcg10,
    /// Full-catalogue recall@10 (higher is better).
    #[serde(rename = "recall@10")]
    Recall10,
    /// Test RMSE (lower is better); ranking models have none and cannot
    /// win under it.
    #[serde(rename = "rmse")]
    Rmse,
}

/// How a challenger compares with the champion under an [`Objective`].
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecision {
    pub promote: bool,
    /// One line for logs, notes and the CLI, e.g. `NDCG@10 0.3412 vs
    /// champion 0.3350`.
    pub reason: String,
}

impl Objective {
    pub const ALL: [Objective; 3] = [Objective::Ndcg10, Objective::Recall10, Objective::Rmse];

    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Ndcg10 => "ndcg@10",
            Objective::Recall10 => "recall@10",
            Objective::Rmse => "rmse",
        }
    }

    /// The label charts and tables use.
    pub fn label(self) -> &'static str {
        match self {
            Objective::Ndcg10 => "NDCG@10",
            Objective::Recall10 => "recall@10",
            Objective::Rmse => "RMSE",
        }
    }

    pub fn higher_is_better(self) -> bool {
        !matches!(self, Objective::Rmse)
    }

    /// The objective's value in a report; `None` when it was not measured
    /// (no test split, or a ranking model under `rmse`).
    pub fn value(self, r: &EvalReport) -> Option<f64> {
        match self {
            Objective::Ndcg10 => r.ndcg_at_10,
            Objective::Recall10 => r.recall_at_10,
            Objective::Rmse => r.rmse,
        }
        .filter(|v| v.is_finite())
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() {
            a > b
        } else {
            a < b
        }
    }

    /// The champion gate: promote a challenger that is not worse than the
    /// champion by more than the relative `tolerance` (0.005 = 0.5%).
    ///
    /// A challenger without the metric is never promoted over a champion
    /// that has it. When neither has it (a deployment trained on every
    /// rating, with no test split), the challenger is promoted: it is the
    /// same configuration trained on more data, and there is no evidence
    /// against it.
    pub fn gate(
        self,
        challenger: Option<f64>,
        champion: Option<f64>,
        tolerance: f64,
    ) -> GateDecision {
        let l = self.label();
        let f = |x: f64| format!("{x:.4}");
        match (challenger, champion) {
            (Some(c), Some(old)) => {
                let bound = if self.higher_is_better() {
                    old * (1.0 - tolerance)
                } else {
                    old * (1.0 + tolerance)
                };
                let ok = if self.higher_is_better() {
                    c >= bound
                } else {
                    c <= bound
                };
                let pct = tolerance * 100.0;
                GateDecision {
                    promote: ok,
                    reason: if ok {
                        format!("{l} {} vs champion {} (tolerance {pct:.1}%)", f(c), f(old))
                    } else {
                        format!(
                            "{l} {} is worse than the champion's {} by more than {pct:.1}%",
                            f(c),
                            f(old)
                        )
                    },
                }
            }
            (Some(c), None) => GateDecision {
                promote: true,
                reason: format!("{l} {}; the champion has no {l} to compare with", f(c)),
            },
            (None, Some(old)) => GateDecision {
                promote: false,
                reason: format!("no {l} measured, the champion has {}", f(old)),
            },
            (None, None) => GateDecision {
                promote: true,
                reason: format!("no {l} measured (no test split): the newer training wins"),
            },
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Objective {
    type Err = Error;

    fn from_str(s: &str) -> Result<Objective> {
        let t = s.trim().to_ascii_lowercase();
        Objective::ALL
            .into_iter()
            .find(|o| o.as_str() == t || (t == "ndcg" && *o == Objective::Ndcg10))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown objective {s:?}; expected one of: {}",
                    Objective::ALL.map(Objective::as_str).join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in Objective::ALL {
            assert_eq!(o.as_str().parse::<Objective>().unwrap(), o);
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
        }
        assert_eq!(" NDCG@10 ".parse::<Objective>().unwrap(), Objective::Ndcg10);
        assert!("mse"
            .parse::<Objective>()
            .unwrap_err()
            .to_string()
            .contains("ndcg@10, recall@10, rmse"));
    }

    #[test]
    fn gate_applies_the_tolerance_in_the_right_direction() {
        let n = Objective::Ndcg10;
        // 1% tolerance: the bar is 0.3 * 0.99 = 0.297.
        assert!(n.gate(Some(0.2971), Some(0.3), 0.01).promote);
        assert!(!n.gate(Some(0.2969), Some(0.3), 0.01).promote);
        assert!(n.gate(Some(0.35), Some(0.3), 0.0).promote);
        let r = Objective::Rmse;
        // RMSE: the bar is 0.9 * 1.01 = 0.909.
        assert!(r.gate(Some(0.9089), Some(0.9), 0.01).promote);
        assert!(!r.gate(Some(0.9091), Some(0.9), 0.01).promote);
        assert!(r.gate(Some(0.85), Some(0.9), 0.0).promote);
    }

    #[test]
    fn gate_handles_missing_metrics() {
        let n = Objective::Ndcg10;
        assert!(n.gate(Some(0.2), None, 0.0).promote);
        let d = n.gate(None, Some(0.2), 0.0);
        assert!(
            !d.promote && d.reason.contains("no NDCG@10"),
            "{}",
            d.reason
        );
        let d = Objective::Rmse.gate(None, None, 0.0);
        assert!(
            d.promote && d.reason.contains("no test split"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn value_reads_the_right_field() {
        let r = EvalReport {
            rmse: Some(0.9),
            ndcg_at_10: Some(0.3),
            recall_at_10: Some(0.2),
            ..EvalReport::default()
        };
        assert_eq!(Objective::Rmse.value(&r), Some(0.9));
        assert_eq!(Objective::Ndcg10.value(&r), Some(0.3));
        assert_eq!(Objective::Recall10.value(&r), Some(0.2));
        assert_eq!(Objective::Rmse.value(&EvalReport::default()), None);
    }
}
