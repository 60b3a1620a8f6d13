//! When a replayed deployment retrains.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::pipeline::cycle::RetrainWhen;
use crate::{Error, Result};

/// A retraining policy the backtest replays: `never` (ingest, check drift,
/// fold new ratings in; the buffer is never merged), `drift` (the spec's
/// pipeline: retrain when a drift alert that triggers retraining fires),
/// `always` (every week) or `every:N` (every N-th week).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Never,
    Drift,
    Always,
    Every(u32),
}

impl Policy {
    /// What the cycle of week `week` (1-based) does.
    pub fn retrain_when(self, week: u32) -> RetrainWhen {
        match self {
            Policy::Never => RetrainWhen::Never,
            Policy::Drift => RetrainWhen::Drift,
            Policy::Always => RetrainWhen::Always,
            Policy::Every(n) if week.is_multiple_of(n) => RetrainWhen::Always,
            Policy::Every(_) => RetrainWhen::Never,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Never => f.write_str("never"),
            Policy::Drift => f.write_str("drift"),
            Policy::Always => f.write_str("always"),
            Policy::Every(n) => write!(f, "every:{n}"),
        }
    }
}

impl FromStr for Policy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Policy> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::InvalidArgument(format!(
                "unknown retraining policy {s:?}; expected never, drift, always or every:N \
                 (N weeks, at least 1)"
            ))
        };
        match t.as_str() {
            "never" => Ok(Policy::Never),
            "drift" => Ok(Policy::Drift),
            "always" => Ok(Policy::Always),
            other => {
                let n: u32 = other
                    .strip_prefix("every:")
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Policy::Every(n))
            }
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_print_and_schedule() {
        for (s, p) in [
            ("never", Policy::Never),
            ("drift", Policy::Drift),
            (" ALWAYS ", Policy::Always),
            ("every:3", Policy::Every(3)),
        ] {
            let got: Policy = s.parse().unwrap();
            assert_eq!(got, p);
            assert_eq!(got.to_string().parse::<Policy>().unwrap(), p);
        }
        for bad in ["", "sometimes", "every:", "every:0", "every:x", "every:-1"] {
            assert!(bad.parse::<Policy>().is_err(), "{bad}");
        }
        let every3: Vec<RetrainWhen> = (1..=6).map(|w| Policy::Every(3).retrain_when(w)).collect();
        use RetrainWhen::{Always, Never};
        assert_eq!(every3, [Never, Never, Always, Never, Never, Always]);
        assert_eq!(Policy::Drift.retrain_when(1), RetrainWhen::Drift);
    }
}
