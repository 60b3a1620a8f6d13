use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::*;

/// A scorer backed by a table of predictions, so expected numbers follow
/// from the table alone.
struct TableScorer {
    preds: HashMap<(i32, i32), f32>,
    /// Pushed by `score_catalogue` in this order (deliberately not sorted).
    catalogue: Vec<i32>,
    /// Users `score_catalogue` refuses.
    unknown: HashSet<i32>,
    fallback: f32,
}

impl Scorer for TableScorer {
    fn predict(&self, user: i32, movie: i32) -> f32 {
        self.preds
            .get(&(user, movie))
            .copied()
            .unwrap_or(self.fallback)
    }
    fn score_catalogue(&self, user: i32, _: &[Rated], out: &mut Vec<(i32, f32)>) -> bool {
        if self.unknown.contains(&user) {
            return false;
        }
        out.extend(self.catalogue.iter().map(|&m| (m, self.predict(user, m))));
        true
    }
}

fn r(user_id: i32, movie_id: i32, rating: f32) -> Rating {
    Rating {
        user_id,
        movie_id,
        rating,
        timestamp: 0,
    }
}

fn p(movie_id: i32, predicted: f32, actual: f32) -> Prediction {
    Prediction {
        movie_id,
        predicted,
        actual,
    }
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        "{what}: got {a}, expected {b}"
    );
}

fn opt_close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b, what),
        (None, None) => {}
        _ => panic!("{what}: got {a:?}, expected {b:?}"),
    }
}

fn assert_metrics(got: &EvalReport, want: &EvalReport) {
    opt_close(got.rmse, want.rmse, "rmse");
    opt_close(got.mae, want.mae, "mae");
    opt_close(got.precision_at_10, want.precision_at_10, "precision_at_10");
    opt_close(
        got.rank_precision_at_10,
        want.rank_precision_at_10,
        "rank_precision_at_10",
    );
    opt_close(got.recall_at_10, want.recall_at_10, "recall_at_10");
    opt_close(got.ndcg_at_10, want.ndcg_at_10, "ndcg_at_10");
    opt_close(got.coverage, want.coverage, "coverage");
    assert_eq!(got.test_ratings, want.test_ratings, "test_ratings");
    assert_eq!(got.users_evaluated, want.users_evaluated, "users_evaluated");
    // Reference scripts do not report the eligible count; hand examples do.
    if want.users_eligible.is_some() || want.ndcg_at_10.is_none() {
        assert_eq!(got.users_eligible, want.users_eligible, "users_eligible");
    }
}

// ---------------------------------------------------------------------------
// 1. A tiny example worked out by hand.
//
// Catalogue: movies 10, 20, 30, 40, 50. k = 2, rated threshold 3.5,
// relevance threshold 4.0. User 3 is unknown to score_catalogue and gets the
// fallback prediction 3.0.
//
// Predictions       10   20   30   40   50
//   user 1         4.5  4.0  4.0  2.0  4.0
//   user 2         3.0  5.0  4.5  1.0  3.5
//   user 3         3.0 (fallback)
// Train: (1, 10, 5.0), (2, 20, 4.0).
// Test (movie: actual, predicted, error = predicted - actual):
//   user 1: 20: 4.0, 4.0,  0.0 | 30: 4.5, 4.0, -0.5 | 40: 5.0, 2.0, -3.0 | 50: 2.0, 4.0, +2.0
//   user 2: 30: 3.0, 4.5, +1.5 | 40: 2.0, 1.0, -1.0 | 50: 4.0, 3.5, -0.5
//   user 3: 10: 4.0, 3.0, -1.0
//
// RMSE: squares 0 + .25 + 9 + 4 + 2.25 + 1 + .25 + 1 = 17.75 over 8 ratings,
//       sqrt(17.75 / 8) = sqrt(2.21875).
// MAE:  0 + .5 + 3 + 2 + 1.5 + 1 + .5 + 1 = 9.5, / 8 = 1.1875.
//
// Rated precision@2 (Surprise FAQ):
//   user 1: ranked 20 (4.0), 30 (4.0), 50 (4.0), 40 (2.0); the three-way tie
//           at 4.0 is broken by movieId, so the top 2 is {20, 30} (a
//           descending tie-break would give {50, 30} and 1/2). Both
//           recommended (>= 3.5), both relevant (4.0, 4.5): 2/2 = 1.
//   user 2: ranked 30 (4.5), 50 (3.5), 40 (1.0); top 2 = {30, 50}, both
//           recommended (3.5 counts); relevant: only 50 (4.0; 30 is 3.0): 1/2.
//   user 3: 10 predicted 3.0 < 3.5, nothing recommended: 0 by convention.
//   mean over the 3 test users: (1 + 0.5 + 0) / 3 = 0.5.
//
// Full catalogue, k = 2, relevant = test rating >= 4.0:
//   user 1: relevant {20, 30, 40}; candidates exclude train movie 10 (which
//           has the best score, 4.5): 20, 30, 50 (all 4.0, by id), 40 (2.0).
//           Top [20, 30]: 2 hits. precision 2/2 = 1; recall 2/3;
//           DCG = 1/log2(2) + 1/log2(3); IDCG over min(2, 3) = 2 hits is the
//           same, NDCG = 1.
//   user 2: relevant {50}; candidates exclude 20: 30 (4.5), 50 (3.5),
//           10 (3.0), 40 (1.0). Top [30, 50]: 1 hit at position 2.
//           precision 1/2; recall 1/1; DCG = 1/log2(3); IDCG = 1/log2(2) = 1;
//           NDCG = 1/log2(3) = 0.6309297535714575.
//   user 3: relevant {10} but unknown to score_catalogue: not ranked.
//   means over 2 users: precision 0.75, recall (2/3 + 1)/2 = 5/6,
//   NDCG (1 + 1/log2(3)) / 2. Coverage: {20, 30} ∪ {30, 50} = 3 of 5 = 0.6.
// ---------------------------------------------------------------------------

fn hand_example() -> (TableScorer, Vec<Rating>, Vec<Rating>) {
    let mut preds = HashMap::new();
    for (m, s) in [(10, 4.5), (20, 4.0), (30, 4.0), (40, 2.0), (50, 4.0)] {
        preds.insert((1, m), s);
    }
    for (m, s) in [(10, 3.0), (20, 5.0), (30, 4.5), (40, 1.0), (50, 3.5)] {
        preds.insert((2, m), s);
    }
    let scorer = TableScorer {
        preds,
        catalogue: vec![50, 40, 30, 20, 10],
        unknown: HashSet::from([3]),
        fallback: 3.0,
    };
    let train = vec![r(1, 10, 5.0), r(2, 20, 4.0)];
    let test = vec![
        r(2, 50, 4.0),
        r(1, 20, 4.0),
        r(1, 30, 4.5),
        r(3, 10, 4.0),
        r(1, 40, 5.0),
        r(1, 50, 2.0),
        r(2, 30, 3.0),
        r(2, 40, 2.0),
    ];
    (scorer, train, test)
}

fn k2() -> EvalOptions {
    EvalOptions {
        k: 2,
        ..EvalOptions::default()
    }
}

#[test]
fn hand_example_matches_arithmetic() {
    let (scorer, train, test) = hand_example();
    let got = evaluate(&scorer, &train, &test, &k2());
    let inv_log2_3 = 1.0 / 3f64.log2();
    let want = EvalReport {
        rmse: Some((17.75f64 / 8.0).sqrt()),
        mae: Some(1.1875),
        precision_at_10: Some(0.5),
        rank_precision_at_10: Some(0.75),
        recall_at_10: Some(5.0 / 6.0),
        ndcg_at_10: Some((1.0 + inv_log2_3) / 2.0),
        coverage: Some(0.6),
        test_ratings: 8,
        users_evaluated: 2,
        users_eligible: Some(3),
    };
    assert_metrics(&got, &want);
    close(inv_log2_3, 0.6309297535714575, "1/log2(3)");
}

#[test]
fn hand_example_sampling_takes_every_nth_eligible_user() {
    // Eligible users (a relevant test rating): 1, 2, 3. A cap of 1 takes
    // index 0 * 3 / 1 = 0, user 1: precision 1, recall 2/3, NDCG 1,
    // coverage {20, 30} = 2/5. Accuracy metrics are unaffected.
    let (scorer, train, test) = hand_example();
    let opts = EvalOptions {
        max_ranking_users: Some(1),
        ..k2()
    };
    let got = evaluate(&scorer, &train, &test, &opts);
    let want = EvalReport {
        rmse: Some((17.75f64 / 8.0).sqrt()),
        mae: Some(1.1875),
        precision_at_10: Some(0.5),
        rank_precision_at_10: Some(1.0),
        recall_at_10: Some(2.0 / 3.0),
        ndcg_at_10: Some(1.0),
        coverage: Some(0.4),
        test_ratings: 8,
        users_evaluated: 1,
        users_eligible: Some(3),
    };
    assert_metrics(&got, &want);
}

#[test]
fn hand_example_without_ranking() {
    let (scorer, train, test) = hand_example();
    let opts = EvalOptions {
        ranking: false,
        ..k2()
    };
    let got = evaluate(&scorer, &train, &test, &opts);
    let want = EvalReport {
        rmse: Some((17.75f64 / 8.0).sqrt()),
        mae: Some(1.1875),
        precision_at_10: Some(0.5),
        test_ratings: 8,
        users_evaluated: 3,
        ..EvalReport::default()
    };
    assert_metrics(&got, &want);
}

/// A ranking model (no ratings) scored from the history evaluation hands
/// it: it must get exactly the user's train ratings, sorted by movie, and
/// its report must have ranking metrics but no rating metrics.
struct HistoryScorer {
    catalogue: Vec<i32>,
    seen: Mutex<Vec<UserHistory>>,
}

/// A user and the history evaluation handed over.
type UserHistory = (i32, Vec<(i32, f32)>);

impl Scorer for HistoryScorer {
    fn predicts_ratings(&self) -> bool {
        false
    }
    fn predict(&self, _: i32, _: i32) -> f32 {
        panic!("a ranking model is never asked for ratings")
    }
    fn score_catalogue(&self, user: i32, history: &[Rated], out: &mut Vec<(i32, f32)>) -> bool {
        self.seen.lock().unwrap().push((
            user,
            history.iter().map(|h| (h.movie_id, h.stars)).collect(),
        ));
        // Score = the movie's id distance to the user's last rated movie.
        let last = history.last().map_or(0, |h| h.movie_id);
        out.extend(
            self.catalogue
                .iter()
                .map(|&m| (m, -((m - last).abs() as f32))),
        );
        true
    }
}

#[test]
fn ranking_models_get_histories_and_no_rating_metrics() {
    let (_, _, test) = hand_example();
    let train = vec![r(1, 30, 2.0), r(1, 10, 5.0), r(2, 20, 4.0), r(9, 40, 1.0)];
    let scorer = HistoryScorer {
        catalogue: vec![10, 20, 30, 40, 50],
        seen: Mutex::new(Vec::new()),
    };
    let got = evaluate(&scorer, &train, &test, &k2());
    assert_eq!((got.rmse, got.mae, got.precision_at_10), (None, None, None));
    let mut seen = scorer.seen.into_inner().unwrap();
    seen.sort_by_key(|s| s.0);
    assert_eq!(
        seen,
        vec![
            (1, vec![(10, 5.0), (30, 2.0)]),
            (2, vec![(20, 4.0)]),
            (3, vec![]),
        ]
    );
    // User 1 (last rated 30; 10 and 30 excluded): 20 and 40 tie at -10,
    // by id [20, 40]; relevant {20, 30, 40}: 2 hits, NDCG 1.
    // User 2 (last 20; 20 excluded): 10 and 30 tie at -10 → [10, 30];
    // relevant {50}: 0. User 3 (no history, last = 0): [10, 20]; relevant
    // {10}: hit at 1, NDCG 1. Mean NDCG 2/3, precision (1 + 0 + 1/2) / 3.
    close(got.ndcg_at_10.unwrap(), 2.0 / 3.0, "ndcg");
    close(got.rank_precision_at_10.unwrap(), 0.5, "precision");
    assert_eq!(got.users_evaluated, 3);
}

#[test]
fn hand_example_pure_functions() {
    // User 1's test predictions from the table above.
    let u1 = [
        p(20, 4.0, 4.0),
        p(30, 4.0, 4.5),
        p(40, 2.0, 5.0),
        p(50, 4.0, 2.0),
    ];
    // Squares 0 + .25 + 9 + 4 = 13.25 over 4; absolutes 0 + .5 + 3 + 2 = 5.5.
    close(rmse(&u1), (13.25f64 / 4.0).sqrt(), "rmse");
    close(mae(&u1), 5.5 / 4.0, "mae");
    close(precision_at_k_rated(&u1, 2, 3.5), 1.0, "rated p@2");
    // k = 3 adds 50 (recommended at 4.0, actual 2.0): 2/3.
    close(precision_at_k_rated(&u1, 3, 3.5), 2.0 / 3.0, "rated p@3");
    // k = 4 adds 40 (predicted 2.0, not recommended): still 2/3.
    close(precision_at_k_rated(&u1, 4, 3.5), 2.0 / 3.0, "rated p@4");
    // k = 5 is past the list: the same four.
    close(precision_at_k_rated(&u1, 5, 3.5), 2.0 / 3.0, "rated p@5");
    assert_eq!(precision_at_k_rated(&u1, 0, 3.5), 0.0, "rated p@0");

    let mut scores = vec![(50, 3.5), (40, 1.0), (30, 4.5), (10, 3.0)];
    let mut top = Vec::new();
    top_k_unrated(&mut scores, &[20], 2, &mut top);
    assert_eq!(top, [30, 50]);
    let m = ranking_metrics(&top, &[50], 2);
    close(m.precision, 0.5, "precision");
    close(m.recall, 1.0, "recall");
    close(m.ndcg, 0.6309297535714575, "ndcg");
    close(catalogue_coverage(&[20, 30, 30, 50], 5), 0.6, "coverage");
}

// ---------------------------------------------------------------------------
// 2. Against scripts/reference/eval_metrics.py, which generates the same data
// with the same LCG and computes the metrics independently (Surprise's FAQ
// code for the rated precision, textbook formulas for the rest, cross-checked
// with scikit-learn's mean_squared_error, mean_absolute_error, ndcg_score).
// ---------------------------------------------------------------------------

/// Numerical Recipes' LCG, top 24 bits; identical to `Lcg` in the script.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
}

/// Mirrors `generate()` in the script: 20 users x 30 movies, ids a
/// permutation of 2..=31, predictions in 0.25 steps (many ties), 45% rated,
/// a quarter of those in test; users 7 and 14 unknown to score_catalogue.
fn reference_example() -> (TableScorer, Vec<Rating>, Vec<Rating>) {
    let mut rng = Lcg(20_240_601);
    let mut preds = HashMap::new();
    let mut catalogue = Vec::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for u in 1..=20 {
        for m in 1..=30 {
            let mid = (m * 17) % 31 + 1;
            if u == 1 {
                catalogue.push(mid);
            }
            preds.insert((u, mid), 0.5 + (rng.next() % 19) as f32 * 0.25);
            if rng.next() % 100 < 45 {
                let rating = (rng.next() % 10 + 1) as f32 * 0.5;
                if rng.next().is_multiple_of(4) {
                    test.push(r(u, mid, rating));
                } else {
                    train.push(r(u, mid, rating));
                }
            }
        }
    }
    let scorer = TableScorer {
        preds,
        catalogue,
        unknown: HashSet::from([7, 14]),
        fallback: 3.0,
    };
    (scorer, train, test)
}

#[test]
fn reference_numbers_match_python() {
    // Printed by `python3 scripts/reference/eval_metrics.py` (lines K10 ...),
    // which reported "216 train and 69 test ratings, 30 movies" and
    // "scikit-learn cross-checks passed".
    let (scorer, train, test) = reference_example();
    assert_eq!((train.len(), test.len()), (216, 69));
    let got = evaluate(&scorer, &train, &test, &EvalOptions::default());
    let want = EvalReport {
        rmse: Some(1.8197786137051262),
        mae: Some(1.4565217391304348),
        precision_at_10: Some(0.31666666666666665),
        rank_precision_at_10: Some(0.07777777777777778),
        recall_at_10: Some(0.6111111111111112),
        ndcg_at_10: Some(0.41208729060734167),
        coverage: Some(1.0),
        test_ratings: 69,
        users_evaluated: 9,
        users_eligible: None,
    };
    assert_metrics(&got, &want);
}

#[test]
fn reference_numbers_match_python_k3_sampled() {
    // Same script, lines K3_CAP7 (k = 3, max_ranking_users = 7).
    let (scorer, train, test) = reference_example();
    let opts = EvalOptions {
        k: 3,
        max_ranking_users: Some(7),
        ..EvalOptions::default()
    };
    let got = evaluate(&scorer, &train, &test, &opts);
    let want = EvalReport {
        rmse: Some(1.8197786137051262),
        mae: Some(1.4565217391304348),
        precision_at_10: Some(0.31666666666666665),
        rank_precision_at_10: Some(0.1111111111111111),
        recall_at_10: Some(0.3333333333333333),
        ndcg_at_10: Some(0.25),
        coverage: Some(0.4),
        test_ratings: 69,
        users_evaluated: 6,
        users_eligible: None,
    };
    assert_metrics(&got, &want);
}

// ---------------------------------------------------------------------------
// 3. Edge cases and properties.
// ---------------------------------------------------------------------------

#[test]
fn empty_test_set_gives_no_metrics() {
    let (scorer, train, _) = hand_example();
    let got = evaluate(&scorer, &train, &[], &EvalOptions::default());
    assert_eq!(got, EvalReport::default());
    assert_eq!(rmse(&[]), 0.0);
    assert_eq!(mae(&[]), 0.0);
    assert_eq!(precision_at_k_rated(&[], 10, 3.5), 0.0);
    assert_eq!(ndcg_at_k(&[1, 2], &[], 10), 0.0);
    assert_eq!(recall_at_k(&[1, 2], &[], 10), 0.0);
    assert_eq!(catalogue_coverage(&[], 0), 0.0);
    // And it serializes (no NaN for JSON to reject).
    let json = serde_json::to_string(&got).unwrap();
    assert_eq!(serde_json::from_str::<EvalReport>(&json).unwrap(), got);
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let (scorer, train, test) = hand_example();
    for opts in [
        EvalOptions {
            k: 0,
            ..EvalOptions::default()
        },
        EvalOptions {
            k: usize::MAX,
            ..EvalOptions::default()
        },
        EvalOptions {
            max_ranking_users: Some(0),
            ..EvalOptions::default()
        },
        EvalOptions {
            max_ranking_users: Some(usize::MAX),
            ..EvalOptions::default()
        },
    ] {
        let m = evaluate(&scorer, &train, &test, &opts);
        assert_eq!(m.test_ratings, 8);
        assert!(
            m.rank_precision_at_10.is_none_or(f64::is_finite)
                && m.coverage.is_none_or(|c| c <= 1.0)
        );
    }
    // A scorer that knows no one: no ranking metrics, 0 users.
    let nobody = TableScorer {
        unknown: HashSet::from([1, 2, 3]),
        ..hand_example().0
    };
    let m = evaluate(&nobody, &train, &test, &k2());
    assert_eq!(
        (m.users_evaluated, m.ndcg_at_10, m.coverage),
        (0, None, None)
    );
}

#[test]
fn ties_break_by_movie_id_and_nan_sorts_last() {
    let mut scores = vec![
        (9, 1.0),
        (3, f32::NAN),
        (5, 2.0),
        (1, 2.0),
        (7, 2.0),
        (2, 0.5),
    ];
    let mut top = Vec::new();
    top_k_unrated(&mut scores, &[], 6, &mut top);
    assert_eq!(top, [1, 5, 7, 9, 2, 3]);
    // Rated movies (including ones outside the catalogue) are skipped.
    let mut scores = vec![
        (9, 1.0),
        (3, f32::NAN),
        (5, 2.0),
        (1, 2.0),
        (7, 2.0),
        (2, 0.5),
    ];
    top_k_unrated(&mut scores, &[1, 4, 7, 100], 3, &mut top);
    assert_eq!(top, [5, 9, 2]);
    // Fewer candidates than k: a short list, and precision still divides by k.
    let mut scores = vec![(1, 3.0), (2, 4.0)];
    top_k_unrated(&mut scores, &[2], 10, &mut top);
    assert_eq!(top, [1]);
    close(
        precision_at_k(&top, &[1], 10),
        0.1,
        "precision of a short list",
    );
    // k = 0 asks for nothing, whatever was rated.
    let mut scores = vec![(1, 3.0), (2, 4.0), (3, 1.0)];
    top_k_unrated(&mut scores, &[2], 0, &mut top);
    assert!(top.is_empty(), "{top:?}");
}

#[test]
fn ndcg_textbook_values() {
    // Hits at positions 1 and 3 of 3 relevant, k = 3:
    // DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/2.
    let want = 1.5 / (1.0 + 1.0 / 3f64.log2() + 0.5);
    close(ndcg_at_k(&[1, 2, 3], &[1, 3, 8], 3), want, "ndcg");
    // Only the first k positions count.
    close(ndcg_at_k(&[2, 4, 1], &[1], 2), 0.0, "ndcg beyond k");
    close(ndcg_at_k(&[1, 4, 5], &[1], 10), 1.0, "perfect");
}

#[test]
fn sampling_is_evenly_spread_and_exact() {
    assert_eq!(sampled_indices(10, Some(3)), [0, 3, 6]);
    assert_eq!(sampled_indices(10, Some(4)), [0, 2, 5, 7]);
    assert_eq!(sampled_indices(3, Some(5)), [0, 1, 2]);
    assert_eq!(sampled_indices(3, None), [0, 1, 2]);
    assert!(sampled_indices(3, Some(0)).is_empty());
    let s = sampled_indices(160_000, Some(1000));
    assert_eq!(s.len(), 1000);
    assert!(s.windows(2).all(|w| w[1] - w[0] == 160));
}

/// A cheap deterministic pseudo-random score in 0.5..=5.0 with many ties.
fn hashed_score(user: i32, movie: i32) -> f32 {
    let mut x = (user as u32).wrapping_mul(0x9E37_79B9) ^ (movie as u32).wrapping_mul(0x85EB_CA6B);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^= x >> 12;
    0.5 + (x % 91) as f32 * 0.05
}

struct HashScorer {
    movies: i32,
    asked: Option<Mutex<Vec<i32>>>,
}

impl Scorer for HashScorer {
    fn predict(&self, user: i32, movie: i32) -> f32 {
        hashed_score(user, movie)
    }
    fn score_catalogue(&self, user: i32, _: &[Rated], out: &mut Vec<(i32, f32)>) -> bool {
        if let Some(asked) = &self.asked {
            asked.lock().unwrap().push(user);
        }
        out.extend((1..=self.movies).map(|m| (m, hashed_score(user, m))));
        true
    }
}

/// MovieLens-small-sized data: `users` users, about 60 train and 15 test
/// ratings each, drawn from `movies` movies.
fn synthetic(users: i32, movies: i32, per_user: u32) -> (Vec<Rating>, Vec<Rating>) {
    let mut rng = Lcg(7);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for u in 1..=users {
        let mut seen = HashSet::new();
        for i in 0..per_user {
            let m = (rng.next() % movies as u32) as i32 + 1;
            if !seen.insert(m) {
                continue;
            }
            let rating = (rng.next() % 10 + 1) as f32 * 0.5;
            if i % 5 == 0 {
                test.push(r(u, m, rating));
            } else {
                train.push(r(u, m, rating));
            }
        }
    }
    (train, test)
}

#[test]
fn selection_agrees_with_full_sort() {
    // top_k_unrated's partial selection against the obvious implementation.
    let mut buf = Vec::new();
    for user in 1..200 {
        let rated: Vec<i32> = {
            let mut v: Vec<i32> = (0..(user % 40))
                .map(|i| (i * 37 + user) % 500 + 1)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let k = (user as usize % 25) + 1;
        let mut scores: Vec<(i32, f32)> = (1..=500).map(|m| (m, hashed_score(user, m))).collect();
        let mut naive: Vec<(i32, f32)> = scores
            .iter()
            .copied()
            .filter(|(m, _)| rated.binary_search(m).is_err())
            .collect();
        naive.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        let naive: Vec<i32> = naive.iter().take(k).map(|x| x.0).collect();
        top_k_unrated(&mut scores, &rated, k, &mut buf);
        assert_eq!(buf, naive, "user {user}, k {k}");
    }
}

#[test]
fn result_does_not_depend_on_thread_count() {
    let (train, test) = synthetic(300, 2000, 75);
    let scorer = HashScorer {
        movies: 2000,
        asked: None,
    };
    let opts = EvalOptions::default();
    let many = evaluate(&scorer, &train, &test, &opts);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| evaluate(&scorer, &train, &test, &opts));
    assert_eq!(many, one);
    assert!(many.users_evaluated > 250 && many.coverage > Some(0.0));
}

#[test]
fn movielens_small_scale_runs() {
    // ~610 users x 9,742 movies, the size of ml-latest-small.
    let (train, test) = synthetic(610, 9742, 120);
    let scorer = HashScorer {
        movies: 9742,
        asked: None,
    };
    let start = std::time::Instant::now();
    let m = evaluate(&scorer, &train, &test, &EvalOptions::default());
    eprintln!("610 users x 9742 movies: {:?} ({m:?})", start.elapsed());
    assert_eq!(m.test_ratings, test.len() as u64);
    assert!(m.users_evaluated > 500);
}

#[test]
fn large_catalogue_with_sampling_ranks_only_the_sample() {
    // 160k users x 60k movies, ranking capped at 200 users.
    let users = 160_000;
    let test: Vec<Rating> = (1..=users).map(|u| r(u, u % 60_000 + 1, 4.5)).collect();
    let train: Vec<Rating> = (1..=users)
        .map(|u| r(u, (u * 7) % 60_000 + 1, 3.0))
        .collect();
    let scorer = HashScorer {
        movies: 60_000,
        asked: Some(Mutex::new(Vec::new())),
    };
    let opts = EvalOptions {
        max_ranking_users: Some(200),
        ..EvalOptions::default()
    };
    let m = evaluate(&scorer, &train, &test, &opts);
    assert_eq!((m.test_ratings, m.users_evaluated), (160_000, 200));
    let mut asked = scorer.asked.unwrap().into_inner().unwrap();
    asked.sort_unstable();
    let expected: Vec<i32> = (0..200).map(|i| i * 800 + 1).collect();
    assert_eq!(asked, expected);
}
