//! Recommendation models: one fit/score interface for every algorithm.
//!
//! In the spirit of Surprise, every algorithm ([`Algo`]) is trained through
//! [`fit`] from its [`Hyperparams`] and yields a [`Model`]; evaluation,
//! serving and the registry use only [`Model`]'s methods and never need to
//! know which algorithm produced it. Two kinds exist:
//!
//! * **Rating models** predict stars and are judged by RMSE as well as by
//!   the lists they make: [`baseline`] (Surprise's BaselineOnly), [`svd`]
//!   (Funk-SVD by SGD, optionally block-parallel) and [`als`] (biased ALS
//!   with weighted-λ). Their [`FactorModel`] ranks by the *unclipped*
//!   prediction, so strong preferences do not tie at 5 stars.
//! * **Ranking models** learn which movies people choose rather than how
//!   they rate them, and predict no ratings: [`ials`] (implicit-feedback
//!   ALS, a [`FactorModel`] without biases) and [`ease`] (the closed-form
//!   item-item [`EaseModel`]). How their input turns stars into a choice
//!   signal is the [`Signal`] hyperparameter.
//!
//! A user is scored either from what training learned about them (their
//! factors) or, for models that can, from their ratings at request time
//! (`ease` always; `ials` by solving the user's factors against the fixed
//! movie factors): see [`Model::score`].
//!
//! Models persist as one checksummed binary artifact ([`Model::to_bytes`] /
//! [`Model::from_bytes`]).

pub mod als;
mod artifact;
pub mod baseline;
mod dataset;
pub mod ease;
mod factor;
pub mod ials;
mod linalg;
pub mod niche;
pub mod popular;
pub mod signal;
pub mod svd;

#[cfg(test)]
mod quality;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use als::AlsParams;
pub use artifact::{ARTIFACT_MAGIC, ARTIFACT_VERSION};
pub use baseline::BaselineParams;
pub use ease::{EaseModel, EaseParams};
pub use factor::FactorModel;
pub use ials::{FoldedUser, IalsParams, IalsSolver, ImplicitSolver};
pub use niche::{NicheParams, NicheTable};
pub use signal::{HalfLife, Signal, Weighting};
pub use svd::SvdParams;

use crate::progress::Progress;
use crate::types::{Movie, Rated, Rating};
use crate::{Error, Result};

pub use crate::types::{MAX_RATING, MIN_RATING};

/// The training algorithms. The lowercase name is what the CLI accepts, what
/// JSON notes record and what the artifact's tag maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Baseline,
    Svd,
    Als,
    Ials,
    Ease,
}

impl Algo {
    /// Every algorithm, for help texts and exhaustive tests.
    pub const ALL: [Algo; 5] = [Algo::Baseline, Algo::Svd, Algo::Als, Algo::Ials, Algo::Ease];

    /// The stable lowercase name used on the command line and in JSON notes.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Baseline => "baseline",
            Algo::Svd => "svd",
            Algo::Als => "als",
            Algo::Ials => "ials",
            Algo::Ease => "ease",
        }
    }

    /// Whether the algorithm predicts star ratings (so RMSE, MAE and the
    /// rated-items precision apply) or only ranks movies.
    pub fn predicts_ratings(self) -> bool {
        matches!(self, Algo::Baseline | Algo::Svd | Algo::Als)
    }

    /// Accepts the names [`Algo::as_str`] produces, case-insensitively,
    /// because they are typed on command lines.
    pub fn parse(s: &str) -> Option<Algo> {
        Algo::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Stable one-byte tag used in the binary artifact; never renumber.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Algo::Baseline => 0,
            Algo::Svd => 1,
            Algo::Als => 2,
            Algo::Ials => 3,
            Algo::Ease => 4,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.tag() == tag)
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algo {
    type Err = Error;

    fn from_str(s: &str) -> Result<Algo> {
        Algo::parse(s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown algorithm {s:?}; expected one of: {}",
                Algo::ALL.map(Algo::as_str).join(", ")
            ))
        })
    }
}

/// Hyperparameters of one training run, tagged with the algorithm so the
/// JSON recorded next to a model says exactly how to reproduce it, e.g.
/// `{"algo":"svd","factors":100,"epochs":20,...}`. Missing fields take their
/// defaults when deserializing, so notes written by older versions still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algo", rename_all = "lowercase")]
pub enum Hyperparams {
    Baseline(BaselineParams),
    Svd(SvdParams),
    Als(AlsParams),
    Ials(IalsParams),
    Ease(EaseParams),
}

impl Hyperparams {
    /// The tuned defaults of `algo`.
    pub fn default_for(algo: Algo) -> Hyperparams {
        match algo {
            Algo::Baseline => Hyperparams::Baseline(BaselineParams::default()),
            Algo::Svd => Hyperparams::Svd(SvdParams::default()),
            Algo::Als => Hyperparams::Als(AlsParams::default()),
            Algo::Ials => Hyperparams::Ials(IalsParams::default()),
            Algo::Ease => Hyperparams::Ease(EaseParams::default()),
        }
    }

    pub fn algo(&self) -> Algo {
        match self {
            Hyperparams::Baseline(_) => Algo::Baseline,
            Hyperparams::Svd(_) => Algo::Svd,
            Hyperparams::Als(_) => Algo::Als,
            Hyperparams::Ials(_) => Algo::Ials,
            Hyperparams::Ease(_) => Algo::Ease,
        }
    }

    /// Rejects out-of-range values before any work starts, with a message
    /// naming the parameter and its valid range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Hyperparams::Baseline(p) => p.validate(),
            Hyperparams::Svd(p) => p.validate(),
            Hyperparams::Als(p) => p.validate(),
            Hyperparams::Ials(p) => p.validate(),
            Hyperparams::Ease(p) => p.validate(),
        }
    }
}

/// The one check every algorithm's `validate` makes of its counts (factors,
/// iterations, epochs, steps, threads): `value` within `range`, or the
/// error naming the model, the setting and the range.
pub(crate) fn check_count(
    model: &str,
    name: &str,
    value: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(crate::Error::InvalidArgument(format!(
        "{model} {name} must be between {} and {}, got {value}",
        range.start(),
        range.end()
    )))
}

/// Trains the algorithm `params` names on `ratings`.
///
/// The result is a pure function of the rating sequence, the parameters and
/// `seed` (for parallel SVD also of its `threads` setting), so a model version
/// can be reproduced from its recorded notes.
pub fn fit(
    params: &Hyperparams,
    ratings: &[Rating],
    seed: u64,
    progress: &dyn Progress,
) -> Result<Model> {
    params.validate()?;
    let data = dataset::TrainSet::new(ratings)?;
    Ok(match params {
        Hyperparams::Baseline(p) => Model::Factor(baseline::fit(p, &data, progress)?),
        Hyperparams::Svd(p) => Model::Factor(svd::fit(p, &data, seed, progress)?),
        Hyperparams::Als(p) => Model::Factor(als::fit(p, &data, seed, progress)?),
        Hyperparams::Ials(p) => Model::Factor(ials::fit(p, &data, seed, progress)?),
        Hyperparams::Ease(p) => Model::Ease(ease::fit(p, &data, progress)?),
    })
}

/// Wraps trained arrays (indexed like `data`) into a model, turning
/// non-finite values into a divergence error a user can act on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trained_model(
    algo: Algo,
    data: &dataset::TrainSet,
    global_mean: f32,
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    k: usize,
    p: Vec<f32>,
    q: Vec<f32>,
) -> Result<FactorModel> {
    let finite = global_mean.is_finite()
        && [&user_bias, &item_bias, &p, &q]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()));
    if !finite {
        return Err(Error::InvalidArgument(format!(
            "{algo} training diverged (non-finite parameters); lower the learning rate or raise \
             the regularization"
        )));
    }
    FactorModel::from_parts(
        algo,
        global_mean,
        data.user_ids.clone(),
        data.movie_ids.clone(),
        user_bias,
        item_bias,
        k,
        p,
        q,
    )
}

/// How a user's scores were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreBasis {
    /// From the factors training learned for the user.
    Trained,
    /// From the user's ratings at scoring time (EASE, or an iALS fold-in).
    History,
}

/// A trained model of any algorithm.
#[derive(Clone, Debug)]
pub enum Model {
    Factor(FactorModel),
    Ease(EaseModel),
}

impl Model {
    pub fn algo(&self) -> Algo {
        match self {
            Model::Factor(m) => m.algo(),
            Model::Ease(_) => Algo::Ease,
        }
    }

    /// See [`Algo::predicts_ratings`].
    pub fn predicts_ratings(&self) -> bool {
        self.algo().predicts_ratings()
    }

    /// Predicted stars (clipped to the rating scale), for rating models;
    /// `None` for ranking models, whose scores are not ratings.
    pub fn predict(&self, user: i32, movie: i32) -> Option<f32> {
        match self {
            Model::Factor(m) if m.algo().predicts_ratings() => Some(m.predict(user, movie)),
            _ => None,
        }
    }

    /// The movies the model can score, ascending: the order of
    /// [`Model::score`]'s output.
    pub fn movie_ids(&self) -> &[i32] {
        match self {
            Model::Factor(m) => m.movie_ids(),
            Model::Ease(m) => m.movie_ids(),
        }
    }

    pub fn movie_index(&self, movie: i32) -> Option<usize> {
        match self {
            Model::Factor(m) => m.movie_index(movie),
            Model::Ease(m) => m.movie_index(movie),
        }
    }

    /// Whether training learned something about `user` itself (factors);
    /// EASE keeps nothing per user.
    pub fn knows_user(&self, user: i32) -> bool {
        match self {
            Model::Factor(m) => m.knows_user(user),
            Model::Ease(_) => false,
        }
    }

    /// How the model's lists for short histories are re-ranked
    /// ([`niche`]); off for rating models.
    pub fn niche(&self) -> NicheParams {
        match self {
            Model::Factor(m) => m.implicit().map_or(NicheParams::OFF, |s| s.niche),
            Model::Ease(m) => m.params().niche(),
        }
    }

    /// A history as `(dense movie index, weight)` under the model's signal
    /// and half-life, for the movies the model knows (what the niche
    /// re-ranking reads as the user's genre mix); empty for rating models.
    pub fn weighted_history(&self, history: &[Rated]) -> Vec<(u32, f32)> {
        match self {
            Model::Ease(m) => m.history(history),
            Model::Factor(m) => match m.implicit() {
                Some(s) => s
                    .weighting
                    .history(history, |id| m.movie_index(id).map(|j| j as u32)),
                None => Vec::new(),
            },
        }
    }

    /// How fast a user's history fades when the model scores it (see
    /// [`signal::Weighting::recent`]); `None` for models that never score
    /// a history.
    pub fn history_half_life(&self) -> Option<signal::HalfLife> {
        match self {
            Model::Ease(m) => Some(m.params().history_half_life),
            Model::Factor(m) => m.implicit().map(|s| s.weighting.recent),
        }
    }

    /// Serves with another history half-life (the run's recorded choice,
    /// see [`crate::registry::recency`]); training is untouched.
    pub fn set_history_half_life(&mut self, h: signal::HalfLife) {
        match self {
            Model::Ease(m) => m.set_history_half_life(h),
            Model::Factor(m) => m.set_history_half_life(h),
        }
    }

    /// Whether the model can score a user from their ratings alone (a user
    /// it never saw, or one with ratings newer than the model).
    pub fn scores_history(&self) -> bool {
        match self {
            Model::Factor(m) => m.implicit().is_some(),
            Model::Ease(_) => true,
        }
    }

    /// Ranking scores of every movie of [`Model::movie_ids`] for `user` into
    /// `out`, or `None` if the model cannot rank for them.
    ///
    /// `history` is the user's ratings with their times. With
    /// `from_history = false` a user training knew is scored from their
    /// trained factors (the history is then ignored); otherwise, and for
    /// users training did not know, models that can (see
    /// [`Model::scores_history`]) score from the history. Scores only
    /// order movies: higher is better, and for rating models they are the
    /// unclipped predictions.
    pub fn score(
        &self,
        user: i32,
        history: &[Rated],
        from_history: bool,
        out: &mut Vec<f32>,
    ) -> Option<ScoreBasis> {
        match self {
            Model::Factor(m) => {
                if !from_history || m.implicit().is_none() {
                    let u = m.user_index(user)?;
                    m.score_all(u, out);
                    return Some(ScoreBasis::Trained);
                }
                match m.fold_in(history) {
                    Some(folded) => {
                        m.score_vector(&folded.vector, out);
                        Some(ScoreBasis::History)
                    }
                    None => {
                        let u = m.user_index(user)?;
                        m.score_all(u, out);
                        Some(ScoreBasis::Trained)
                    }
                }
            }
            Model::Ease(m) => {
                let hist = m.history(history);
                if hist.is_empty() {
                    return None;
                }
                m.score(&hist, out);
                Some(ScoreBasis::History)
            }
        }
    }
}

impl Model {
    /// The top `k` of `scores` (the model's scores for `history`'s user,
    /// indexed like [`Model::movie_ids`], excluded movies −∞) re-ranked
    /// for the niche ([`niche`]), as `(dense index, model score)`; `None`
    /// when the model does not re-rank (rating models, niche off), and the
    /// plain top `k` is the list.
    pub fn rerank(
        &self,
        table: &NicheTable,
        history: &[Rated],
        scores: &[f32],
        k: usize,
    ) -> Option<Vec<(usize, f32)>> {
        let params = self.niche();
        if params.is_off() || table.len() != scores.len() {
            return None;
        }
        let hist = self.weighted_history(history);
        Some(niche::rerank(
            &params,
            table,
            &hist,
            history.len(),
            scores,
            k,
        ))
    }
}

/// A model with what its lists need beyond its scores (the niche table,
/// from the catalogue's genres and the training counts). Evaluation ranks
/// through it, so the lists it judges are the lists the recommender serves.
pub struct Listed<'a> {
    pub model: &'a Model,
    table: NicheTable,
}

impl<'a> Listed<'a> {
    /// `train` gives each movie's rating count (popularity), `movies` the
    /// genres.
    pub fn new(model: &'a Model, movies: &[Movie], train: &[Rating]) -> Listed<'a> {
        let table = if model.niche().is_off() {
            NicheTable::default()
        } else {
            let mut counts: std::collections::HashMap<i32, i64> = Default::default();
            for r in train {
                *counts.entry(r.movie_id).or_default() += 1;
            }
            NicheTable::new(model.movie_ids(), movies, &counts)
        };
        Listed { model, table }
    }
}

impl crate::eval::Scorer for Listed<'_> {
    fn predicts_ratings(&self) -> bool {
        self.model.predicts_ratings()
    }

    fn predict(&self, user: i32, movie: i32) -> f32 {
        crate::eval::Scorer::predict(self.model, user, movie)
    }

    fn score_catalogue(&self, user: i32, history: &[Rated], out: &mut Vec<(i32, f32)>) -> bool {
        self.model.score_catalogue(user, history, out)
    }

    fn top_k(
        &self,
        user: i32,
        history: &[Rated],
        rated: &[i32],
        k: usize,
        scores: &mut Vec<(i32, f32)>,
        top: &mut Vec<i32>,
    ) -> Option<usize> {
        if self.table.is_empty() {
            return self.model.top_k(user, history, rated, k, scores, top);
        }
        thread_local! {
            static DENSE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        DENSE.with_borrow_mut(|dense| {
            self.model.score(user, history, false, dense)?;
            let ids = self.model.movie_ids();
            for &m in rated {
                if let Some(i) = self.model.movie_index(m) {
                    dense[i] = f32::NEG_INFINITY;
                }
            }
            let list = self.model.rerank(&self.table, history, dense, k)?;
            top.clear();
            top.extend(list.into_iter().map(|(i, _)| ids[i]));
            Some(ids.len())
        })
    }
}

/// Evaluation sees every model through [`crate::eval::Scorer`]: ratings
/// from [`Model::predict`], rankings from [`Model::score`] (trained
/// factors for users training knew, the train history for EASE).
impl crate::eval::Scorer for Model {
    fn predicts_ratings(&self) -> bool {
        Model::predicts_ratings(self)
    }

    fn predict(&self, user: i32, movie: i32) -> f32 {
        Model::predict(self, user, movie).unwrap_or(f32::NAN)
    }

    fn score_catalogue(&self, user: i32, history: &[Rated], out: &mut Vec<(i32, f32)>) -> bool {
        thread_local! {
            static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCORES.with_borrow_mut(|scores| {
            if self.score(user, history, false, scores).is_none() {
                return false;
            }
            out.extend(self.movie_ids().iter().copied().zip(scores.iter().copied()));
            true
        })
    }
}
