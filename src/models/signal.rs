//! How explicit star ratings become the implicit signal ranking models learn.
//!
//! Ranking models (`ials`, `ease`) do not predict stars: they learn which
//! movies a person chose to watch. A MovieLens rating says both "watched"
//! and "liked this much", so turning it into that signal is a modelling
//! choice with a large effect on the lists, and it is recorded with every
//! run as a hyperparameter:
//!
//! * `all`: every rating counts 1. A 1-star rating still says "this is the
//!   kind of movie I watch", which is most of what predicts the next watch.
//! * `weighted`: a rating counts its stars (0.5 to 5), so a 5-star rating
//!   weighs five times a 1-star one. On ml-latest-small this is the best of
//!   the three for both ranking models (chosen on a validation split).
//! * `>=T` (e.g. `>=3.5`): only ratings of at least `T` stars count, each 1;
//!   the others are left out as if unwatched.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// The explicit → implicit transformation; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    All,
    Weighted,
    AtLeast(f32),
}

impl Signal {
    /// The weight of a rating of `stars`, or `None` when it does not count.
    #[inline]
    pub fn weight(self, stars: f32) -> Option<f32> {
        match self {
            Signal::All => Some(1.0),
            Signal::Weighted => Some(stars),
            Signal::AtLeast(t) => (stars >= t).then_some(1.0),
        }
    }

    pub(crate) fn validate(self, model: &str) -> Result<()> {
        match self {
            Signal::AtLeast(t) if !(0.5..=5.0).contains(&t) => Err(Error::InvalidArgument(
                format!("{model} signal threshold must be between 0.5 and 5.0, got {t}"),
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::All => f.write_str("all"),
            Signal::Weighted => f.write_str("weighted"),
            // Debug keeps the decimal point: ">=4.0", not ">=4".
            Signal::AtLeast(t) => write!(f, ">={t:?}"),
        }
    }
}

impl FromStr for Signal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Signal> {
        let t = s.trim();
        let bad = || {
            Error::InvalidArgument(format!(
                "unknown signal {s:?}; expected all, weighted or >=T with T a rating such as 3.5"
            ))
        };
        match t.to_ascii_lowercase().as_str() {
            "all" => Ok(Signal::All),
            "weighted" => Ok(Signal::Weighted),
            other => {
                let v = other.strip_prefix(">=").ok_or_else(bad)?;
                let x: f32 = v.trim().parse().map_err(|_| bad())?;
                if !x.is_finite() {
                    return Err(bad());
                }
                Ok(Signal::AtLeast(x))
            }
        }
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Signal, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_documented_rules() {
        assert_eq!(Signal::All.weight(0.5), Some(1.0));
        assert_eq!(Signal::Weighted.weight(2.5), Some(2.5));
        assert_eq!(Signal::AtLeast(3.5).weight(3.5), Some(1.0));
        assert_eq!(Signal::AtLeast(3.5).weight(3.0), None);
    }

    #[test]
    fn parses_and_prints_round_trip() {
        for s in ["all", "weighted", ">=3.5", ">=4.0"] {
            let sig: Signal = s.parse().unwrap();
            assert_eq!(sig.to_string(), s);
            let json = serde_json::to_string(&sig).unwrap();
            assert_eq!(serde_json::from_str::<Signal>(&json).unwrap(), sig);
        }
        assert_eq!(" ALL ".parse::<Signal>().unwrap(), Signal::All);
        assert_eq!(">=4".parse::<Signal>().unwrap().to_string(), ">=4.0");
        for bad in ["", "some", ">=", ">=x", ">=NaN", "<=3"] {
            let e = bad.parse::<Signal>().unwrap_err().to_string();
            assert!(e.contains("expected all, weighted or >=T"), "{bad}: {e}");
        }
        assert!(Signal::AtLeast(6.0).validate("ease").is_err());
    }
}
