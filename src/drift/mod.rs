//! Data-drift detection: is the rating distribution the model is served on
//! still the one it was trained on?
//!
//! [`stats`] (the `cinematch-stats` crate) holds the pure statistics (two-sample KS, chi-square
//! homogeneity, PSI, Jensen–Shannon, mean/std), each checked against scipy
//! or numpy; reading ratings and recording `drift_alerts` is layered on top.

pub use cinematch_stats as stats;

pub use stats::{
    chi2_homogeneity, jensen_shannon, ks_2samp, ks_2samp_counts, mean_std, mean_std_counts, psi,
    rating_level_counts, ChiSquareResult, KsResult, RATING_LEVELS,
};
