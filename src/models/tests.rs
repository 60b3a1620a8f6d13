//! Tests of the shared model interface: prediction rules, ranking, the
//! artifact format, and properties every algorithm must have.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::testutil::low_rank;
use super::*;
use crate::progress::Silent;

/// Two users, three movies, k = 2, numbers chosen by hand.
fn hand_model() -> FactorModel {
    FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1, 5],
        vec![10, 20, 30],
        vec![0.5, -0.25],
        vec![0.2, -0.1, 1.0],
        2,
        vec![1.0, 0.0, 0.5, 2.0],
        vec![0.1, 0.2, -0.3, 0.4, 1.0, 1.0],
    )
    .unwrap()
}

fn small_params(algo: Algo) -> Hyperparams {
    match algo {
        Algo::Baseline => Hyperparams::default_for(algo),
        Algo::Svd => Hyperparams::Svd(SvdParams {
            factors: 6,
            epochs: 4,
            ..SvdParams::default()
        }),
        Algo::Als => Hyperparams::Als(AlsParams {
            factors: 6,
            iterations: 3,
            ..AlsParams::default()
        }),
        Algo::Ials => Hyperparams::Ials(IalsParams {
            factors: 6,
            iterations: 3,
            ..IalsParams::default()
        }),
        Algo::Ease => Hyperparams::Ease(EaseParams {
            lambda: 5.0,
            ..EaseParams::default()
        }),
    }
}

/// The algorithms whose models are [`FactorModel`]s.
const FACTOR_ALGOS: [Algo; 4] = [Algo::Baseline, Algo::Svd, Algo::Als, Algo::Ials];

/// A small trained factor model with random-looking factors.
fn trained(algo: Algo) -> FactorModel {
    let ratings = low_rank(40, 70, 3, 0.3, 99);
    super::testutil::fit_factor(&small_params(algo), &ratings, 1).unwrap()
}

#[test]
fn algo_names_round_trip() {
    for a in Algo::ALL {
        assert_eq!(Algo::parse(a.as_str()), Some(a));
        assert_eq!(a.as_str().parse::<Algo>().unwrap(), a);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            format!("\"{}\"", a.as_str())
        );
        assert_eq!(Algo::from_tag(a.tag()), Some(a));
    }
    assert_eq!(Algo::parse(" SVD "), Some(Algo::Svd));
    assert_eq!(Algo::parse("knn"), None);
    assert!("knn"
        .parse::<Algo>()
        .unwrap_err()
        .to_string()
        .contains("baseline, svd, als, ials, ease"));
}

#[test]
fn params_serialize_with_algo_tag_and_fill_defaults() {
    for a in Algo::ALL {
        let p = Hyperparams::default_for(a);
        assert_eq!(p.algo(), a);
        p.validate().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(&format!("\"algo\":\"{a}\"")), "{json}");
        assert_eq!(serde_json::from_str::<Hyperparams>(&json).unwrap(), p);
    }
    let p: Hyperparams = serde_json::from_str(r#"{"algo":"svd","factors":7}"#).unwrap();
    assert_eq!(
        p,
        Hyperparams::Svd(SvdParams {
            factors: 7,
            ..SvdParams::default()
        })
    );
    assert!(serde_json::from_str::<Hyperparams>(r#"{"algo":"svd","factrs":7}"#).is_err());
}

#[test]
fn invalid_params_are_rejected_before_training() {
    let ratings = low_rank(5, 5, 1, 1.0, 1);
    let p = Hyperparams::Svd(SvdParams {
        lr: -1.0,
        ..SvdParams::default()
    });
    let e = fit(&p, &ratings, 0, &Silent).unwrap_err().to_string();
    assert!(e.contains("lr"), "{e}");
}

#[test]
fn fit_rejects_empty_and_non_finite_input() {
    for a in Algo::ALL {
        let e = fit(&small_params(a), &[], 0, &Silent)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zero ratings"), "{e}");
    }
    let mut ratings = low_rank(5, 5, 1, 1.0, 1);
    ratings[3].rating = f32::NAN;
    let e = fit(&small_params(Algo::Svd), &ratings, 0, &Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a finite number"), "{e}");
}

#[test]
fn divergence_is_an_error_not_a_nan_model() {
    let ratings = low_rank(30, 30, 2, 0.5, 2);
    let p = Hyperparams::Svd(SvdParams {
        lr: 1.0,
        reg: 0.0,
        init_std: 5.0,
        factors: 20,
        epochs: 30,
        ..SvdParams::default()
    });
    let e = fit(&p, &ratings, 0, &Silent).unwrap_err().to_string();
    assert!(e.contains("diverged"), "{e}");
}

#[test]
fn predict_is_mean_plus_biases_plus_dot_and_clipped() {
    let m = hand_model();
    // user 1 (b = 0.5, p = [1, 0]) × movie 20 (b = −0.1, q = [−0.3, 0.4]):
    // 3 + 0.5 − 0.1 − 0.3 = 3.1
    assert!((m.predict(1, 20) - 3.1).abs() < 1e-6);
    // user 5 (b = −0.25, p = [0.5, 2]) × movie 30 (b = 1, q = [1, 1]):
    // 3 − 0.25 + 1 + 2.5 = 6.25 → clipped to 5
    assert!((m.predict_unclipped(5, 30) - 6.25).abs() < 1e-6);
    assert_eq!(m.predict(5, 30), MAX_RATING);
    let low = FactorModel::from_parts(
        Algo::Baseline,
        1.0,
        vec![1],
        vec![2],
        vec![-2.0],
        vec![-2.0],
        0,
        vec![],
        vec![],
    )
    .unwrap();
    assert_eq!(low.predict_unclipped(1, 2), -3.0);
    assert_eq!(low.predict(1, 2), MIN_RATING);
}

#[test]
fn unknown_user_or_movie_falls_back_to_known_biases() {
    let m = hand_model();
    // Unknown user, known movie 30: μ + b_i = 4.
    assert!((m.predict(999, 30) - 4.0).abs() < 1e-6);
    // Known user 5, unknown movie: μ + b_u = 2.75.
    assert!((m.predict(5, 999) - 2.75).abs() < 1e-6);
    // Neither: μ.
    assert_eq!(m.predict(999, 999), 3.0);
    assert!(m.knows_user(5) && !m.knows_user(999));
    assert!(m.knows_movie(30) && !m.knows_movie(31));
    assert_eq!(m.user_index(5), Some(1));
    assert_eq!(m.movie_index(30), Some(2));
    assert_eq!(m.movie_vector(20), Some(&[-0.3f32, 0.4][..]));
    assert_eq!(m.movie_vector(21), None);
    assert_eq!(m.user_vector(1), Some(&[1.0f32, 0.0][..]));
}

#[test]
fn score_all_matches_predict_unclipped() {
    for a in FACTOR_ALGOS {
        let m = trained(a);
        let mut out = vec![123.0; 3];
        for (u, &uid) in m.user_ids().iter().enumerate().step_by(7) {
            m.score_all(u, &mut out);
            assert_eq!(out.len(), m.n_movies());
            for (s, &mid) in out.iter().zip(m.movie_ids()) {
                assert!((s - m.predict_unclipped(uid, mid)).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn score_all_parallel_path_matches_serial_predictions() {
    // Enough movies to take the multi-threaded branch.
    let (users, movies, k) = (3usize, 20_000usize, 16usize);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut r = |n: usize| {
        (0..n)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect::<Vec<_>>()
    };
    let m = FactorModel::from_parts(
        Algo::Als,
        3.5,
        (0..users as i32).collect(),
        (0..movies as i32).collect(),
        r(users),
        r(movies),
        k,
        r(users * k),
        r(movies * k),
    )
    .unwrap();
    let mut out = Vec::new();
    m.score_all(2, &mut out);
    for mid in (0..movies as i32).step_by(997) {
        assert_eq!(out[mid as usize], m.predict_unclipped(2, mid));
    }
}

fn brute_top(m: &FactorModel, user: i32, k: usize, exclude: &HashSet<i32>) -> Vec<(i32, f32)> {
    let mut all: Vec<(i32, f32)> = m
        .movie_ids()
        .iter()
        .filter(|id| !exclude.contains(id))
        .map(|&id| (id, m.predict_unclipped(user, id)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn top_k_matches_brute_force_and_respects_exclusions() {
    for a in FACTOR_ALGOS {
        let m = trained(a);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for &uid in m.user_ids().iter().step_by(5).chain([&-1]) {
            let exclude: HashSet<i32> = m
                .movie_ids()
                .iter()
                .copied()
                .filter(|_| rng.random::<f64>() < 0.3)
                .chain([123_456])
                .collect();
            for k in [0, 1, 5, 20, 1000] {
                let got = m.top_k(uid, k, &exclude);
                let want = brute_top(&m, uid, k, &exclude);
                assert_eq!(got.len(), want.len(), "{a} user {uid} k {k}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.0, w.0, "{a} user {uid} k {k}");
                    assert_eq!(g.1, w.1.clamp(MIN_RATING, MAX_RATING));
                    assert!(!exclude.contains(&g.0));
                }
            }
            // A sorted slice works as well as a set.
            let mut v: Vec<i32> = exclude.iter().copied().collect();
            v.sort_unstable();
            assert_eq!(m.top_k(uid, 10, &v), m.top_k(uid, 10, &exclude));
        }
    }
}

#[test]
fn top_k_breaks_ties_by_movie_id() {
    let m = FactorModel::from_parts(
        Algo::Baseline,
        3.0,
        vec![1],
        vec![4, 5, 6, 7],
        vec![0.0],
        vec![0.1, 0.3, 0.3, 0.3],
        0,
        vec![],
        vec![],
    )
    .unwrap();
    let ids: Vec<i32> = m.top_k(1, 3, &[6]).into_iter().map(|x| x.0).collect();
    assert_eq!(ids, vec![5, 7, 4]);
}

#[test]
fn similar_movies_matches_brute_force_cosine() {
    for a in [Algo::Svd, Algo::Als] {
        let m = trained(a);
        let k = m.k();
        let q = m.q();
        let cos = |x: usize, y: usize| {
            let (qx, qy) = (&q[x * k..(x + 1) * k], &q[y * k..(y + 1) * k]);
            let d: f64 = qx.iter().zip(qy).map(|(a, b)| *a as f64 * *b as f64).sum();
            let nx: f64 = qx.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = qy.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            d / (nx * ny)
        };
        for (x, &mid) in m.movie_ids().iter().enumerate().step_by(9) {
            let mut want: Vec<(i32, f64)> = (0..m.n_movies())
                .filter(|&y| y != x)
                .map(|y| (m.movie_ids()[y], cos(x, y)))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1));
            let got = m.similar_movies(mid, 8);
            assert_eq!(got.len(), 8);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "{a} movie {mid}: {got:?} vs {:?}", &want[..8]);
                assert!((g.1 as f64 - w.1).abs() < 1e-5);
            }
            assert!(got.iter().all(|g| g.0 != mid));
        }
    }
    assert!(trained(Algo::Svd).similar_movies(-5, 3).is_empty());
    assert!(trained(Algo::Baseline).similar_movies(7, 3).is_empty());
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let ratings = low_rank(40, 70, 3, 0.3, 99);
    for a in Algo::ALL {
        let p = small_params(a);
        let x = fit(&p, &ratings, 17, &Silent).unwrap().to_bytes();
        let y = fit(&p, &ratings, 17, &Silent).unwrap().to_bytes();
        assert_eq!(x, y, "{a}");
        let z = fit(&p, &ratings, 18, &Silent).unwrap().to_bytes();
        if a == Algo::Baseline || a == Algo::Ease {
            assert_eq!(x, z, "{a} has no randomness");
        } else {
            assert_ne!(x, z, "{a}");
        }
    }
}

#[test]
fn artifact_round_trips() {
    for a in FACTOR_ALGOS {
        let m = trained(a);
        let bytes = m.to_bytes();
        assert_eq!(&bytes[..8], ARTIFACT_MAGIC);
        let back = FactorModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.algo(), a);
        assert_eq!(back.user_ids(), m.user_ids());
        for &u in m.user_ids().iter().step_by(3) {
            for &i in m.movie_ids().iter().step_by(5) {
                assert_eq!(back.predict(u, i), m.predict(u, i));
            }
        }
        assert_eq!(
            back.similar_movies(m.movie_ids()[0], 5),
            m.similar_movies(m.movie_ids()[0], 5)
        );
    }
    // An empty model is representable too.
    let empty = FactorModel::from_parts(
        Algo::Als,
        3.0,
        vec![],
        vec![],
        vec![],
        vec![],
        4,
        vec![],
        vec![],
    )
    .unwrap();
    let back = FactorModel::from_bytes(&empty.to_bytes()).unwrap();
    assert_eq!(back.k(), 4);
    assert_eq!(back.predict(1, 1), 3.0);
}

fn decode_err(bytes: &[u8]) -> String {
    match FactorModel::from_bytes(bytes) {
        Ok(_) => panic!("decoded {} corrupt bytes", bytes.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn artifact_detects_truncation_corruption_and_foreign_data() {
    let bytes = trained(Algo::Svd).to_bytes();
    // Every truncation.
    for len in 0..bytes.len() {
        let e = decode_err(&bytes[..len]);
        assert!(e.contains("truncated"), "len {len}: {e}");
    }
    // Every single-bit flip (sampled bits per byte to stay fast).
    for pos in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            let e = decode_err(&b);
            assert!(e.starts_with("model artifact: "), "pos {pos}: {e}");
        }
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode_err(&extra).contains("corrupted"));
    let mut v3 = bytes.clone();
    v3[8] = 3;
    let e = decode_err(&v3);
    assert!(
        e.contains("unsupported format version 3") && e.contains("newer"),
        "{e}"
    );
    assert!(decode_err(b"PK\x03\x04 not a model at all").contains("bad magic"));
    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x40;
    assert!(decode_err(&flipped).contains("checksum mismatch"));
}

#[test]
fn artifact_decoding_never_panics_on_random_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let valid = trained(Algo::Als).to_bytes();
    for round in 0..2000 {
        let len = rng.random_range(0..200usize);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            // Valid magic and version so decoding gets past the first checks,
            // with random (often huge) counts.
            let head = &valid[..10.min(len)];
            b[..head.len()].copy_from_slice(head);
        }
        let _ = decode_err(&b);
    }
    // Valid checksum over semantically broken content (descending ids):
    // the first user id follows the 12-byte prefix, the settings block
    // (length, text) and the four counts.
    let m = hand_model();
    let mut b = m.to_bytes();
    let settings = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let first_user = 16 + settings + 16;
    assert_eq!(b[first_user..first_user + 4], 1i32.to_le_bytes());
    b[first_user..first_user + 4].copy_from_slice(&9i32.to_le_bytes());
    let n = b.len();
    let crc = crc32fast::hash(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert!(decode_err(&b).contains("ascending"));
}

/// An artifact in format version 1 (no settings block), as releases before
/// the ranking models wrote it, byte by byte from its documented layout.
#[test]
fn version_1_artifacts_still_load() {
    let m = hand_model();
    let mut b: Vec<u8> = Vec::new();
    b.extend_from_slice(ARTIFACT_MAGIC);
    b.extend_from_slice(&1u16.to_le_bytes());
    b.push(1); // svd
    b.push(0);
    for n in [2u32, 3, 2] {
        b.extend_from_slice(&n.to_le_bytes());
    }
    b.extend_from_slice(&3.0f32.to_le_bytes());
    for id in [1i32, 5, 10, 20, 30] {
        b.extend_from_slice(&id.to_le_bytes());
    }
    for x in [
        0.5f32, -0.25, 0.2, -0.1, 1.0, 1.0, 0.0, 0.5, 2.0, 0.1, 0.2, -0.3, 0.4, 1.0, 1.0,
    ] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let back = FactorModel::from_bytes(&b).unwrap();
    for u in [1, 5] {
        for i in [10, 20, 30] {
            assert_eq!(back.predict(u, i), m.predict(u, i));
        }
    }
    // Written back, it is the current version.
    assert_eq!(
        u16::from_le_bytes([back.to_bytes()[8], back.to_bytes()[9]]),
        ARTIFACT_VERSION
    );
}

/// Ranking models round-trip too: EASE with its settings and weights, iALS
/// with what a fold-in needs.
#[test]
fn ranking_artifacts_round_trip() {
    let ratings = low_rank(40, 70, 3, 0.3, 99);
    for algo in [Algo::Ease, Algo::Ials] {
        let m = fit(&small_params(algo), &ratings, 1, &Silent).unwrap();
        let bytes = m.to_bytes();
        let back = Model::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes, "{algo}");
        assert_eq!(back.algo(), algo);
        assert!(
            back.predict(1000, 7).is_none(),
            "ranking models predict no stars"
        );
        let history = crate::types::rated(&[(7, 4.0), (12, 5.0), (17, 2.0)]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(m.score(1, &history, true, &mut a).is_some());
        assert!(back.score(1, &history, true, &mut b).is_some());
        assert_eq!(a, b, "{algo}");
    }
    if let Model::Factor(f) = fit(&small_params(Algo::Ials), &ratings, 1, &Silent).unwrap() {
        let back = FactorModel::from_bytes(&f.to_bytes()).unwrap();
        let (x, y) = (f.implicit().unwrap(), back.implicit().unwrap());
        assert_eq!((x.reg, x.alpha, x.weighting), (y.reg, y.alpha, y.weighting));
    }
    let ease = fit(&small_params(Algo::Ease), &ratings, 1, &Silent).unwrap();
    let e = FactorModel::from_bytes(&ease.to_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a factor model"), "{e}");
}

#[test]
fn from_parts_rejects_inconsistent_arrays() {
    let ok = |r: Result<FactorModel>| r.is_ok();
    assert!(ok(FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1],
        vec![2],
        vec![0.0],
        vec![0.0],
        1,
        vec![0.0],
        vec![0.0]
    )));
    assert!(!ok(FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1],
        vec![2],
        vec![0.0],
        vec![0.0],
        2,
        vec![0.0],
        vec![0.0]
    )));
    assert!(!ok(FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1, 1],
        vec![2],
        vec![0.0; 2],
        vec![0.0],
        0,
        vec![],
        vec![]
    )));
    assert!(!ok(FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1],
        vec![2],
        vec![f32::NAN],
        vec![0.0],
        0,
        vec![],
        vec![]
    )));
    assert!(!ok(FactorModel::from_parts(
        Algo::Svd,
        3.0,
        vec![1],
        vec![2],
        vec![],
        vec![0.0],
        0,
        vec![],
        vec![]
    )));
}

/// Records progress calls, to check what training reports.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl Progress for Recorder {
    fn stage(&self, name: &str, total: Option<u64>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("stage {name} {total:?}"));
    }
    fn advance(&self, n: u64) {
        self.0.lock().unwrap().push(format!("advance {n}"));
    }
    fn message(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
    fn finish(&self) {
        self.0.lock().unwrap().push("finish".into());
    }
}

#[test]
fn training_reports_every_epoch_with_its_rmse() {
    let ratings = low_rank(30, 30, 2, 0.5, 4);
    for (algo, stage, epochs) in [
        (Algo::Baseline, "baseline", 10),
        (Algo::Svd, "svd", 4),
        (Algo::Als, "als", 3),
    ] {
        let rec = Recorder::default();
        fit(&small_params(algo), &ratings, 0, &rec).unwrap();
        let log = rec.0.into_inner().unwrap();
        assert_eq!(log[0], format!("stage {stage} Some({epochs})"), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("finish"));
        let msgs: Vec<&String> = log.iter().filter(|m| m.contains("train RMSE")).collect();
        assert_eq!(msgs.len(), epochs, "{log:?}");
        assert!(msgs[0].contains(&format!("1/{epochs}")), "{}", msgs[0]);
    }
}
