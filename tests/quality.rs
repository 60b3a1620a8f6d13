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

use std::sync::OnceLock;

use cinematch::models::{Algo, Hyperparams, SvdParams};
use cinematch::pipeline::load::{self, LoadOptions, Source};
use cinematch::progress::Silent;
use cinematch::registry::{self, TrainOptions};

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
