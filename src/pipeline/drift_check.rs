//! `cinematch drift check`: compare the buffer with the training baseline
//! and write one `drift_alerts` row per test, in the spec's style.
//!
//! The statistics themselves live in [`crate::drift::stats`]; this module
//! reads the data, applies the thresholds and words the notes.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::drift::stats;
use crate::models::Model;
use crate::registry;
use crate::store::{NewDriftAlert, Store};
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// Alert thresholds. `score > threshold` triggers an alert for every test,
/// so the table reads the same way throughout. Loadable from the `[drift]`
/// table of a TOML config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Relative change of the mean rating (spec: 0.10).
    pub rating_mean: f64,
    /// Relative change of the rating standard deviation (spec: 0.15).
    pub rating_std: f64,
    /// Two-sample KS statistic D (spec: 0.05).
    pub rating_distribution_ks: f64,
    /// Population stability index of the rating histogram (0.1 warn, 0.25 alert).
    pub rating_psi: f64,
    /// Significance level of the chi-square test of the rating levels; the
    /// row's threshold is the chi-square critical value at this level.
    pub rating_chi2_alpha: f64,
    /// Jensen-Shannon distance (base 2) of the genre mix of rated movies.
    pub genre_mix_js: f64,
    /// Share of buffer ratings by users never seen in training.
    pub unseen_users_share: f64,
    /// Share of buffer ratings for movies never seen in training.
    pub unseen_movies_share: f64,
    /// Relative change of the champion's RMSE on the buffer against its test RMSE.
    pub performance_rmse: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            rating_mean: 0.10,
            rating_std: 0.15,
            rating_distribution_ks: 0.05,
            rating_psi: 0.25,
            rating_chi2_alpha: 0.05,
            genre_mix_js: 0.10,
            unseen_users_share: 0.50,
            unseen_movies_share: 0.10,
            performance_rmse: 0.10,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfigFile {
    drift: Option<Thresholds>,
}

impl Thresholds {
    /// Reads the `[drift]` table of a TOML file; missing keys keep their defaults.
    pub fn from_file(path: &Path) -> Result<Thresholds> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: ConfigFile = toml::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        Ok(cfg.drift.unwrap_or_default())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct DriftReport {
    pub baseline_ratings: usize,
    pub new_ratings: usize,
    pub alerts: Vec<NewDriftAlert>,
}

impl DriftReport {
    pub fn triggered(&self) -> impl Iterator<Item = &NewDriftAlert> {
        self.alerts.iter().filter(|a| a.alert_triggered)
    }

    pub fn any_triggered(&self) -> bool {
        self.triggered().next().is_some()
    }
}

/// Whether an alert of test `feature` asks for a retrain. Some tests only
/// inform: new users arrive every week in a living deployment, so their
/// share says nothing about whether the model still fits.
pub fn triggers_retraining(feature: &str) -> bool {
    !matches!(feature, "unseen_users_share")
}

/// Reads the baseline (train split) and the buffer (one batch or all),
/// computes every test and records the rows. An empty buffer is an error
/// ("nothing to compare"), and nothing is written.
pub fn check(
    store: &mut dyn Store,
    batch: Option<&str>,
    thresholds: &Thresholds,
) -> Result<DriftReport> {
    let new = store.buffer_ratings(batch)?;
    if new.is_empty() {
        return Err(Error::NotFound(match batch {
            Some(b) => format!("nothing to compare: batch {b:?} has no ratings in the buffer"),
            None => "nothing to compare: ratings_buffer is empty (ingest a batch first)".into(),
        }));
    }
    let baseline = store.ratings(Split::Train)?;
    if baseline.is_empty() {
        return Err(Error::NotFound(
            "nothing to compare against: the train split is empty (load a dataset first)".into(),
        ));
    }
    let movies = store.movies()?;
    // Performance drift needs a model that predicts ratings: the champion,
    // or beside a ranking champion the rating model whose stars are shown
    // (see `registry::load_rating_model`); without one the test is left out.
    let champion = match registry::load_rating_model(store) {
        Ok(Some((version, model))) => {
            let test_rmse = store
                .model_runs()?
                .into_iter()
                .find(|r| r.model_version == version)
                .and_then(|r| r.rmse);
            test_rmse.map(|rmse| (version, model, rmse))
        }
        Ok(None) | Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let alerts = compute(
        &baseline,
        &new,
        &movies,
        champion.as_ref().map(|(v, m, r)| (v.as_str(), m, *r)),
        thresholds,
    );
    store.insert_drift_alerts(&alerts)?;
    Ok(DriftReport {
        baseline_ratings: baseline.len(),
        new_ratings: new.len(),
        alerts,
    })
}

/// Every drift test over data already in memory. Both samples must be
/// non-empty. Pure, so it can be benchmarked and tested without a database.
pub fn compute(
    baseline: &[Rating],
    new: &[Rating],
    movies: &[Movie],
    champion: Option<(&str, &Model, f64)>,
    t: &Thresholds,
) -> Vec<NewDriftAlert> {
    let mut out = Vec::with_capacity(9);
    let base_counts = stats::rating_level_counts(baseline.iter().map(|r| r.rating));
    let new_counts = stats::rating_level_counts(new.iter().map(|r| r.rating));
    let levels: Vec<f64> = (1..=10).map(|i| i as f64 * 0.5).collect();
    let (bm, bs) = stats::mean_std_counts(&levels, &base_counts).unwrap_or((0.0, 0.0));
    let (nm, ns) = stats::mean_std_counts(&levels, &new_counts).unwrap_or((0.0, 0.0));

    let rel = |new: f64, base: f64| {
        if base == 0.0 {
            0.0
        } else {
            (new - base).abs() / base.abs()
        }
    };
    let mut push = |name: &str, score: f64, threshold: f64, notes: String| {
        let score = if score.is_finite() { score } else { 0.0 };
        out.push(NewDriftAlert {
            feature_name: name.to_string(),
            drift_score: score,
            threshold,
            alert_triggered: score > threshold,
            notes,
        });
    };

    push(
        "rating_mean",
        rel(nm, bm),
        t.rating_mean,
        format!("Baseline: {bm:.3}, New: {nm:.3}"),
    );
    push(
        "rating_std",
        rel(ns, bs),
        t.rating_std,
        format!("Baseline: {bs:.3}, New: {ns:.3}"),
    );
    if let Some(ks) = stats::ks_2samp_counts(&base_counts, &new_counts) {
        push(
            "rating_distribution_ks",
            ks.statistic,
            t.rating_distribution_ks,
            format!("KS test p-value: {}", fmt_p(ks.pvalue)),
        );
    }
    if let Some(psi) = stats::psi(&base_counts, &new_counts, 1e-4) {
        let level = if psi > t.rating_psi {
            "significant shift"
        } else if psi > 0.1 {
            "moderate shift (warn above 0.1)"
        } else {
            "stable"
        };
        push(
            "rating_psi",
            psi,
            t.rating_psi,
            format!("PSI over 10 rating levels: {level}"),
        );
    }
    if let Some(chi) = stats::chi2_homogeneity(&base_counts, &new_counts) {
        let critical = chi2_critical(chi.dof, t.rating_chi2_alpha);
        push(
            "rating_chi2",
            chi.statistic,
            critical,
            format!(
                "Chi-square p-value: {}, dof {} (threshold is the critical value at p = {})",
                fmt_p(chi.pvalue),
                chi.dof,
                t.rating_chi2_alpha
            ),
        );
    }

    // Genre mix: each rating counts once for every genre of its movie.
    // Ratings are counted per movie first and the counts spread over each
    // movie's genres afterwards, so the per-rating work is one array
    // increment rather than string hashing (830k ratings: ~300 ms -> ~10 ms).
    let mut genre_index: HashMap<&str, usize> = HashMap::new();
    let genres_of: Vec<Vec<usize>> = movies
        .iter()
        .map(|m| {
            m.genre_list()
                .map(|g| {
                    let n = genre_index.len();
                    *genre_index.entry(g).or_insert(n)
                })
                .collect()
        })
        .collect();
    let slots = IdIndex::new(movies.iter().map(|m| m.movie_id));
    let mix = |rs: &[Rating]| {
        let mut per_movie = vec![0u64; movies.len()];
        for r in rs {
            if let Some(i) = slots.get(r.movie_id) {
                per_movie[i] += 1;
            }
        }
        let mut v = vec![0.0f64; genre_index.len()];
        for (c, gs) in per_movie.iter().zip(&genres_of) {
            for &g in gs {
                v[g] += *c as f64;
            }
        }
        v
    };
    let (bg, ng) = (mix(baseline), mix(new));
    if let Some(js) = stats::jensen_shannon(&bg, &ng) {
        let mut names: Vec<(&str, usize)> = genre_index.iter().map(|(g, i)| (*g, *i)).collect();
        names.sort_by_key(|(_, i)| *i);
        let (bt, nt): (f64, f64) = (bg.iter().sum(), ng.iter().sum());
        let biggest = names
            .iter()
            .filter(|_| bt > 0.0 && nt > 0.0)
            .map(|(g, i)| (*g, ng[*i] / nt - bg[*i] / bt))
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        let detail = biggest
            .map(|(g, d)| format!("; largest change: {g} {:+.1} points", d * 100.0))
            .unwrap_or_default();
        push(
            "genre_mix_js",
            js,
            t.genre_mix_js,
            format!("Jensen-Shannon distance (base 2) of genre shares{detail}"),
        );
    }

    let base_users = IdIndex::new(baseline.iter().map(|r| r.user_id));
    let base_movies = IdIndex::new(baseline.iter().map(|r| r.movie_id));
    let n = new.len() as f64;
    let unseen_u = new
        .iter()
        .filter(|r| base_users.get(r.user_id).is_none())
        .count();
    let unseen_m = new
        .iter()
        .filter(|r| base_movies.get(r.movie_id).is_none())
        .count();
    push(
        "unseen_users_share",
        unseen_u as f64 / n,
        t.unseen_users_share,
        format!(
            "{unseen_u} of {} new ratings are by users not in training",
            new.len()
        ),
    );
    push(
        "unseen_movies_share",
        unseen_m as f64 / n,
        t.unseen_movies_share,
        format!(
            "{unseen_m} of {} new ratings are for movies not in training",
            new.len()
        ),
    );

    if let Some((version, model, test_rmse)) = champion {
        let sse: f64 = new
            .iter()
            .map(|r| {
                let p = model.predict(r.user_id, r.movie_id).unwrap_or(f32::NAN);
                let e = (p - r.rating) as f64;
                e * e
            })
            .sum();
        let buffer_rmse = (sse / n).sqrt();
        push(
            "performance_rmse",
            if test_rmse > 0.0 {
                (buffer_rmse - test_rmse) / test_rmse
            } else {
                0.0
            },
            t.performance_rmse,
            format!("Champion {version}: test RMSE {test_rmse:.3}, buffer RMSE {buffer_rmse:.3}"),
        );
    }
    out
}

/// Position of each id in the order first seen, as a dense table when the
/// ids are small (MovieLens ids are below a few hundred thousand) and a hash
/// map otherwise, so lookups per rating stay cheap without trusting ids to
/// be small.
enum IdIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<i32, usize>),
}

impl IdIndex {
    /// Ids above this use the hash map: a dense table of 4M entries is 16 MB.
    const DENSE_MAX: i32 = 1 << 22;

    fn new(ids: impl Iterator<Item = i32> + Clone) -> IdIndex {
        let (min, max) = ids.clone().fold((i32::MAX, i32::MIN), |(lo, hi), id| {
            (lo.min(id), hi.max(id))
        });
        if min >= 0 && max <= Self::DENSE_MAX {
            let mut table = vec![u32::MAX; max as usize + 1];
            let mut next = 0u32;
            for id in ids {
                let e = &mut table[id as usize];
                if *e == u32::MAX {
                    *e = next;
                    next += 1;
                }
            }
            IdIndex::Dense(table)
        } else {
            let mut map = HashMap::new();
            for id in ids {
                let n = map.len();
                map.entry(id).or_insert(n);
            }
            IdIndex::Sparse(map)
        }
    }

    fn get(&self, id: i32) -> Option<usize> {
        match self {
            IdIndex::Dense(t) => usize::try_from(id)
                .ok()
                .and_then(|i| t.get(i))
                .filter(|&&e| e != u32::MAX)
                .map(|&e| e as usize),
            IdIndex::Sparse(m) => m.get(&id).copied(),
        }
    }
}

/// p-values as the spec prints them ("0.0012"), with tiny ones kept readable.
fn fmt_p(p: f64) -> String {
    if p > 0.0 && p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The chi-square value whose upper tail has probability `alpha`.
fn chi2_critical(dof: usize, alpha: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    match ChiSquared::new(dof.max(1) as f64) {
        Ok(d) => d.inverse_cdf(1.0 - alpha),
        Err(_) => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user_id: i32, movie_id: i32) -> Rating {
        Rating {
            user_id,
            movie_id,
            rating: 4.0,
            timestamp: 0,
        }
    }

    fn m(movie_id: i32, genres: &str) -> Movie {
        Movie {
            movie_id,
            title: format!("Movie {movie_id}"),
            genres: genres.into(),
            pca_features: None,
        }
    }

    fn score(alerts: &[NewDriftAlert], name: &str) -> f64 {
        alerts
            .iter()
            .find(|a| a.feature_name == name)
            .unwrap_or_else(|| panic!("no {name} row"))
            .drift_score
    }

    /// Genre shares (Comedy, Drama, Action): baseline 2/4, 1/4, 1/4 (movie 2
    /// counts for Comedy and Drama), new 1/3, 0, 2/3. Reference:
    /// `scipy.spatial.distance.jensenshannon([.5,.25,.25], [1/3,0,2/3], base=2)`
    /// = 0.4560534395133295 (also by hand: sqrt(0.207985)). Users 3 and 4 are
    /// new: 2 of 3 new ratings; every movie was rated in training.
    #[test]
    fn genre_mix_and_unseen_shares_match_reference() {
        for shift in [0, 2_000_000_000] {
            let movies = [
                m(1 + shift, "Comedy"),
                m(2 + shift, "Drama|Comedy"),
                m(3 + shift, "Action"),
            ];
            let base = [
                r(1 + shift, 1 + shift),
                r(1 + shift, 2 + shift),
                r(2 + shift, 3 + shift),
            ];
            let new = [
                r(3 + shift, 1 + shift),
                r(1 + shift, 3 + shift),
                r(4 + shift, 3 + shift),
            ];
            let a = compute(&base, &new, &movies, None, &Thresholds::default());
            let js = score(&a, "genre_mix_js");
            assert!(
                (js - 0.4560534395133295).abs() < 1e-12,
                "shift {shift}: {js}"
            );
            assert!((score(&a, "unseen_users_share") - 2.0 / 3.0).abs() < 1e-12);
            assert_eq!(score(&a, "unseen_movies_share"), 0.0);
        }
    }

    #[test]
    fn id_index_dense_and_sparse_agree() {
        let ids = [5, 3, 5, 9, 0];
        let dense = IdIndex::new(ids.iter().copied());
        assert!(matches!(dense, IdIndex::Dense(_)));
        let sparse = IdIndex::new(ids.iter().copied().chain([i32::MAX, -7]));
        assert!(matches!(sparse, IdIndex::Sparse(_)));
        for (id, want) in [
            (5, Some(0)),
            (3, Some(1)),
            (9, Some(2)),
            (0, Some(3)),
            (4, None),
            (-1, None),
            (100, None),
        ] {
            assert_eq!(dense.get(id), want, "dense {id}");
            assert_eq!(sparse.get(id), want, "sparse {id}");
        }
        assert_eq!(sparse.get(-7), Some(5));
    }
}
