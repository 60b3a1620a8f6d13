#!/usr/bin/env python3
"""Reference numbers for `src/eval` (the Rust test `reference_numbers_match_python`).

Regenerate with:

    python3 scripts/reference/eval_metrics.py

It builds a small deterministic data set with a 32-bit LCG that the Rust test
reimplements step for step, so both sides see identical ratings and
predictions, then computes every metric independently of the Rust code:

* RMSE / MAE by their formulas (and with scikit-learn's mean_squared_error /
  mean_absolute_error when scikit-learn is installed);
* the rated-items precision@k with the logic of Surprise's FAQ function
  `precision_recall_at_k` (examples/precision_recall_at_k.py in the Surprise
  repository), adapted only to take predictions as plain tuples;
* full-catalogue precision@k, recall@k and NDCG@k by their textbook formulas
  (NDCG is also checked against scikit-learn's ndcg_score when installed).

Predictions are multiples of 0.25 and ratings multiples of 0.5, exactly
representable in f32, so the two implementations agree to rounding of the
final sums. Predictions tie often on purpose: both sides break ties by movieId
ascending. Only the standard library is required.
"""

import math
from collections import defaultdict

MOD = 2**32


class Lcg:
    """Numerical Recipes' LCG; `next` returns the top 24 bits of the state
    (the low bits of a power-of-two LCG have short periods)."""

    def __init__(self, seed):
        self.state = seed % MOD

    def next(self):
        self.state = (1664525 * self.state + 1013904223) % MOD
        return self.state >> 8


SEED = 20240601
USERS = 20
MOVIES = 30


def movie_id(m):
    # A permutation of 2..=31, so generation order is not movieId order.
    return (m * 17) % 31 + 1


def known(user):
    """Users the model cannot rank (score_catalogue returns false)."""
    return user % 7 != 0


def generate():
    rng = Lcg(SEED)
    preds = {}
    catalogue = []
    train, test = [], []
    for u in range(1, USERS + 1):
        for m in range(1, MOVIES + 1):
            mid = movie_id(m)
            if u == 1:
                catalogue.append(mid)
            preds[(u, mid)] = 0.5 + (rng.next() % 19) * 0.25
            if rng.next() % 100 < 45:
                r = (rng.next() % 10 + 1) * 0.5
                if rng.next() % 4 == 0:
                    test.append((u, mid, r))
                else:
                    train.append((u, mid, r))
    return preds, catalogue, train, test


def precision_recall_at_k(predictions, k=10, threshold=3.5):
    """Surprise FAQ's precision_recall_at_k. Python's sort is stable (also
    with reverse=True), so ties keep input order: callers pass predictions
    sorted by movieId to get the movieId-ascending tie-break."""
    user_est_true = defaultdict(list)
    for uid, _, true_r, est, _ in predictions:
        user_est_true[uid].append((est, true_r))
    precisions = dict()
    recalls = dict()
    for uid, user_ratings in user_est_true.items():
        user_ratings.sort(key=lambda x: x[0], reverse=True)
        n_rel = sum((true_r >= threshold) for (_, true_r) in user_ratings)
        n_rec_k = sum((est >= threshold) for (est, _) in user_ratings[:k])
        n_rel_and_rec_k = sum(
            ((true_r >= threshold) and (est >= threshold))
            for (est, true_r) in user_ratings[:k]
        )
        precisions[uid] = n_rel_and_rec_k / n_rec_k if n_rec_k != 0 else 0
        recalls[uid] = n_rel_and_rec_k / n_rel if n_rel != 0 else 0
    return precisions, recalls


def metrics(preds, catalogue, train, test, k, max_ranking_users=None,
            rated_threshold=3.5, relevance_threshold=4.0):
    out = {}
    errors = [preds[(u, m)] - r for (u, m, r) in test]
    out["rmse"] = math.sqrt(sum(e * e for e in errors) / len(errors))
    out["mae"] = sum(abs(e) for e in errors) / len(errors)

    surprise_input = sorted(
        ((u, m, r, preds[(u, m)], None) for (u, m, r) in test),
        key=lambda p: (p[0], p[1]),
    )
    precisions, _ = precision_recall_at_k(surprise_input, k=k, threshold=rated_threshold)
    out["precision_at_10"] = sum(precisions.values()) / len(precisions)

    rated = defaultdict(set)
    for (u, m, _) in train:
        rated[u].add(m)
    relevant = defaultdict(set)
    for (u, m, r) in test:
        if r >= relevance_threshold:
            relevant[u].add(m)
    eligible = sorted(relevant)
    n = len(eligible)
    if max_ranking_users is not None and max_ranking_users < n:
        eligible = [eligible[i * n // max_ranking_users] for i in range(max_ranking_users)]

    p_sum = r_sum = n_sum = 0.0
    evaluated = 0
    shown = set()
    sk_pairs = []
    for u in eligible:
        if not known(u):
            continue
        cands = [(m, preds[(u, m)]) for m in catalogue if m not in rated[u]]
        cands.sort(key=lambda c: (-c[1], c[0]))
        top = [m for (m, _) in cands[:k]]
        shown.update(top)
        rel = relevant[u]
        gains = [1 if m in rel else 0 for m in top]
        hits = sum(gains)
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
        p_sum += hits / k
        r_sum += hits / len(rel)
        n_sum += dcg / idcg
        evaluated += 1
        # For scikit-learn: scores that encode our order with no ties.
        sk_pairs.append((
            [1 if m in rel else 0 for (m, _) in cands],
            [len(cands) - i for i in range(len(cands))],
            dcg / idcg,
        ))
    out["rank_precision_at_10"] = p_sum / evaluated
    out["recall_at_10"] = r_sum / evaluated
    out["ndcg_at_10"] = n_sum / evaluated
    out["coverage"] = len(shown) / len(catalogue)
    out["test_ratings"] = len(test)
    out["users_evaluated"] = evaluated

    try:
        from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score
    except ImportError:
        print("# scikit-learn not installed: cross-checks skipped")
    else:
        y_true = [r for (_, _, r) in test]
        y_pred = [preds[(u, m)] for (u, m, _) in test]
        assert math.isclose(math.sqrt(mean_squared_error(y_true, y_pred)), out["rmse"], rel_tol=1e-12)
        assert math.isclose(mean_absolute_error(y_true, y_pred), out["mae"], rel_tol=1e-12)
        for (t, s, ours) in sk_pairs:
            assert math.isclose(ndcg_score([t], [s], k=k), ours, rel_tol=1e-12), (t, s, ours)
        print("# scikit-learn cross-checks passed (RMSE, MAE, NDCG per user)")
    return out


def main():
    preds, catalogue, train, test = generate()
    print(f"# {len(train)} train and {len(test)} test ratings, {len(catalogue)} movies")
    for label, k, cap in (("K10", 10, None), ("K3_CAP7", 3, 7)):
        print(f"# k = {k}, max_ranking_users = {cap}")
        for name, value in metrics(preds, catalogue, train, test, k, cap).items():
            print(f"{label} {name} = {value!r}")


if __name__ == "__main__":
    main()
