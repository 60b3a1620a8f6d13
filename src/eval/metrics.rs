//! The individual metrics as pure functions over tiny inputs, so each can be
//! checked by hand; [`super::evaluate`] is built from exactly these.
//!
//! Every ranking in this module uses [`ranking_order`]: higher score first,
//! equal scores by movieId ascending, NaN scores last. A fixed tie-break makes
//! the metrics reproducible (models often give many movies the same clipped
//! score) and lets other implementations reproduce them.

use std::cmp::Ordering;

/// One test rating with the model's prediction for it: the unit that the
/// accuracy metrics and the rated-items protocol work on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub movie_id: i32,
    pub predicted: f32,
    pub actual: f32,
}

/// A user's full-catalogue ranking metrics, before averaging over users.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct UserRanking {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
}

/// Sum of squared and of absolute errors, in f64 so that millions of f32
/// errors add up without drift.
pub(crate) fn error_sums(preds: &[Prediction]) -> (f64, f64) {
    preds.iter().fold((0.0, 0.0), |(sq, abs), p| {
        let e = f64::from(p.predicted) - f64::from(p.actual);
        (sq + e * e, abs + e.abs())
    })
}

/// Root mean squared error; 0 for no predictions, so an empty test set
/// yields numbers that serialize (JSON has no NaN).
pub fn rmse(preds: &[Prediction]) -> f64 {
    if preds.is_empty() {
        return 0.0;
    }
    (error_sums(preds).0 / preds.len() as f64).sqrt()
}

/// Mean absolute error; 0 for no predictions (see [`rmse`]).
pub fn mae(preds: &[Prediction]) -> f64 {
    if preds.is_empty() {
        return 0.0;
    }
    error_sums(preds).1 / preds.len() as f64
}

/// Total order for rankings: score descending, then movieId ascending.
///
/// NaN sorts after every number, so a model bug that yields NaN pushes the
/// movie out of the top instead of panicking or corrupting the selection.
pub fn ranking_order(a: &(i32, f32), b: &(i32, f32)) -> Ordering {
    fn key(s: f32) -> f32 {
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    }
    key(b.1)
        .partial_cmp(&key(a.1))
        .unwrap_or(Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// Precision@k of the rated-items protocol for one user, comparable with
/// Surprise's FAQ `precision_recall_at_k`: the user's test movies ranked by
/// prediction ([`ranking_order`]), the top `k` kept; an item is recommended
/// when predicted >= `threshold` and relevant when actual >= `threshold`.
/// Precision = |relevant and recommended in top k| / |recommended in top k|,
/// and 0 when nothing in the top k is recommended (Surprise's convention).
///
/// It only ranks movies the user did rate, so it measures ordering of known
/// items, not whether the model finds good movies in the whole catalogue.
pub fn precision_at_k_rated(preds: &[Prediction], k: usize, threshold: f32) -> f64 {
    let mut buf = preds.to_vec();
    precision_at_k_rated_in_place(&mut buf, k, threshold)
}

/// [`precision_at_k_rated`] without the copy; reorders `preds`.
pub(crate) fn precision_at_k_rated_in_place(
    preds: &mut [Prediction],
    k: usize,
    threshold: f32,
) -> f64 {
    // Only the set of the top k matters, not its order: a selection suffices
    // (selecting index k leaves the k best in front of it).
    if k < preds.len() {
        preds.select_nth_unstable_by(k, |a, b| {
            ranking_order(&(a.movie_id, a.predicted), &(b.movie_id, b.predicted))
        });
    }
    let top = &preds[..k.min(preds.len())];
    let recommended = top.iter().filter(|p| p.predicted >= threshold).count();
    if recommended == 0 {
        return 0.0;
    }
    let hits = top
        .iter()
        .filter(|p| p.predicted >= threshold && p.actual >= threshold)
        .count();
    hits as f64 / recommended as f64
}

/// The user's top `k` movies among those not in `rated`, best first, written
/// to `out` (cleared first; fewer than `k` when the catalogue runs out).
///
/// `rated` must be sorted ascending. `scores` is reordered: instead of
/// sorting the whole catalogue it partially selects the best
/// `k + rated.len()` entries, which must contain the best `k` unrated ones,
/// and sorts only those. That keeps a user's cost linear in the catalogue.
pub fn top_k_unrated(scores: &mut [(i32, f32)], rated: &[i32], k: usize, out: &mut Vec<i32>) {
    debug_assert!(
        rated.windows(2).all(|w| w[0] <= w[1]),
        "rated must be sorted"
    );
    out.clear();
    if k == 0 {
        return;
    }
    let want = k.saturating_add(rated.len()).min(scores.len());
    if want < scores.len() {
        // Index `want` lands in place with the `want` best in front of it.
        scores.select_nth_unstable_by(want, ranking_order);
    }
    let head = &mut scores[..want];
    head.sort_unstable_by(ranking_order);
    for &(movie, _) in head.iter() {
        if rated.binary_search(&movie).is_err() {
            out.push(movie);
            if out.len() == k {
                break;
            }
        }
    }
}

/// How many of the first `k` of `top` are in `relevant` (sorted ascending).
fn hits(top: &[i32], relevant: &[i32], k: usize) -> usize {
    top.iter()
        .take(k)
        .filter(|m| relevant.binary_search(m).is_ok())
        .count()
}

/// Full-catalogue precision@k: hits / k, the standard definition, so a list
/// shorter than k is penalised rather than excused. `relevant` sorted ascending.
pub fn precision_at_k(top: &[i32], relevant: &[i32], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hits(top, relevant, k) as f64 / k as f64
}

/// Full-catalogue recall@k: hits / |relevant| (0 when nothing is relevant).
/// With more than k relevant items it cannot reach 1; that is the standard
/// definition and what other libraries report. `relevant` sorted ascending.
pub fn recall_at_k(top: &[i32], relevant: &[i32], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hits(top, relevant, k) as f64 / relevant.len() as f64
}

/// NDCG@k with binary gains: DCG = sum over positions i = 1..=k of
/// rel_i / log2(i + 1), divided by the DCG of min(k, |relevant|) hits in the
/// first positions. 0 when nothing is relevant. `relevant` sorted ascending.
pub fn ndcg_at_k(top: &[i32], relevant: &[i32], k: usize) -> f64 {
    let ideal = relevant.len().min(k);
    if ideal == 0 {
        return 0.0;
    }
    let discount = |pos0: usize| 1.0 / ((pos0 + 2) as f64).log2();
    let dcg: f64 = top
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, m)| relevant.binary_search(m).is_ok())
        .map(|(i, _)| discount(i))
        .sum();
    let idcg: f64 = (0..ideal).map(discount).sum();
    dcg / idcg
}

/// The three full-catalogue metrics of one user's top list.
pub fn ranking_metrics(top: &[i32], relevant: &[i32], k: usize) -> UserRanking {
    UserRanking {
        precision: precision_at_k(top, relevant, k),
        recall: recall_at_k(top, relevant, k),
        ndcg: ndcg_at_k(top, relevant, k),
    }
}

/// Share of the catalogue that appears in at least one top list: a model
/// that shows everyone the same blockbusters scores near 0 however accurate
/// it is. `recommended` may hold duplicates; 0 for an empty catalogue.
pub fn catalogue_coverage(recommended: &[i32], catalogue_size: usize) -> f64 {
    if catalogue_size == 0 {
        return 0.0;
    }
    let mut distinct = recommended.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() as f64 / catalogue_size as f64
}
