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
//!
//! **Recency** ([`HalfLife`]) is the second half of the transformation: a
//! rating's weight can fade with its age, halving every half-life, so that
//! what people chose lately counts more than what they chose years ago.
//! Ages are measured from the model's reference time, the newest rating it
//! was trained on; a rating newer than that (a fold-in) is not boosted, it
//! simply weighs as much as the newest training rating. On a random split,
//! where tomorrow's test rating is as likely to be from 1996 as from
//! yesterday, any fading costs NDCG; on the time-ordered future a
//! deployment serves it wins clearly (README, the backtest). That is why
//! the default is `none` and `cinematch tune --validation time` chooses it.

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

/// How fast a rating's weight fades with age: it halves every `days`
/// (`None`: never). Written `none`, `365d`, `8w` or `2y` (a year is 365
/// days), as the CLI and the JSON notes spell it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HalfLife(Option<f64>);

impl HalfLife {
    pub const NONE: HalfLife = HalfLife(None);

    /// A half-life of `days` days (> 0).
    pub fn days(days: f64) -> HalfLife {
        HalfLife(Some(days))
    }

    /// The half-life in days, `None` when ratings never fade.
    pub fn as_days(self) -> Option<f64> {
        self.0
    }

    /// The factor a rating `age_secs` old is weighted by: 1 at age 0 (or
    /// newer than the reference), 0.5 at one half-life.
    #[inline]
    pub fn decay(self, age_secs: i64) -> f32 {
        match self.0 {
            None => 1.0,
            Some(days) => {
                let age = age_secs.max(0) as f64 / 86_400.0;
                0.5f64.powf(age / days) as f32
            }
        }
    }

    pub(crate) fn validate(self, model: &str) -> Result<()> {
        match self.0 {
            Some(d) if !(d.is_finite() && d > 0.0 && d <= 36_500.0) => {
                Err(Error::InvalidArgument(format!(
                    "{model} half_life must be none or between a day and 100 years (e.g. 365d), got {d} days"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for HalfLife {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(d) => write!(f, "{d}d"),
        }
    }
}

impl FromStr for HalfLife {
    type Err = Error;

    fn from_str(s: &str) -> Result<HalfLife> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::InvalidArgument(format!(
                "unknown half-life {s:?}; expected none or a duration such as 365d, 8w or 2y"
            ))
        };
        if t == "none" {
            return Ok(HalfLife::NONE);
        }
        let (num, unit) = match t.char_indices().last() {
            Some((i, 'd')) => (&t[..i], 1.0),
            Some((i, 'w')) => (&t[..i], 7.0),
            Some((i, 'y')) => (&t[..i], 365.0),
            _ => (t.as_str(), 1.0),
        };
        let x: f64 = num.trim().parse().map_err(|_| bad())?;
        if !x.is_finite() {
            return Err(bad());
        }
        let h = HalfLife::days(x * unit);
        h.validate("the")?;
        Ok(h)
    }
}

impl Serialize for HalfLife {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HalfLife {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<HalfLife, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The whole star-and-time → weight rule of one trained ranking model: its
/// [`Signal`], its [`HalfLife`] and the time ages are measured from, so
/// training and every later fold-in weigh a rating alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighting {
    pub signal: Signal,
    pub half_life: HalfLife,
    /// Unix seconds: the newest rating the model was trained on.
    pub reference: i64,
    /// What a rating newer than `reference` (one the model was not trained
    /// on: a fold-in) weighs, as a multiple of its weight.
    pub fresh: f32,
    /// When one user's history is scored (never in training), each of
    /// their ratings also fades with its age before that user's own newest
    /// rating: what someone chose lately says more about their next choice
    /// than what they chose years before (see [`Weighting::history`]).
    pub recent: HalfLife,
}

impl Weighting {
    /// The weight of `stars` given at `timestamp`, or `None` when the
    /// signal ignores it.
    #[inline]
    pub fn weight(&self, stars: f32, timestamp: i64) -> Option<f32> {
        let w = self.signal.weight(stars)?;
        if timestamp > self.reference {
            return Some(w * self.fresh);
        }
        Some(
            w * self
                .half_life
                .decay(self.reference.saturating_sub(timestamp)),
        )
    }

    /// One user's history as `(index, weight)` for scoring: training's
    /// weight of each rating (see [`Weighting::weight`]) times its fade
    /// under `recent`, measured from the newest rating of the history.
    /// `index` maps a movie to the model's index (`None`: not modelled).
    pub fn history(
        &self,
        history: &[crate::types::Rated],
        index: impl Fn(i32) -> Option<u32>,
    ) -> Vec<(u32, f32)> {
        let newest = history.iter().map(|r| r.timestamp).max().unwrap_or(0);
        history
            .iter()
            .filter_map(|r| {
                let i = index(r.movie_id)?;
                let w = self.weight(r.stars, r.timestamp)?;
                Some((i, w * self.recent.decay(newest.saturating_sub(r.timestamp))))
            })
            .collect()
    }
}

/// `serde` default of a history half-life missing from a stored model: a
/// model trained before the setting existed never faded histories.
pub(crate) fn no_fade() -> HalfLife {
    HalfLife::NONE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0.5^(age / half-life), by hand: a rating one half-life old weighs
    /// half, two quarter; newer than the reference weighs in full.
    #[test]
    fn half_lives_fade_weights_by_hand() {
        let day = 86_400;
        let w = Weighting {
            signal: Signal::Weighted,
            half_life: HalfLife::days(10.0),
            reference: 100 * day,
            fresh: 1.0,
            recent: HalfLife::NONE,
        };
        assert_eq!(w.weight(4.0, 100 * day), Some(4.0));
        assert_eq!(w.weight(4.0, 90 * day), Some(2.0));
        assert_eq!(w.weight(4.0, 80 * day), Some(1.0));
        assert!((w.weight(4.0, 95 * day).unwrap() - 4.0 * 0.5f32.sqrt()).abs() < 1e-6);
        assert_eq!(w.weight(4.0, 200 * day), Some(4.0));
        let boosted = Weighting { fresh: 3.0, ..w };
        assert_eq!(boosted.weight(4.0, 100 * day + 1), Some(12.0));
        assert_eq!(boosted.weight(4.0, 90 * day), Some(2.0));
        let none = Weighting {
            half_life: HalfLife::NONE,
            ..w
        };
        assert_eq!(none.weight(4.0, 0), Some(4.0));
        let at_least = Weighting {
            signal: Signal::AtLeast(4.0),
            ..w
        };
        assert_eq!(at_least.weight(3.5, 100 * day), None);
    }

    /// A history fades from its own newest rating, on top of training's
    /// weight, by hand: one `recent` half-life before the newest halves,
    /// two quarter; unmodelled movies and ignored stars drop out.
    #[test]
    fn histories_fade_from_their_newest_rating() {
        use crate::types::Rated;
        let day = 86_400;
        let w = Weighting {
            signal: Signal::AtLeast(2.0),
            half_life: HalfLife::NONE,
            reference: 0,
            fresh: 1.0,
            recent: HalfLife::days(30.0),
        };
        let history = [
            Rated::new(1, 4.0, 500 * day),
            Rated::new(2, 5.0, 470 * day),
            Rated::new(3, 3.0, 440 * day),
            Rated::new(4, 1.0, 500 * day),
            Rated::new(5, 4.0, 500 * day),
        ];
        let index = |m: i32| (m != 5).then_some(m as u32 * 10);
        assert_eq!(
            w.history(&history, index),
            vec![(10, 1.0), (20, 0.5), (30, 0.25)]
        );
        let flat = Weighting {
            recent: HalfLife::NONE,
            ..w
        };
        assert_eq!(
            flat.history(&history, index),
            vec![(10, 1.0), (20, 1.0), (30, 1.0)]
        );
    }

    #[test]
    fn half_lives_parse_and_print() {
        for (s, days) in [
            ("none", None),
            ("365d", Some(365.0)),
            ("8w", Some(56.0)),
            ("2y", Some(730.0)),
            (" 30 ", Some(30.0)),
            ("1.5y", Some(547.5)),
        ] {
            let h: HalfLife = s.parse().unwrap();
            assert_eq!(h.as_days(), days, "{s}");
            let back: HalfLife = h.to_string().parse().unwrap();
            assert_eq!(back, h);
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<HalfLife>(&json).unwrap(), h);
        }
        for bad in ["", "soon", "0d", "-3d", "NaNd", "200y", "inf"] {
            assert!(bad.parse::<HalfLife>().is_err(), "{bad}");
        }
    }

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
