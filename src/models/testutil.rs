//! Synthetic data for the model tests.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{fit, FactorModel, Hyperparams, Model};
use crate::progress::Silent;
use crate::types::Rating;

/// Trains a factor-model algorithm and unwraps the [`FactorModel`].
pub fn fit_factor(
    params: &Hyperparams,
    ratings: &[Rating],
    seed: u64,
) -> crate::Result<FactorModel> {
    match fit(params, ratings, seed, &Silent)? {
        Model::Factor(m) => Ok(m),
        Model::Ease(_) => panic!("{:?} is not a factor model", params.algo()),
    }
}

/// A `users × movies` matrix of rank `rank` plus user/movie offsets and
/// N(0, 0.1²) noise, observed with probability `density`, on a continuous
/// 0.5..=5 scale. Ids are offset and spread out so that id ≠ index.
pub fn low_rank(users: usize, movies: usize, rank: usize, density: f64, seed: u64) -> Vec<Rating> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = Normal::new(0.0f64, 1.0).unwrap();
    let scale = 0.8 / (rank as f64).sqrt();
    let u: Vec<f64> = (0..users * rank)
        .map(|_| n.sample(&mut rng) * scale)
        .collect();
    let v: Vec<f64> = (0..movies * rank)
        .map(|_| n.sample(&mut rng) * scale)
        .collect();
    let bu: Vec<f64> = (0..users).map(|_| n.sample(&mut rng) * 0.4).collect();
    let bi: Vec<f64> = (0..movies).map(|_| n.sample(&mut rng) * 0.4).collect();
    let mut out = Vec::new();
    for a in 0..users {
        for b in 0..movies {
            if rng.random::<f64>() >= density {
                continue;
            }
            let dot: f64 = (0..rank).map(|f| u[a * rank + f] * v[b * rank + f]).sum();
            let r = 3.5 + bu[a] + bi[b] + dot + 0.1 * n.sample(&mut rng);
            out.push(Rating {
                user_id: 1000 + 3 * a as i32,
                movie_id: 7 + 5 * b as i32,
                rating: r.clamp(0.5, 5.0) as f32,
                timestamp: 0,
            });
        }
    }
    out
}

/// A seeded random split into `(train, test)` with `frac` in train.
pub fn split(all: &[Rating], frac: f64, seed: u64) -> (Vec<Rating>, Vec<Rating>) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let cut = (frac * all.len() as f64).round() as usize;
    let take = |s: &[usize]| s.iter().map(|&i| all[i]).collect::<Vec<_>>();
    (take(&idx[..cut]), take(&idx[cut..]))
}

/// Root mean squared error of `predict` over `test`.
pub fn rmse(test: &[Rating], predict: impl Fn(i32, i32) -> f32) -> f64 {
    let sse: f64 = test
        .iter()
        .map(|r| {
            let d = (predict(r.user_id, r.movie_id) - r.rating) as f64;
            d * d
        })
        .sum();
    (sse / test.len() as f64).sqrt()
}
