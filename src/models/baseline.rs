//! Baseline estimates `r̂ = μ + b_u + b_i`, fitted exactly like Surprise's
//! `BaselineOnly` with its default ALS method, so that its numbers can be
//! compared with Surprise's one to one.
//!
//! Each epoch first sets every movie bias to the regularized mean residual
//! given the current user biases, then every user bias given the new movie
//! biases (Koren 2010, section 2.1):
//!
//! ```text
//! b_i = Σ_{u ∈ R(i)} (r_ui − μ − b_u) / (reg_i + |R(i)|)
//! b_u = Σ_{i ∈ R(u)} (r_ui − μ − b_i) / (reg_u + |R(u)|)
//! ```
//!
//! It is the floor every other model must beat, and the cheapest model to
//! serve when a factor model is not worth its memory.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::dataset::TrainSet;
use super::{trained_model, Algo, FactorModel};
use crate::progress::Progress;
use crate::{Error, Result};

/// Regularization and sweeps of the bias fit. The defaults are Surprise's
/// (`reg_u = 15`, `reg_i = 10`, 10 epochs), so a default fit reproduces
/// Surprise's `BaselineOnly` number for number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineParams {
    /// Shrinks user biases towards 0 as if each user had `reg_u` extra
    /// ratings equal to the mean.
    pub reg_u: f64,
    /// The same for movie biases.
    pub reg_i: f64,
    /// Alternating sweeps over movies and users.
    pub epochs: usize,
}

impl Default for BaselineParams {
    fn default() -> Self {
        BaselineParams {
            reg_u: 15.0,
            reg_i: 10.0,
            epochs: 10,
        }
    }
}

impl BaselineParams {
    /// Checked by [`crate::models::fit`]; public so a caller can reject bad
    /// flags before spending time loading ratings.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("reg_u", self.reg_u), ("reg_i", self.reg_i)] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "baseline {name} must be a finite number ≥ 0, got {v}"
                )));
            }
        }
        if !(1..=10_000).contains(&self.epochs) {
            return Err(Error::InvalidArgument(format!(
                "baseline epochs must be between 1 and 10000, got {}",
                self.epochs
            )));
        }
        Ok(())
    }
}

pub(crate) fn fit(
    params: &BaselineParams,
    data: &TrainSet,
    progress: &dyn Progress,
) -> Result<FactorModel> {
    let started = Instant::now();
    let mu = data.global_mean;
    let (bu, bi) = fit_biases(
        data,
        mu,
        params.reg_u,
        params.reg_i,
        params.epochs,
        |epoch, bu, bi| {
            progress.advance(1);
            progress.message(&format!(
                "baseline epoch {}/{}: train RMSE {:.4}, {:.2}s",
                epoch + 1,
                params.epochs,
                train_rmse(data, mu, bu, bi),
                started.elapsed().as_secs_f64()
            ));
        },
        progress,
    );
    trained_model(
        Algo::Baseline,
        data,
        mu as f32,
        bu.iter().map(|&x| x as f32).collect(),
        bi.iter().map(|&x| x as f32).collect(),
        0,
        Vec::new(),
        Vec::new(),
    )
}

/// The ALS bias sweeps, in f64 like Surprise. `after_epoch` sees the biases
/// after each epoch (for progress reporting).
pub(crate) fn fit_biases(
    data: &TrainSet,
    mu: f64,
    reg_u: f64,
    reg_i: f64,
    epochs: usize,
    mut after_epoch: impl FnMut(usize, &[f64], &[f64]),
    progress: &dyn Progress,
) -> (Vec<f64>, Vec<f64>) {
    let (nu, nm) = (data.n_users(), data.n_movies());
    let mut cnt_u = vec![0u32; nu];
    let mut cnt_i = vec![0u32; nm];
    for e in &data.entries {
        cnt_u[e.u as usize] += 1;
        cnt_i[e.i as usize] += 1;
    }
    let mut bu = vec![0.0f64; nu];
    let mut bi = vec![0.0f64; nm];
    let mut sum = Vec::new();
    progress.stage("baseline", Some(epochs as u64));
    for epoch in 0..epochs {
        // Movies given users.
        sum.clear();
        sum.resize(nm, 0.0f64);
        for e in &data.entries {
            sum[e.i as usize] += e.r as f64 - mu - bu[e.u as usize];
        }
        for ((b, s), &c) in bi.iter_mut().zip(&sum).zip(&cnt_i) {
            *b = s / (reg_i + c as f64);
        }
        // Users given movies.
        sum.clear();
        sum.resize(nu, 0.0f64);
        for e in &data.entries {
            sum[e.u as usize] += e.r as f64 - mu - bi[e.i as usize];
        }
        for ((b, s), &c) in bu.iter_mut().zip(&sum).zip(&cnt_u) {
            *b = s / (reg_u + c as f64);
        }
        after_epoch(epoch, &bu, &bi);
    }
    progress.finish();
    (bu, bi)
}

fn train_rmse(data: &TrainSet, mu: f64, bu: &[f64], bi: &[f64]) -> f64 {
    let sse: f64 = data
        .entries
        .iter()
        .map(|e| {
            let d = e.r as f64 - mu - bu[e.u as usize] - bi[e.i as usize];
            d * d
        })
        .sum();
    (sse / data.entries.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::fit_factor as fit_model;
    use crate::models::testutil::{low_rank, rmse, split};
    use crate::models::Hyperparams as Params;
    use crate::types::Rating;

    fn r(user_id: i32, movie_id: i32, rating: f32) -> Rating {
        Rating {
            user_id,
            movie_id,
            rating,
            timestamp: 0,
        }
    }

    fn fit_tiny(reg_u: f64, reg_i: f64) -> FactorModel {
        let ratings = [r(1, 10, 4.0), r(1, 20, 2.0), r(2, 10, 5.0)];
        let p = Params::Baseline(BaselineParams {
            reg_u,
            reg_i,
            epochs: 1,
        });
        fit_model(&p, &ratings, 0).unwrap()
    }

    #[test]
    fn biases_match_hand_computation_without_regularization() {
        // μ = (4 + 2 + 5) / 3 = 11/3. One epoch, reg 0, biases start at 0.
        // Movies first (b_u = 0):
        //   b_10 = ((4 − 11/3) + (5 − 11/3)) / 2 = (5/3) / 2 = 5/6
        //   b_20 = (2 − 11/3) / 1               = −5/3
        // Then users (with the new movie biases):
        //   b_1 = ((4 − 11/3 − 5/6) + (2 − 11/3 + 5/3)) / 2 = (−1/2 + 0) / 2 = −1/4
        //   b_2 = (5 − 11/3 − 5/6) / 1                      = 1/2
        let m = fit_tiny(0.0, 0.0);
        let close = |a: f32, b: f64| assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        close(m.global_mean(), 11.0 / 3.0);
        assert_eq!(m.movie_ids(), &[10, 20]);
        assert_eq!(m.user_ids(), &[1, 2]);
        close(m.item_bias()[0], 5.0 / 6.0);
        close(m.item_bias()[1], -5.0 / 3.0);
        close(m.user_bias()[0], -0.25);
        close(m.user_bias()[1], 0.5);
        assert_eq!(m.k(), 0);
        // Prediction is μ + b_u + b_i: user 1, movie 10 → 11/3 − 1/4 + 5/6.
        close(m.predict(1, 10), 11.0 / 3.0 - 0.25 + 5.0 / 6.0);
    }

    #[test]
    fn biases_match_hand_computation_with_regularization() {
        // reg_i = reg_u = 1: the denominators grow by one.
        //   b_10 = (5/3) / 3 = 5/9,   b_20 = (−5/3) / 2 = −5/6
        //   b_1 = ((4 − 11/3 − 5/9) + (2 − 11/3 + 5/6)) / 3
        //       = (6/18 − 10/18 − 30/18 + 15/18) / 3 = −19/54
        //   b_2 = (5 − 11/3 − 5/9) / 2 = (7/9) / 2 = 7/18
        let m = fit_tiny(1.0, 1.0);
        let close = |a: f32, b: f64| assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        close(m.item_bias()[0], 5.0 / 9.0);
        close(m.item_bias()[1], -5.0 / 6.0);
        close(m.user_bias()[0], -19.0 / 54.0);
        close(m.user_bias()[1], 7.0 / 18.0);
    }

    #[test]
    fn beats_global_mean_on_biased_data() {
        let all = low_rank(300, 200, 3, 0.3, 7);
        let (train, test) = split(&all, 0.8, 1);
        let m = fit_model(&Params::default_for(Algo::Baseline), &train, 0).unwrap();
        let base = rmse(&test, |_, _| m.global_mean());
        let got = rmse(&test, |u, i| m.predict(u, i));
        assert!(got < 0.9 * base, "baseline {got} vs global mean {base}");
    }

    #[test]
    fn rejects_bad_params() {
        for p in [
            BaselineParams {
                reg_u: -1.0,
                ..Default::default()
            },
            BaselineParams {
                reg_i: f64::NAN,
                ..Default::default()
            },
            BaselineParams {
                epochs: 0,
                ..Default::default()
            },
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains("baseline"), "{e}");
        }
    }
}
