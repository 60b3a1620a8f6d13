//! Offline evaluation of recommender models on a train/test split.
//!
//! Evaluation knows models only through the small [`Scorer`] trait, so every
//! model type (and a test's lookup table) is measured by the same code and
//! the numbers are comparable across model versions.
//!
//! Two protocols are reported, because they answer different questions:
//!
//! * **Accuracy and the rated-items protocol** (`rmse`, `mae`,
//!   `precision_at_10`): how well the model predicts and orders the movies a
//!   user actually rated. `precision_at_10` reproduces Surprise's FAQ
//!   `precision_recall_at_k`, so it can be compared with published Surprise
//!   numbers, but it never asks the model to find anything.
//! * **Full-catalogue ranking** (`rank_precision_at_10`, `recall_at_10`,
//!   `ndcg_at_10`, `coverage`): what a user would be shown, every movie they
//!   have not rated in train competing for the top k. This is the protocol
//!   that reflects serving, and it is much harsher.
//!
//! Ties between equal scores are broken by movieId ascending everywhere
//! ([`ranking_order`]), so results are deterministic and reproducible by
//! other implementations (`scripts/reference/eval_metrics.py` does).

mod metrics;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::types::{Rated, Rating};

pub use metrics::{
    catalogue_coverage, mae, ndcg_at_k, precision_at_k, precision_at_k_rated, ranking_metrics,
    ranking_order, recall_at_k, rmse, top_k_unrated, Prediction, UserRanking,
};

/// What evaluation needs from a model, and nothing more, so that this module
/// does not depend on any model type.
pub trait Scorer: Sync {
    /// Whether [`Scorer::predict`] means anything: ranking models predict
    /// no ratings, and get no RMSE, MAE or rated-items precision rather than
    /// invented ones.
    fn predicts_ratings(&self) -> bool {
        true
    }

    /// Predicted rating, clipped to 0.5..=5.0 by the model (evaluation does
    /// not clip, so an unclipped model is measured as it would serve).
    /// Called for every test rating, including users and movies the model
    /// never saw: it should answer with its fallback, not fail.
    fn predict(&self, user: i32, movie: i32) -> f32;

    /// Scores for every movie of the catalogue, for the full-catalogue
    /// ranking; returns false if the model cannot rank for this user
    /// (unknown user), who is then left out of the ranking metrics.
    ///
    /// `history` is what the user rated in train, ascending by movieId:
    /// models that score from a user's ratings (EASE) need it; models with
    /// per-user factors may ignore it.
    ///
    /// Pushes one `(movieId, score)` per catalogue movie, each movie once,
    /// onto `out`, which evaluation hands over empty and reuses across the
    /// users of a thread: implementations should only push (no allocation
    /// per user), and are free to push in any order. Scores need not be
    /// clipped; only their order matters. The catalogue is taken to be the
    /// movies pushed here (its size is the denominator of coverage).
    fn score_catalogue(&self, user: i32, history: &[Rated], out: &mut Vec<(i32, f32)>) -> bool;

    /// The user's top `k` movies outside `rated` (sorted ids), best first,
    /// into `top`; returns the catalogue size, or `None` when the model
    /// cannot rank for this user. `scores` is scratch space.
    ///
    /// The default sorts [`Scorer::score_catalogue`]'s scores (ties to the
    /// lower id). A scorer whose lists are more than a sort of its scores
    /// (the niche re-ranking of short histories) overrides it, so that the
    /// lists evaluated are the lists served.
    fn top_k(
        &self,
        user: i32,
        history: &[Rated],
        rated: &[i32],
        k: usize,
        scores: &mut Vec<(i32, f32)>,
        top: &mut Vec<i32>,
    ) -> Option<usize> {
        scores.clear();
        if !self.score_catalogue(user, history, scores) {
            return None;
        }
        let catalogue_size = scores.len();
        top_k_unrated(scores, rated, k, top);
        Some(catalogue_size)
    }
}

/// Evaluation results, stored with a model version and compared across
/// versions. The `_at_10` fields hold the metrics at [`EvalOptions::k`],
/// which is 10 unless a caller chose otherwise.
///
/// A metric that does not apply is absent (`None`), never 0: a ranking
/// model has no RMSE, a store without a test split has no metrics at all,
/// and with ranking disabled there are no ranking metrics. Absent fields
/// are left out of the JSON, so reports written before they existed (all
/// numbers) still read back. Only a model that predicts NaN gets NaN
/// RMSE/MAE: that is a model bug worth seeing, not hiding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct EvalReport {
    /// Over all test ratings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Rated-items protocol (Surprise FAQ), mean over every user with a test
    /// rating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_at_10: Option<f64>,
    /// Full-catalogue protocol: hits / k, mean over the ranked users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_precision_at_10: Option<f64>,
    /// Full-catalogue protocol: hits / #relevant test items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at_10: Option<f64>,
    /// Full-catalogue protocol, binary gains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndcg_at_10: Option<f64>,
    /// Distinct movies in the ranked users' top lists / catalogue size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    #[serde(default)]
    pub test_ratings: u64,
    /// Users the full-catalogue metrics are averaged over (after sampling,
    /// and without users the model cannot rank); when ranking is disabled,
    /// the users the rated precision is averaged over.
    #[serde(default)]
    pub users_evaluated: u64,
    /// Users eligible for ranking (a relevant test rating) before sampling:
    /// more than `users_evaluated` when [`EvalOptions::max_ranking_users`]
    /// took a sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_eligible: Option<u64>,
}

impl EvalReport {
    /// Whether anything was measured (a test split existed).
    pub fn is_empty(&self) -> bool {
        self.test_ratings == 0
    }
}

/// Knobs of [`evaluate`]; the defaults are the protocol the project reports.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Length of the top lists (10).
    pub k: usize,
    /// Rated-items protocol: recommended when predicted >= this, relevant
    /// when actual >= this (3.5, Surprise's FAQ default).
    pub rated_threshold: f32,
    /// Full-catalogue protocol: a test rating >= this is relevant (4.0).
    pub relevance_threshold: f32,
    /// Whether to compute the full-catalogue metrics, the expensive part
    /// (users × catalogue scores); `false` leaves them 0.
    pub ranking: bool,
    /// Caps the users ranked, for large data sets. The eligible users (with a
    /// relevant test rating) are sorted by id and every (n / cap)-th one is
    /// taken, precisely those at indices `i * n / cap` for `i` in `0..cap`:
    /// deterministic, so versions are compared on the same users, and spread
    /// over the whole id range rather than biased to early sign-ups. The
    /// default, [`DEFAULT_MAX_RANKING_USERS`], leaves ml-latest-small (610
    /// users) and ML-1M (6,040) whole and makes ranking ML-25M's 162,000
    /// users a fraction of training time.
    pub max_ranking_users: Option<usize>,
}

/// Users ranked at most by default (see [`EvalOptions::max_ranking_users`]);
/// at 10,000 users the standard error of a mean NDCG@10 is about 0.003.
pub const DEFAULT_MAX_RANKING_USERS: usize = 10_000;

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: 10,
            rated_threshold: 3.5,
            relevance_threshold: 4.0,
            ranking: true,
            max_ranking_users: Some(DEFAULT_MAX_RANKING_USERS),
        }
    }
}

/// Accuracy and rated-protocol results of one test user.
struct UserAccuracy {
    squared_errors: f64,
    absolute_errors: f64,
    precision: f64,
    /// Movies with a test rating >= the relevance threshold, sorted, distinct.
    relevant: Vec<i32>,
}

/// Full-catalogue results of one ranked user.
struct UserRanked {
    metrics: UserRanking,
    top: Vec<i32>,
    catalogue_size: usize,
}

/// Evaluates `model` on `test`; `train` gives each ranked user's history
/// (what models that score from ratings read, and what is excluded from
/// their full-catalogue ranking).
///
/// An empty test set gives [`EvalReport::default`] (no metrics,
/// `test_ratings` 0). Never panics on data; runs in parallel over users and
/// its result does not depend on the thread count.
pub fn evaluate(
    model: &dyn Scorer,
    train: &[Rating],
    test: &[Rating],
    opts: &EvalOptions,
) -> EvalReport {
    if test.is_empty() {
        return EvalReport::default();
    }
    let rates = model.predicts_ratings();
    let users = accuracy_by_user(model, test, opts, rates);

    let mut report = EvalReport {
        test_ratings: test.len() as u64,
        users_evaluated: users.len() as u64,
        ..EvalReport::default()
    };
    if rates {
        let mut squared = 0.0;
        let mut absolute = 0.0;
        let mut precision = 0.0;
        for (_, u) in &users {
            squared += u.squared_errors;
            absolute += u.absolute_errors;
            precision += u.precision;
        }
        let n = test.len() as f64;
        report.rmse = Some((squared / n).sqrt());
        report.mae = Some(absolute / n);
        report.precision_at_10 = Some(precision / users.len() as f64);
    }
    if opts.ranking && opts.k > 0 {
        rank_catalogue(model, train, &users, opts, &mut report);
    }
    report
}

/// Groups the test ratings by user and computes each user's error sums and
/// rated precision in parallel. Returned in user-id order, so the sums the
/// caller forms do not depend on scheduling.
fn accuracy_by_user(
    model: &dyn Scorer,
    test: &[Rating],
    opts: &EvalOptions,
    rates: bool,
) -> Vec<(i32, UserAccuracy)> {
    let mut rows: Vec<(i32, Prediction)> = test
        .iter()
        .map(|r| {
            let p = Prediction {
                movie_id: r.movie_id,
                predicted: 0.0,
                actual: r.rating,
            };
            (r.user_id, p)
        })
        .collect();
    // The rating in the key only makes duplicate (user, movie) rows order
    // deterministically; real splits have none.
    rows.par_sort_unstable_by_key(|(u, p)| (*u, p.movie_id, p.actual.to_bits()));

    let mut spans: Vec<(i32, usize)> = Vec::new();
    for (u, _) in &rows {
        match spans.last_mut() {
            Some((last, len)) if last == u => *len += 1,
            _ => spans.push((*u, 1)),
        }
    }
    let mut preds: Vec<Prediction> = rows.into_iter().map(|(_, p)| p).collect();
    let mut groups: Vec<(i32, &mut [Prediction])> = Vec::with_capacity(spans.len());
    let mut rest: &mut [Prediction] = &mut preds;
    for &(user, len) in &spans {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        groups.push((user, head));
        rest = tail;
    }

    groups
        .into_par_iter()
        .map(|(user, preds)| {
            if rates {
                for p in preds.iter_mut() {
                    p.predicted = model.predict(user, p.movie_id);
                }
            }
            let (squared_errors, absolute_errors) = metrics::error_sums(preds);
            // Still in movieId order here, so `relevant` comes out sorted.
            let mut relevant: Vec<i32> = if opts.ranking {
                preds
                    .iter()
                    .filter(|p| p.actual >= opts.relevance_threshold)
                    .map(|p| p.movie_id)
                    .collect()
            } else {
                Vec::new()
            };
            relevant.dedup();
            let precision = if rates {
                metrics::precision_at_k_rated_in_place(preds, opts.k, opts.rated_threshold)
            } else {
                0.0
            };
            (
                user,
                UserAccuracy {
                    squared_errors,
                    absolute_errors,
                    precision,
                    relevant,
                },
            )
        })
        .collect()
}

/// Indices of the users to rank among `n` eligible ones (see
/// [`EvalOptions::max_ranking_users`]).
fn sampled_indices(n: usize, cap: Option<usize>) -> Vec<usize> {
    match cap {
        Some(cap) if cap < n => (0..cap)
            .map(|i| (i as u128 * n as u128 / cap as u128) as usize)
            .collect(),
        _ => (0..n).collect(),
    }
}

/// The full-catalogue protocol: fills the ranking fields of `metrics`.
fn rank_catalogue(
    model: &dyn Scorer,
    train: &[Rating],
    users: &[(i32, UserAccuracy)],
    opts: &EvalOptions,
    metrics: &mut EvalReport,
) {
    let eligible: Vec<(i32, &[i32])> = users
        .iter()
        .filter(|(_, u)| !u.relevant.is_empty())
        .map(|(id, u)| (*id, u.relevant.as_slice()))
        .collect();
    let chosen: Vec<(i32, &[i32])> = sampled_indices(eligible.len(), opts.max_ranking_users)
        .into_iter()
        .map(|i| eligible[i])
        .collect();

    metrics.users_eligible = Some(eligible.len() as u64);

    // Train histories of the chosen users only: with sampling, most users'
    // histories are never needed.
    let slot: HashMap<i32, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, (u, _))| (*u, i))
        .collect();
    let mut history: Vec<Vec<Rated>> = vec![Vec::new(); chosen.len()];
    for r in train {
        if let Some(&i) = slot.get(&r.user_id) {
            history[i].push(Rated::from(r));
        }
    }
    let rated: Vec<Vec<i32>> = history
        .par_iter_mut()
        .map(|h| {
            h.sort_unstable_by(|a, b| {
                (a.movie_id, a.timestamp)
                    .cmp(&(b.movie_id, b.timestamp))
                    .then(a.stars.total_cmp(&b.stars))
            });
            let mut ids: Vec<i32> = h.iter().map(|p| p.movie_id).collect();
            ids.dedup();
            ids
        })
        .collect();

    let k = opts.k;
    let ranked: Vec<Option<UserRanked>> = chosen
        .par_iter()
        .zip(rated.par_iter().zip(history.par_iter()))
        .map_init(
            || {
                (
                    Vec::<(i32, f32)>::new(),
                    Vec::<i32>::with_capacity(k.min(1024)),
                )
            },
            |(scores, top), (&(user, relevant), (rated, history))| {
                let catalogue_size = model.top_k(user, history, rated, k, scores, top)?;
                Some(UserRanked {
                    metrics: ranking_metrics(top, relevant, k),
                    top: top.clone(),
                    catalogue_size,
                })
            },
        )
        .collect();

    let mut sum = UserRanking::default();
    let mut count = 0usize;
    let mut catalogue_size = 0usize;
    let mut shown: Vec<i32> = Vec::new();
    for r in ranked.iter().flatten() {
        sum.precision += r.metrics.precision;
        sum.recall += r.metrics.recall;
        sum.ndcg += r.metrics.ndcg;
        count += 1;
        catalogue_size = catalogue_size.max(r.catalogue_size);
        shown.extend_from_slice(&r.top);
    }
    metrics.users_evaluated = count as u64;
    if count > 0 {
        let c = count as f64;
        metrics.rank_precision_at_10 = Some(sum.precision / c);
        metrics.recall_at_10 = Some(sum.recall / c);
        metrics.ndcg_at_10 = Some(sum.ndcg / c);
        metrics.coverage = Some(catalogue_coverage(&shown, catalogue_size));
    }
}

/// The order users are sampled in when only some are scored (monitoring,
/// choices made on evidence): a hash of the id, so no id range is favoured
/// and the same users are picked every time (splitmix64).
pub fn sample_order(user: i32) -> (u64, i32) {
    let mut z = (user as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31), user)
}
