//! Quality bars on MovieLens ml-latest-small, through the same path as
//! `cinematch load` + `cinematch train`: the default load (random 70/30
//! split, seed 42) into a SQLite file, then a fit on the train split (seed
//! 42, or the five seeds of [`SVD_SEEDS`] for the like-for-like SVD
//! comparison) evaluated by RMSE on the test split.
//!
//! The Surprise figures below are constants measured on exactly that split by
//!
//! ```text
//! scripts/compare_surprise.sh        # -> scripts/reference/surprise_compare.py
//! ```
//!
//! which loads the data with `cinematch load`, reads the stored train and
//! test rows back from the SQLite file with Python's sqlite3 module, trains
//! Surprise on `Dataset.load_from_df(train).build_full_trainset()` and scores
//! `accuracy.rmse(algo.test(test_rows))`.
//!
//! Cost: one load and nine fits, about 3.5 s wall (5 s CPU) in the dev test
//! profile on 2 cores, so the file runs in CI unignored.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use cinematch::eval::ndcg_at_k;
use cinematch::models::{self, Algo, Hyperparams, Model, SvdParams};
use cinematch::pipeline::load::{self, LoadOptions, Source};
use cinematch::progress::Silent;
use cinematch::recommend::{Recommender, Request, Strategy};
use cinematch::registry::{self, TrainOptions};
use cinematch::{Rated, Split};

/// The issue's bar for the best tuned CineMatch algorithms (`svd` and `als`
/// defaults): "RMSE below 0.860, i.e. better than every Surprise algorithm
/// on such a split". The tests hold them to the stricter of this and every
/// Surprise figure measured on our exact split ([`best_surprise`]).
const TUNED_BAR: f64 = 0.860;

// Reference values measured on 2026-11-26 with scikit-surprise 1.1.5 (PyPI
// manylinux wheel), numpy 2.4.6, pandas 3.1.1, CPython 3.11.7, on the split
// `cinematch load ../shared/data/ml-latest-small` stores (70,585 train /
// 30,251 test ratings), by
//
//     scripts/compare_surprise.sh                # SVD++ too: SVDPP=1
//
// Full precision as printed by the script; see its header for the exact
// Surprise calls.

/// Surprise 1.1.5 `SVD()` (its defaults: 100 factors, 20 epochs, lr 0.005,
/// reg 0.02, init N(0, 0.1²), biased) on this split. Surprise seeds its SVD
/// from numpy's global RNG unless `random_state` is set, so the script sets
/// it: random_state=42 gives SURPRISE_SVD_SEED42; the result varies with the
/// seed (0.8792..0.8832, sd 0.0016), so the bar is the mean over
/// random_state 42, 0, 1, 2, 3.
const SURPRISE_SVD_SEED42: f64 = 0.8818056024137535;
const SURPRISE_SVD_MEAN5: f64 = 0.880959055065748;

/// Surprise 1.1.5 `BaselineOnly()` (ALS, reg_u 15, reg_i 10, 10 epochs) on
/// this split; deterministic.
const SURPRISE_BASELINE: f64 = 0.8762597199809182;

/// Surprise 1.1.5 `KNNBaseline(sim_options={"name": "pearson_baseline",
/// "user_based": False})` on this split; deterministic. (The issue quotes
/// 0.860 for "a 70/30 random split"; on ours it is 0.8615.)
const SURPRISE_KNN_BASELINE: f64 = 0.8615153769264562;

/// Surprise 1.1.5 `SVDpp(random_state=42)` (its defaults: 20 factors, 20
/// epochs, lr 0.007, reg 0.02) on this split.
const SURPRISE_SVDPP_SEED42: f64 = 0.8737735443548489;

/// The seeds CineMatch's SVD is trained with for the like-for-like
/// comparison: as many fits as Surprise's mean, so both sides are means of
/// five (CineMatch's own seed-to-seed sd on this split is about 0.001).
const SVD_SEEDS: [u64; 5] = [42, 0, 1, 2, 3];

/// The best (lowest) RMSE of every Surprise algorithm measured on this split.
fn best_surprise() -> f64 {
    [
        SURPRISE_SVD_MEAN5,
        SURPRISE_SVD_SEED42,
        SURPRISE_BASELINE,
        SURPRISE_KNN_BASELINE,
        SURPRISE_SVDPP_SEED42,
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min)
}

/// ml-latest-small loaded once (default options) and shared by every test;
/// the tests only read it (`fit_and_evaluate` records nothing).
fn db() -> &'static common::SqliteDb {
    static DB: OnceLock<common::SqliteDb> = OnceLock::new();
    DB.get_or_init(|| {
        let db = common::SqliteDb::new();
        let mut s = db.store();
        load::load(
            s.as_mut(),
            &Source::Dir(common::shared_data("ml-latest-small")),
            &LoadOptions::default(),
            &Silent,
        )
        .expect("load ml-latest-small");
        db
    })
}

/// Test RMSE of `params` trained with `seed` on the stored train split.
fn rmse_seeded(params: Hyperparams, seed: u64) -> f64 {
    let mut s = db().store();
    let mut opts = TrainOptions::new(params);
    opts.seed = seed;
    opts.eval.ranking = false;
    let t = registry::fit_and_evaluate(s.as_mut(), &opts, &Silent).expect("fit");
    println!(
        "{:?} seed {seed}: RMSE {:.6} (fit {:.2}s)",
        opts.params,
        t.report.rmse.unwrap(),
        t.train_seconds
    );
    t.report.rmse.unwrap()
}

/// Test RMSE of `params` trained with seed 42 (the CLI's default).
fn rmse(params: Hyperparams) -> f64 {
    rmse_seeded(params, 42)
}

#[test]
fn reference_values_are_filled_in() {
    // Guards against a NaN placeholder, which would make every comparison
    // below false and the `<=` bars fail for the wrong reason (or, negated,
    // pass vacuously).
    for v in [
        SURPRISE_SVD_SEED42,
        SURPRISE_SVD_MEAN5,
        SURPRISE_BASELINE,
        SURPRISE_KNN_BASELINE,
        SURPRISE_SVDPP_SEED42,
    ] {
        assert!((0.8..0.95).contains(&v), "implausible reference RMSE {v}");
    }
    assert_eq!(best_surprise(), SURPRISE_KNN_BASELINE);
}

#[test]
fn tuned_svd_beats_bar() {
    let bar = TUNED_BAR.min(best_surprise());
    let r = rmse(Hyperparams::default_for(Algo::Svd));
    assert!(r < bar, "svd (defaults) RMSE {r:.4} >= {bar}");
}

#[test]
fn tuned_als_beats_bar() {
    let bar = TUNED_BAR.min(best_surprise());
    let r = rmse(Hyperparams::default_for(Algo::Als));
    assert!(r < bar, "als (defaults) RMSE {r:.4} >= {bar}");
}

#[test]
fn svd_with_surprise_settings_matches_surprise_svd() {
    // The same configuration as Surprise's SVD(): the CLI's
    // `--factors 100 --epochs 20 --lr 0.005 --reg 0.02 --init-std 0.1`.
    let params = SvdParams {
        factors: 100,
        epochs: 20,
        lr: 0.005,
        reg: 0.02,
        init_std: 0.1,
        ..SvdParams::default()
    };
    assert_eq!(params, SvdParams::surprise());
    let runs: Vec<f64> = SVD_SEEDS
        .iter()
        .map(|&seed| rmse_seeded(Hyperparams::Svd(params.clone()), seed))
        .collect();
    let mean = runs.iter().sum::<f64>() / runs.len() as f64;
    assert!(
        mean <= SURPRISE_SVD_MEAN5,
        "svd (Surprise settings) mean RMSE over seeds {SVD_SEEDS:?} {mean:.6} ({runs:.4?}) > \
         Surprise SVD {SURPRISE_SVD_MEAN5:.6} (mean of random_state 42, 0, 1, 2, 3; \
         random_state=42 alone: {SURPRISE_SVD_SEED42:.6})"
    );
    // Same update rules, same initialization: any seed lands in the same
    // neighbourhood, not merely the mean (Surprise's own seeds span 0.004).
    for (seed, r) in SVD_SEEDS.iter().zip(&runs) {
        assert!(
            (r - SURPRISE_SVD_MEAN5).abs() < 0.005,
            "svd (Surprise settings) seed {seed}: RMSE {r:.6} far from Surprise's {SURPRISE_SVD_MEAN5:.6}"
        );
    }
}

#[test]
fn baseline_matches_surprise_baseline_only() {
    // The same estimator (ALS on the biases, reg_u 15, reg_i 10, 10 epochs):
    // only float rounding may differ (measured: 5e-10).
    let r = rmse(Hyperparams::default_for(Algo::Baseline));
    assert!(
        (r - SURPRISE_BASELINE).abs() <= 1e-4,
        "baseline RMSE {r:.6} vs Surprise BaselineOnly {SURPRISE_BASELINE:.6}"
    );
}

// ---------------------------------------------------------------------------
// Ranking: what a user is shown out of the whole catalogue.
//
// Reference values measured on the same split (seed 42) by
// `scripts/reference/ranking_reference.py` (numpy/scipy, independent of this
// crate; its metric matches `scripts/reference/eval_metrics.py` to 1e-9):
// the most-rated list of the train split, the same for everyone, and EASE
// computed by numpy's dense inverse with the settings CineMatch's defaults
// were chosen as (on a validation split carved from train, never test).
// ---------------------------------------------------------------------------

/// NDCG@10 of the most-rated train movies as everyone's list.
const REFERENCE_MOST_RATED_NDCG: f64 = 0.1929;
/// The issue's bar for the ranking champion's NDCG@10.
const RANKING_BAR: f64 = 0.33;

fn ranking_report(params: Hyperparams) -> cinematch::eval::EvalReport {
    let mut s = db().store();
    let mut opts = TrainOptions::new(params);
    opts.seed = 42;
    let t = registry::fit_and_evaluate(s.as_mut(), &opts, &Silent).expect("fit");
    println!(
        "{:?}: NDCG@10 {:?} recall@10 {:?} P@10 {:?} (fit {:.2}s)",
        opts.params,
        t.report.ndcg_at_10,
        t.report.recall_at_10,
        t.report.rank_precision_at_10,
        t.train_seconds
    );
    t.report
}

#[test]
fn ease_defaults_clear_the_ranking_bar() {
    let r = ranking_report(Hyperparams::default_for(Algo::Ease));
    let ndcg = r.ndcg_at_10.expect("ranked");
    assert!(
        ndcg >= RANKING_BAR,
        "ease NDCG@10 {ndcg:.4} < {RANKING_BAR}"
    );
    assert!(
        ndcg > 1.7 * REFERENCE_MOST_RATED_NDCG,
        "ease NDCG@10 {ndcg:.4} is not far above the most-rated list's {REFERENCE_MOST_RATED_NDCG}"
    );
    // A ranking model predicts no stars, so it has no RMSE.
    assert_eq!((r.rmse, r.mae, r.precision_at_10), (None, None, None));
    assert_eq!(
        r.users_evaluated, 603,
        "every user with a relevant test rating is ranked"
    );
}

#[test]
fn ials_defaults_beat_the_most_rated_list() {
    let r = ranking_report(Hyperparams::default_for(Algo::Ials));
    let ndcg = r.ndcg_at_10.expect("ranked");
    assert!(
        ndcg > 1.6 * REFERENCE_MOST_RATED_NDCG,
        "ials NDCG@10 {ndcg:.4} vs most-rated {REFERENCE_MOST_RATED_NDCG}"
    );
}

fn all_ratings() -> Vec<cinematch::Rating> {
    let mut s = db().store();
    let mut all = s.ratings(Split::Train).expect("train");
    all.extend(s.ratings(Split::Test).expect("test"));
    all
}

fn by_user(ratings: &[cinematch::Rating]) -> BTreeMap<i32, Vec<cinematch::Rating>> {
    let mut m: BTreeMap<i32, Vec<cinematch::Rating>> = BTreeMap::new();
    for r in ratings {
        m.entry(r.user_id).or_default().push(*r);
    }
    m
}

fn recommender(model: Model) -> Recommender {
    let movies = db().store().movies().expect("movies");
    Recommender::new("test".into(), model, movies, &[])
}

/// Issue 12's consistency bar: a user seen in training and folded in again
/// from the same ratings (`ials`, the default CG training against the exact
/// fold-in solve) gets the trained top 10 in at least 9 of 10 places on
/// average over 100 users.
#[test]
fn ials_fold_in_reproduces_the_trained_lists() {
    let train = db().store().ratings(Split::Train).expect("train");
    let model =
        models::fit(&Hyperparams::default_for(Algo::Ials), &train, 42, &Silent).expect("fit");
    let rec = recommender(model);
    let users = by_user(&train);
    let mut same = 0usize;
    let mut lists = 0usize;
    for (user, rs) in users.iter().step_by(6).take(100) {
        let history: Vec<Rated> = rs.iter().map(Rated::from).collect();
        let trained = Request::new(*user, 10, &history);
        let folded = Request {
            fresh: true,
            ..trained
        };
        let (s1, a) = rec.recommend_ids(&trained).expect("trained list");
        let (s2, b) = rec.recommend_ids(&folded).expect("folded list");
        assert_eq!((s1, s2), (Strategy::Model, Strategy::FoldIn));
        same += a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.movie_id == y.movie_id)
            .count();
        lists += 1;
    }
    assert_eq!(lists, 100);
    let mean = same as f64 / lists as f64;
    println!("folded-in top 10 equals the trained top 10 in {mean:.2} of 10 places on average");
    assert!(mean >= 9.0, "only {mean:.2} of 10 places agree");
}

/// Issue 12's new-user bar: 100 users with at least 20 ratings are held
/// out, the model trains on everyone else; each held-out user posts 10 of
/// their ratings (a seeded random choice per user) and gets a top 10 folded
/// in from them, scored against their remaining ratings (relevant >= 4.0).
/// EASE and iALS must each reach 1.05x the NDCG@10 of the most-rated list
/// (the same 10 posted movies left out). (Posting each user's 10 *earliest* ratings
/// instead is a harder protocol: MovieLens users' first ratings are an
/// onboarding of popular movies; there EASE reaches 0.96x, see the README.)
#[test]
fn new_users_folded_in_beat_the_most_rated_list() {
    let all = all_ratings();
    let users = by_user(&all);
    let mut eligible: Vec<i32> = users
        .iter()
        .filter(|(_, rs)| rs.len() >= 20)
        .map(|(u, _)| *u)
        .collect();
    eligible.shuffle(&mut ChaCha8Rng::seed_from_u64(42));
    let held: BTreeSet<i32> = eligible.into_iter().take(100).collect();
    let rest: Vec<cinematch::Rating> = all
        .iter()
        .filter(|r| !held.contains(&r.user_id))
        .copied()
        .collect();
    // The most-rated list of the training data, ties to the lower id.
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &rest {
        *counts.entry(r.movie_id).or_default() += 1;
    }
    let mut most_rated: Vec<(i32, usize)> = counts.into_iter().collect();
    most_rated.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let ndcg = |algo: Algo| -> (f64, f64) {
        let model = models::fit(&Hyperparams::default_for(algo), &rest, 42, &Silent).expect("fit");
        let rec = recommender(model);
        let (mut sum_model, mut sum_pop, mut n) = (0.0, 0.0, 0usize);
        for user in &held {
            let mut rs = users[user].clone();
            rs.sort_by_key(|r| (r.timestamp, r.movie_id));
            rs.shuffle(&mut ChaCha8Rng::seed_from_u64(*user as u64));
            let (posted, remaining) = rs.split_at(10);
            let mut relevant: Vec<i32> = remaining
                .iter()
                .filter(|r| r.rating >= 4.0)
                .map(|r| r.movie_id)
                .collect();
            relevant.sort_unstable();
            if relevant.is_empty() {
                continue;
            }
            let history: Vec<Rated> = posted.iter().map(Rated::from).collect();
            let req = Request {
                fresh: true,
                ..Request::new(*user, 10, &history)
            };
            let (strategy, top) = rec.recommend_ids(&req).expect("list");
            assert_eq!(strategy, Strategy::FoldIn, "{algo} user {user}");
            let ids: Vec<i32> = top.iter().map(|r| r.movie_id).collect();
            let posted_ids: BTreeSet<i32> = posted.iter().map(|r| r.movie_id).collect();
            assert!(ids.iter().all(|m| !posted_ids.contains(m)));
            let pop: Vec<i32> = most_rated
                .iter()
                .map(|(m, _)| *m)
                .filter(|m| !posted_ids.contains(m))
                .take(10)
                .collect();
            sum_model += ndcg_at_k(&ids, &relevant, 10);
            sum_pop += ndcg_at_k(&pop, &relevant, 10);
            n += 1;
        }
        assert!(n >= 90, "{n} held-out users with relevant ratings");
        (sum_model / n as f64, sum_pop / n as f64)
    };
    let (ease, pop) = ndcg(Algo::Ease);
    let (ials, _) = ndcg(Algo::Ials);
    println!(
        "new users, 10 posted ratings: NDCG@10 ease {ease:.4} ({:.3}x), ials {ials:.4} ({:.3}x), \
         most-rated {pop:.4}",
        ease / pop,
        ials / pop
    );
    assert!(
        ease >= 1.05 * pop,
        "ease {ease:.4} < 1.05 x most-rated {pop:.4}"
    );
    assert!(
        ials >= 1.05 * pop,
        "ials {ials:.4} < 1.05 x most-rated {pop:.4}"
    );
}

// --- the time-ordered backtest (issue 17) -----------------------------------------------

/// `cinematch backtest` on ml-latest-small, two weeks after the earliest
/// 95%, the `never` policy: the most-rated baseline of each week is
/// recomputed here from `ratings.csv` alone (sort by time, cut, count,
/// rank, NDCG@10 with binary gains on each user's new 4+ star movies) and
/// must match the report to 1e-9; the served lists are scored for the same
/// users.
#[test]
fn backtest_baselines_match_a_recount_from_the_file() {
    use cinematch::data::stream::TimeCut;
    use cinematch::pipeline::backtest::{backtest, BacktestOptions, Policy, ReplaySource};

    let dir = common::shared_data("ml-latest-small");
    let work = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut results_store = cinematch::store::open(&format!(
        "sqlite://{}",
        results.path().join("r.db").display()
    ))
    .unwrap();
    let mut opts = BacktestOptions::new(ReplaySource::Release(dir.clone()));
    opts.cut = TimeCut::Share {
        weeks: 2,
        history_fraction: 0.95,
    };
    opts.policies = vec![Policy::Never];
    opts.workdir = Some(work.path().to_path_buf());
    opts.mlflow = None;
    let report = backtest(results_store.as_mut(), &opts, &Silent).unwrap();
    let policy = &report.policies[0];
    assert_eq!(policy.weeks.len(), 2);
    assert_eq!(policy.retrains, 0, "the never policy retrained");

    // The recount.
    let text = std::fs::read_to_string(dir.join("ratings.csv")).unwrap();
    let mut rows: Vec<(i64, i32, i32, f32)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[3].parse().unwrap(),
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
    let n = rows.len();
    let history = (n as f64 * 0.95).round() as usize;
    let tail = n - history;
    let bounds = [history, history + tail / 2 + tail % 2, n];
    assert_eq!(report.history_ratings as usize, history);
    for w in 0..2 {
        let (start, end) = (bounds[w], bounds[w + 1]);
        let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
        let mut known: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
        for &(_, u, m, _) in &rows[..start] {
            *counts.entry(m).or_default() += 1;
            known.entry(u).or_default().insert(m);
        }
        let mut ranked: Vec<(i32, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut relevant: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
        for &(_, u, m, r) in &rows[start..end] {
            if r >= 4.0 && !known.get(&u).is_some_and(|k| k.contains(&m)) {
                relevant.entry(u).or_default().insert(m);
            }
        }
        let mut sum = 0.0;
        for (u, rel) in &relevant {
            let empty = BTreeSet::new();
            let rated = known.get(u).unwrap_or(&empty);
            let top: Vec<i32> = ranked
                .iter()
                .map(|p| p.0)
                .filter(|m| !rated.contains(m))
                .take(10)
                .collect();
            let dcg: f64 = top
                .iter()
                .enumerate()
                .filter(|(_, m)| rel.contains(m))
                .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
                .sum();
            let idcg: f64 = (0..rel.len().min(10))
                .map(|i| 1.0 / ((i + 2) as f64).log2())
                .sum();
            sum += dcg / idcg;
        }
        let week = &policy.weeks[w];
        let scores = &week.scores;
        assert_eq!(week.ratings as usize, end - start, "week {}", w + 1);
        assert_eq!(
            scores.most_rated.all.users as usize,
            relevant.len(),
            "week {}",
            w + 1
        );
        let want = sum / relevant.len() as f64;
        assert!(
            (scores.most_rated.all.ndcg_at_10 - want).abs() < 1e-9,
            "week {}: most-rated NDCG@10 {} vs the recount's {want}",
            w + 1,
            scores.most_rated.all.ndcg_at_10
        );
        assert_eq!(scores.served.all.users, scores.most_rated.all.users);
        assert!(scores.served.all.ndcg_at_10 > 0.0);
        let new = relevant.keys().filter(|u| !known.contains_key(u)).count();
        assert_eq!(scores.most_rated.new.users as usize, new, "week {}", w + 1);
    }
    // Recorded: one row for the policy, its means as the report's.
    let recorded = cinematch::pipeline::backtest::recorded(results_store.as_mut(), 10).unwrap();
    assert_eq!(recorded.len(), 1);
    let (stored, measured) = (&recorded[0].1.mean, &policy.mean);
    for (a, b) in [
        (stored.served.all, measured.served.all),
        (stored.most_rated.all, measured.most_rated.all),
        (stored.trending.new, measured.trending.new),
    ] {
        assert_eq!(a.users, b.users);
        assert!(
            (a.ndcg_at_10 - b.ndcg_at_10).abs() < 1e-12,
            "{a:?} vs {b:?}"
        );
    }
}
