//! A dense 10-dimensional embedding of each movie's genres.
//!
//! Content-based fallbacks (cold-start users, movies with few ratings)
//! compare movies by genre. Raw genre flags are sparse and correlated (most
//! Animation is also Children); principal components turn them into a short
//! dense vector where distance reflects how genres actually co-occur in the
//! catalogue. The vector is stored with the movie (`movies.pca_features`, as
//! JSON), so it must be reproducible: the same catalogue always yields the
//! same numbers, including their signs.

use std::collections::BTreeSet;

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::types::Movie;

/// Length of every stored `pca_features` vector, fixed so that the schema
/// and the models can rely on it whatever the catalogue's genre count.
pub const PCA_DIM: usize = 10;

/// Decimal places kept in stored features: far below any meaningful
/// difference, and keeps the JSON short and byte-stable.
const DECIMALS: f64 = 1e6;

/// What the fit found, for logging and for the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaReport {
    /// The genre vocabulary, sorted; column order of the genre matrix.
    pub genres: Vec<String>,
    /// Share of the total genre variance each of the [`PCA_DIM`] components
    /// carries, largest first; 0 for padding components.
    pub explained_variance_ratio: Vec<f64>,
    /// Sum of `explained_variance_ratio`: how much of the genre information
    /// the stored vectors keep (1.0 when there are at most 10 genres).
    pub total_explained: f64,
}

/// The fitted model on the binary genre matrix.
#[derive(Debug, Clone)]
struct Fit {
    /// Column means of the genre matrix (genre frequencies).
    means: Vec<f64>,
    /// All eigenvalues of the covariance matrix, descending, negatives from
    /// rounding clamped to 0.
    eigenvalues: Vec<f64>,
    /// Unit eigenvectors for the first `min(PCA_DIM, g)` eigenvalues, each
    /// of length g, sign-normalised (see [`normalise_sign`]).
    components: Vec<Vec<f64>>,
}

/// Fits PCA on the movies' binary genre flags and stores each movie's
/// coordinates in `pca_features` (always [`PCA_DIM`] values).
///
/// The computation matches scikit-learn's `PCA(n_components=10)` on the
/// 0/1 genre matrix (columns centred, covariance divided by n-1), up to the
/// sign of each component, which is fixed here instead of left to the
/// eigen-solver: every component is flipped so that its loading with the
/// largest absolute value is positive (the first such genre in sorted order
/// if several tie). A component therefore points *towards* the genre that
/// defines it most strongly, and refits of the same catalogue give the same
/// signs. When the catalogue has fewer than 10 genres, or fewer than two
/// movies, the missing components are zeros with explained ratio 0. Movies
/// with no genres (`(no genres listed)`) are rows of zeros, which still
/// count towards the means.
///
/// Components with equal eigenvalues span a subspace in which any rotation
/// is equally valid; their individual directions are then whatever the
/// solver returns (deterministic for a given build), which real catalogues
/// essentially never hit.
pub fn fit_genre_pca(movies: &mut [Movie]) -> PcaReport {
    let genres: Vec<String> = movies
        .iter()
        .flat_map(|m| m.genre_list())
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    let rows: Vec<Vec<usize>> = movies
        .iter()
        .map(|m| {
            let mut idx: Vec<usize> = m
                .genre_list()
                .filter_map(|g| genres.binary_search_by(|x| x.as_str().cmp(g)).ok())
                .collect();
            idx.sort_unstable();
            idx.dedup();
            idx
        })
        .collect();

    let fit = fit(&rows, genres.len());

    let total: f64 = fit.eigenvalues.iter().sum();
    let mut explained_variance_ratio = vec![0.0; PCA_DIM];
    if total > 0.0 {
        for (r, &ev) in explained_variance_ratio
            .iter_mut()
            .zip(&fit.eigenvalues)
            .take(fit.components.len())
        {
            *r = ev / total;
        }
    }
    let total_explained = explained_variance_ratio.iter().sum();

    // Centred x . v = x . v - mean . v; x is sparse, so precompute mean . v.
    let offsets: Vec<f64> = fit
        .components
        .iter()
        .map(|v| v.iter().zip(&fit.means).map(|(a, b)| a * b).sum())
        .collect();
    for (movie, idx) in movies.iter_mut().zip(&rows) {
        let mut features = vec![0.0; PCA_DIM];
        for ((f, v), off) in features.iter_mut().zip(&fit.components).zip(&offsets) {
            let dot: f64 = idx.iter().map(|&j| v[j]).sum();
            *f = round6(dot - off);
        }
        movie.pca_features = Some(features);
    }

    PcaReport {
        genres,
        explained_variance_ratio,
        total_explained,
    }
}

/// PCA of the n x g binary matrix whose row i has ones at `rows[i]`.
fn fit(rows: &[Vec<usize>], g: usize) -> Fit {
    let n = rows.len();
    let mut counts = vec![0.0f64; g];
    for idx in rows {
        for &j in idx {
            counts[j] += 1.0;
        }
    }
    let means: Vec<f64> = counts.iter().map(|c| c / n.max(1) as f64).collect();
    if n < 2 || g == 0 {
        return Fit {
            means,
            eigenvalues: vec![0.0; g],
            components: Vec::new(),
        };
    }

    // Co-occurrence counts are small integers, exact in f64; the centring
    // correction is applied once, which keeps this O(nnz * genres/movie).
    let mut cov = DMatrix::<f64>::zeros(g, g);
    for idx in rows {
        for &a in idx {
            for &b in idx {
                cov[(a, b)] += 1.0;
            }
        }
    }
    let nf = n as f64;
    for a in 0..g {
        for b in 0..g {
            cov[(a, b)] = (cov[(a, b)] - nf * means[a] * means[b]) / (nf - 1.0);
        }
    }

    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| {
        eig.eigenvalues[b]
            .total_cmp(&eig.eigenvalues[a])
            .then(a.cmp(&b))
    });
    let eigenvalues: Vec<f64> = order.iter().map(|&k| eig.eigenvalues[k].max(0.0)).collect();
    let components = order
        .iter()
        .take(PCA_DIM)
        .map(|&k| {
            let mut v: Vec<f64> = eig.eigenvectors.column(k).iter().copied().collect();
            normalise_sign(&mut v);
            v
        })
        .collect();
    Fit {
        means,
        eigenvalues,
        components,
    }
}

/// Flips `v` so its largest-magnitude entry is positive. Entries within
/// 1e-9 of the maximum count as tied and the first of them decides, so
/// floating-point noise between near-equal loadings cannot flip the result.
fn normalise_sign(v: &mut [f64]) {
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if let Some(&pivot) = v.iter().find(|x| x.abs() >= max - 1e-9) {
        if pivot < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
    }
}

/// Rounds to 6 decimals; `+ 0.0` turns -0.0 into 0.0 so JSON never shows "-0.0".
fn round6(x: f64) -> f64 {
    (x * DECIMALS).round() / DECIMALS + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(movies: &[Movie]) -> Vec<Vec<f64>> {
        movies
            .iter()
            .map(|m| m.pca_features.clone().expect("features set"))
            .collect()
    }

    /// 8 movies x 3 genres (Action, Comedy, Drama), one without genres.
    fn reference_movies() -> Vec<Movie> {
        [
            "Action|Comedy",
            "Action",
            "Action",
            "Comedy|Drama",
            "Drama",
            "Drama|Action",
            "Action|Comedy|Drama",
            "(no genres listed)",
        ]
        .iter()
        .enumerate()
        .map(|(i, g)| Movie::with_genres(i as i32 + 1, g))
        .collect()
    }

    // Reference values from numpy 2.4 (independent of this implementation):
    //
    //   import numpy as np
    //   X = np.array([[1,1,0],[1,0,0],[1,0,0],[0,1,1],[0,0,1],[1,0,1],[1,1,1],[0,0,0]], float)
    //   Xc = X - X.mean(0)
    //   C = np.cov(X, rowvar=False)                     # divides by n-1, like sklearn
    //   w, V = np.linalg.eigh(C)
    //   o = np.argsort(w)[::-1]; w = w[o]; V = V[:, o]
    //   for k in range(V.shape[1]):                      # largest |loading| positive
    //       if V[np.argmax(np.abs(V[:, k])), k] < 0: V[:, k] *= -1
    //   print(w, w / w.sum(), V, np.round(Xc @ V, 6))
    //
    // eigenvalues [0.3704386187 0.2857142857 0.165275667]
    // components (columns = PC1, PC2, PC3; rows = Action, Comedy, Drama)
    //   [[-0.454401349   0.7071067812  0.5417743202]
    //    [ 0.454401349   0.7071067812 -0.5417743202]
    //    [ 0.7661845913  0.           0.6426205506]]
    // numpy prints 1/sqrt(2) as 0.7071067812 / 0.707107.
    const R2: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const REF_EIGENVALUES: [f64; 3] = [0.3704386187, 0.2857142857, 0.165275667];
    const REF_RATIOS: [f64; 3] = [0.4509687532, 0.347826087, 0.2012051599];
    const REF_PROJECTIONS: [[f64; 3]; 8] = [
        [-0.269492, R2, -0.456754],
        [-0.723893, 0.0, 0.08502],
        [-0.723893, 0.0, 0.08502],
        [0.951094, 0.0, -0.355908],
        [0.496693, -R2, 0.185867],
        [0.042291, 0.0, 0.727641],
        [0.496693, R2, 0.185867],
        [-0.269492, -R2, -0.456754],
    ];

    #[test]
    fn matches_numpy_reference() {
        let mut movies = reference_movies();
        let report = fit_genre_pca(&mut movies);
        assert_eq!(report.genres, ["Action", "Comedy", "Drama"]);
        assert_eq!(report.explained_variance_ratio.len(), PCA_DIM);
        for (got, want) in report.explained_variance_ratio.iter().zip(REF_RATIOS) {
            assert!((got - want).abs() < 1e-9, "ratio {got} vs {want}");
        }
        // Only 3 genres: the remaining 7 components are padding.
        assert!(report.explained_variance_ratio[3..]
            .iter()
            .all(|&r| r == 0.0));
        assert!((report.total_explained - 1.0).abs() < 1e-12);

        for (got, want) in features(&movies).iter().zip(REF_PROJECTIONS) {
            assert_eq!(got.len(), PCA_DIM);
            for k in 0..3 {
                // Same sign convention, so compare signed values directly.
                assert!((got[k] - want[k]).abs() <= 1.5e-6, "{got:?} vs {want:?}");
            }
            assert!(got[3..].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn eigenvalues_and_components_match_reference() {
        let rows: Vec<Vec<usize>> = vec![
            vec![0, 1],
            vec![0],
            vec![0],
            vec![1, 2],
            vec![2],
            vec![0, 2],
            vec![0, 1, 2],
            vec![],
        ];
        let fit = fit(&rows, 3);
        for (got, want) in fit.eigenvalues.iter().zip(REF_EIGENVALUES) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        let want = [
            [-0.454401349, 0.454401349, 0.7661845913],
            [R2, R2, 0.0],
            [0.5417743202, -0.5417743202, 0.6426205506],
        ];
        for (v, w) in fit.components.iter().zip(want) {
            for (a, b) in v.iter().zip(w) {
                assert!((a - b).abs() < 1e-9, "{v:?} vs {w:?}");
            }
        }
    }

    /// A deterministic pseudo-random catalogue over all 19 MovieLens genres.
    fn big_catalogue(n: usize) -> Vec<Movie> {
        let genres = crate::types::MOVIELENS_GENRES;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|i| {
                let k = 1 + (next() % 3) as usize;
                // Skew towards the first genres and correlate neighbours so
                // the components are distinct.
                let first = ((next() % 1000) as f64 / 1000.0).powi(2) * genres.len() as f64;
                let mut gs = vec![genres[first as usize]];
                for _ in 1..k {
                    gs.push(genres[(next() % genres.len() as u64) as usize]);
                }
                Movie::with_genres(i as i32 + 1, &gs.join("|"))
            })
            .collect()
    }

    #[test]
    fn projections_are_uncorrelated_and_keep_the_variance() {
        let mut movies = big_catalogue(2_000);
        let report = fit_genre_pca(&mut movies);
        assert_eq!(report.genres.len(), 19);
        let f = features(&movies);
        let n = f.len() as f64;

        // Sample covariance of the projections is diag(eigenvalues).
        let mean: Vec<f64> = (0..PCA_DIM)
            .map(|k| f.iter().map(|r| r[k]).sum::<f64>() / n)
            .collect();
        let cov = |a: usize, b: usize| {
            f.iter()
                .map(|r| (r[a] - mean[a]) * (r[b] - mean[b]))
                .sum::<f64>()
                / (n - 1.0)
        };
        // Total variance of the genre matrix = trace of its covariance.
        let rows: Vec<Vec<usize>> = movies
            .iter()
            .map(|m| {
                let mut v: Vec<usize> = m
                    .genre_list()
                    .map(|g| report.genres.iter().position(|x| x == g).unwrap())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let trace: f64 = (0..19)
            .map(|j| {
                let p = rows.iter().filter(|r| r.contains(&j)).count() as f64 / n;
                p * (1.0 - p) * n / (n - 1.0)
            })
            .sum();
        for (a, m) in mean.iter().enumerate() {
            assert!(m.abs() < 1e-6, "projection {a} not centred");
            let ratio = cov(a, a) / trace;
            assert!(
                (ratio - report.explained_variance_ratio[a]).abs() < 1e-6,
                "component {a}: variance ratio {ratio} vs {}",
                report.explained_variance_ratio[a]
            );
            for b in 0..a {
                assert!(cov(a, b).abs() < 1e-6, "components {a},{b} correlated");
            }
        }
        // Descending, a proper fraction of the whole with 19 genres.
        for w in report.explained_variance_ratio.windows(2) {
            assert!(w[0] >= w[1]);
        }
        assert!(report.total_explained > 0.5 && report.total_explained < 1.0);
        let sum: f64 = report.explained_variance_ratio.iter().sum();
        assert!((sum - report.total_explained).abs() < 1e-12);
    }

    #[test]
    fn components_are_orthonormal_with_fixed_signs() {
        let mut movies = big_catalogue(1_000);
        let report = fit_genre_pca(&mut movies);
        let rows: Vec<Vec<usize>> = movies
            .iter()
            .map(|m| {
                m.genre_list()
                    .map(|g| report.genres.iter().position(|x| x == g).unwrap())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .collect();
        let fit = fit(&rows, report.genres.len());
        assert_eq!(fit.components.len(), PCA_DIM);
        for (a, va) in fit.components.iter().enumerate() {
            for (b, vb) in fit.components.iter().enumerate() {
                let dot: f64 = va.iter().zip(vb).map(|(x, y)| x * y).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-9, "<v{a}, v{b}> = {dot}");
            }
            let pivot = va
                .iter()
                .copied()
                .max_by(|x, y| x.abs().total_cmp(&y.abs()));
            assert!(pivot.unwrap() > 0.0, "component {a} has a negative pivot");
        }
    }

    #[test]
    fn sign_rule_flips_and_breaks_ties_by_position() {
        let mut v = vec![0.1, -0.9, 0.3];
        normalise_sign(&mut v);
        assert_eq!(v, [-0.1, 0.9, -0.3]);
        let mut v = vec![-0.5, 0.5];
        normalise_sign(&mut v);
        assert_eq!(v, [0.5, -0.5]);
        let mut v = vec![0.6, -0.6 - 1e-12];
        normalise_sign(&mut v);
        assert_eq!(v[0], 0.6);
    }

    #[test]
    fn result_does_not_depend_on_movie_order() {
        let mut a = big_catalogue(500);
        let mut b: Vec<Movie> = a.iter().rev().cloned().collect();
        let ra = fit_genre_pca(&mut a);
        let rb = fit_genre_pca(&mut b);
        assert_eq!(ra.genres, rb.genres);
        for (x, y) in ra
            .explained_variance_ratio
            .iter()
            .zip(&rb.explained_variance_ratio)
        {
            assert!((x - y).abs() < 1e-12);
        }
        for (x, y) in a.iter().zip(b.iter().rev()) {
            let (fx, fy) = (
                x.pca_features.as_ref().unwrap(),
                y.pca_features.as_ref().unwrap(),
            );
            for (p, q) in fx.iter().zip(fy) {
                assert!((p - q).abs() <= 2e-6, "{fx:?} vs {fy:?}");
            }
        }
    }

    #[test]
    fn features_are_rounded_to_six_decimals() {
        let mut movies = big_catalogue(300);
        fit_genre_pca(&mut movies);
        for f in features(&movies) {
            for x in f {
                assert_eq!(round6(x), x);
                assert!(!(x == 0.0 && x.is_sign_negative()), "negative zero");
            }
        }
    }

    #[test]
    fn degenerate_catalogues_get_zero_vectors() {
        // No movies.
        let report = fit_genre_pca(&mut []);
        assert!(report.genres.is_empty());
        assert_eq!(report.explained_variance_ratio, vec![0.0; PCA_DIM]);
        assert_eq!(report.total_explained, 0.0);

        // One movie: no variance to speak of.
        let mut one = vec![Movie::with_genres(1, "Comedy|Drama")];
        let report = fit_genre_pca(&mut one);
        assert_eq!(report.genres, ["Comedy", "Drama"]);
        assert_eq!(one[0].pca_features, Some(vec![0.0; PCA_DIM]));
        assert_eq!(report.total_explained, 0.0);

        // No genres at all.
        let mut none = vec![
            Movie::with_genres(1, "(no genres listed)"),
            Movie::with_genres(2, ""),
        ];
        let report = fit_genre_pca(&mut none);
        assert!(report.genres.is_empty());
        assert!(features(&none).iter().all(|f| f == &vec![0.0; PCA_DIM]));

        // Every movie identical: zero variance, guarded division.
        let mut same = vec![
            Movie::with_genres(1, "Drama"),
            Movie::with_genres(2, "Drama"),
            Movie::with_genres(3, "Drama"),
        ];
        let report = fit_genre_pca(&mut same);
        assert_eq!(report.explained_variance_ratio, vec![0.0; PCA_DIM]);
        assert!(features(&same).iter().all(|f| f == &vec![0.0; PCA_DIM]));
    }

    #[test]
    fn two_genres_by_hand() {
        // Genres A, B; rows [1,0], [1,0], [0,1], [1,1]. Means (0.75, 0.5);
        // covariance (n-1 = 3): var A = 0.25, var B = 1/3, cov = -1/6.
        // Eigenvalues of [[1/4, -1/6], [-1/6, 1/3]]: 7/24 +- sqrt(1/576 + 1/36)
        // = 7/24 +- sqrt(17)/24.
        let mut movies = vec![
            Movie::with_genres(1, "A"),
            Movie::with_genres(2, "A"),
            Movie::with_genres(3, "B"),
            Movie::with_genres(4, "A|B"),
        ];
        let report = fit_genre_pca(&mut movies);
        let l1 = (7.0 + 17f64.sqrt()) / 24.0;
        let l2 = (7.0 - 17f64.sqrt()) / 24.0;
        let total = 7.0 / 12.0;
        assert!((report.explained_variance_ratio[0] - l1 / total).abs() < 1e-12);
        assert!((report.explained_variance_ratio[1] - l2 / total).abs() < 1e-12);
        // PC1 is dominated by B (the larger variance) with A opposite, so B's
        // loading is the positive pivot: the B-only movie scores highest.
        let f = features(&movies);
        assert!(f[2][0] > 0.0 && f[0][0] < 0.0, "{f:?}");
        assert!(f[2][0] > f[3][0]);
    }
}
