//! The base dataset: determinism, exact counts, and a shape like
//! MovieLens's (histogram, skew, learnable structure, genre tastes).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::synth::random::unit;
use crate::data::synth::*;
use crate::progress::{Progress, Silent};
use crate::types::{Rating, MOVIELENS_GENRES};
use crate::Error;

fn small(seed: u64) -> SynthOptions {
    SynthOptions {
        users: 500,
        movies: 4_000,
        ratings: 50_000,
        seed,
        ..SynthOptions::default()
    }
}

fn all_ratings(world: &SynthWorld) -> Vec<Rating> {
    (1..=world.options().users as i32)
        .flat_map(|u| world.user_ratings(u))
        .collect()
}

fn read_ratings(path: &Path) -> Vec<Rating> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        vec!["userId", "movieId", "rating", "timestamp"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            Rating {
                user_id: rec[0].parse().unwrap(),
                movie_id: rec[1].parse().unwrap(),
                rating: rec[2].parse().unwrap(),
                timestamp: rec[3].parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn files_are_deterministic_per_seed() {
    let opts = SynthOptions {
        users: 100,
        movies: 500,
        ratings: 10_000,
        ..SynthOptions::default()
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let ra = generate(a.path(), &opts, &Silent).unwrap();
    let rb = generate(b.path(), &opts, &Silent).unwrap();
    generate(
        c.path(),
        &SynthOptions {
            seed: 7,
            ..opts.clone()
        },
        &Silent,
    )
    .unwrap();
    assert_eq!(ra, rb);
    for f in ["movies.csv", "ratings.csv"] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        let z = std::fs::read(c.path().join(f)).unwrap();
        assert_eq!(x, y, "{f} differs between runs");
        assert_ne!(x, z, "{f} ignores the seed");
    }
    // The files agree with the in-memory world.
    let world = SynthWorld::new(&opts).unwrap();
    assert_eq!(
        read_ratings(&a.path().join("ratings.csv")),
        all_ratings(&world)
    );
}

#[test]
fn writes_movielens_csv() {
    let opts = SynthOptions {
        users: 50,
        movies: 3_000,
        ratings: 5_000,
        seed: 3,
        ..SynthOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested");
    let report = generate(&out, &opts, &Silent).unwrap();
    assert_eq!(
        (report.users, report.movies, report.ratings),
        (50, 3_000, 5_000)
    );

    let text = std::fs::read_to_string(out.join("ratings.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("userId,movieId,rating,timestamp"));
    let first = lines.next().unwrap();
    let fields: Vec<&str> = first.split(',').collect();
    assert_eq!(fields.len(), 4);
    assert!(fields[2].len() == 3 && (fields[2].ends_with(".0") || fields[2].ends_with(".5")));

    let ratings = read_ratings(&out.join("ratings.csv"));
    assert_eq!(ratings.len(), 5_000);
    let keys: Vec<(i32, i32)> = ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "not sorted by user, movie"
    );
    let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / 5_000.0;
    assert!((mean - report.mean_rating).abs() < 1e-9);

    let mut r = csv::Reader::from_path(out.join("movies.csv")).unwrap();
    assert_eq!(r.headers().unwrap(), vec!["movieId", "title", "genres"]);
    let mut genre_counts: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for (i, rec) in r.records().enumerate() {
        let rec = rec.unwrap();
        assert_eq!(rec[0].parse::<usize>().unwrap(), i + 1);
        let title = &rec[1];
        assert!(
            title.starts_with(&format!("Synthetic Movie {} (", i + 1)),
            "{title}"
        );
        let year: i64 = title[title.len() - 5..title.len() - 1].parse().unwrap();
        assert!((1902..=2018).contains(&year), "{title}");
        let genres: Vec<&str> = rec[2].split('|').collect();
        assert!((1..=3).contains(&genres.len()), "{:?}", &rec[2]);
        let distinct: HashSet<&str> = genres.iter().copied().collect();
        assert_eq!(distinct.len(), genres.len());
        for g in genres {
            assert!(MOVIELENS_GENRES.contains(&g), "{g}");
            *genre_counts.entry(g.to_string()).or_default() += 1;
        }
        n += 1;
    }
    assert_eq!(n, 3_000);
    let mut by_count: Vec<(usize, String)> =
        genre_counts.into_iter().map(|(g, c)| (c, g)).collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    let top: HashSet<&str> = by_count[..2].iter().map(|(_, g)| g.as_str()).collect();
    assert_eq!(top, HashSet::from(["Drama", "Comedy"]));
}

#[test]
fn exact_counts_without_duplicates_on_the_half_star_grid() {
    let opts = small(11);
    let world = SynthWorld::new(&opts).unwrap();
    let ratings = all_ratings(&world);
    assert_eq!(ratings.len() as u64, opts.ratings);
    let pairs: HashSet<(i32, i32)> = ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
    assert_eq!(pairs.len(), ratings.len(), "duplicate (user, movie) pairs");
    for r in &ratings {
        assert!((0.5..=5.0).contains(&r.rating), "{r:?}");
        assert_eq!((r.rating * 2.0).fract(), 0.0, "{r:?}");
        assert!((1..=4_000).contains(&r.movie_id));
        let (a, b) = world.user_active_period(r.user_id);
        assert!(ML_SMALL_START <= a && a <= r.timestamp && r.timestamp <= b && b <= ML_SMALL_END);
    }
    for u in 1..=opts.users as i32 {
        assert!(
            world.user_rating_count(u) >= 20,
            "user {u} has too few ratings"
        );
    }
}

#[test]
fn counts_are_exact_in_dense_and_sparse_corners() {
    for (users, movies, ratings) in [
        (10, 10, 100),    // every pair
        (10, 10, 99),     // all but one
        (7, 50, 300),     // heavy users use the Efraimidis-Spirakis path
        (100, 1_000, 50), // fewer ratings than users
        (3, 1, 2),
        (5, 5, 0),
        (0, 0, 0),
    ] {
        let opts = SynthOptions {
            users,
            movies,
            ratings,
            ..SynthOptions::default()
        };
        let world = SynthWorld::new(&opts).unwrap();
        let all = all_ratings(&world);
        assert_eq!(all.len() as u64, ratings, "{opts:?}");
        let pairs: HashSet<(i32, i32)> = all.iter().map(|r| (r.user_id, r.movie_id)).collect();
        assert_eq!(pairs.len(), all.len(), "{opts:?}");
    }
}

#[test]
fn rejects_impossible_options() {
    let too_many = SynthOptions {
        users: 10,
        movies: 10,
        ratings: 101,
        ..SynthOptions::default()
    };
    let err = SynthWorld::new(&too_many).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("101 distinct ratings"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    assert!(generate(dir.path(), &too_many, &Silent).is_err());
    assert!(!dir.path().join("ratings.csv").exists());

    let backwards = SynthOptions {
        start_timestamp: 10,
        end_timestamp: 5,
        ..SynthOptions::default()
    };
    assert!(SynthWorld::new(&backwards).is_err());
    let noisy = SynthOptions {
        noise: f64::NAN,
        ..SynthOptions::default()
    };
    assert!(SynthWorld::new(&noisy).is_err());
    let huge = SynthOptions {
        users: u32::MAX,
        ratings: 0,
        ..SynthOptions::default()
    };
    assert!(SynthWorld::new(&huge).is_err());
}

#[test]
fn rating_histogram_looks_like_movielens() {
    let world = SynthWorld::new(&small(5)).unwrap();
    let ratings = all_ratings(&world);
    let n = ratings.len() as f64;
    let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / n;
    let var = ratings
        .iter()
        .map(|r| (f64::from(r.rating) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!((3.3..=3.7).contains(&mean), "mean {mean}");
    assert!((0.8..=1.2).contains(&var.sqrt()), "std {}", var.sqrt());
    let mut hist = [0usize; 10];
    for r in &ratings {
        hist[(r.rating * 2.0) as usize - 1] += 1;
    }
    let mode = (0..10).max_by_key(|&i| hist[i]).unwrap();
    assert_eq!(mode, 7, "4.0 should be the most common rating: {hist:?}");
    let whole: usize = hist.iter().skip(1).step_by(2).sum();
    assert!(
        whole * 2 > ratings.len(),
        "whole stars should dominate: {hist:?}"
    );
}

#[test]
fn popularity_and_activity_are_skewed() {
    let opts = small(9);
    let world = SynthWorld::new(&opts).unwrap();
    let ratings = all_ratings(&world);
    let mut per_movie = vec![0usize; opts.movies as usize];
    for r in &ratings {
        per_movie[r.movie_id as usize - 1] += 1;
    }
    per_movie.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = per_movie[..per_movie.len() / 10].iter().sum();
    let share = top as f64 / ratings.len() as f64;
    assert!(
        share > 0.4,
        "top 10% of movies get only {share:.2} of ratings"
    );

    let mut per_user: Vec<u32> = (1..=opts.users as i32)
        .map(|u| world.user_rating_count(u))
        .collect();
    per_user.sort_unstable();
    let median = per_user[per_user.len() / 2];
    let mean = opts.ratings as f64 / opts.users as f64;
    assert!(
        f64::from(median) < 0.75 * mean,
        "median {median}, mean {mean}"
    );
    assert!(f64::from(*per_user.last().unwrap()) > 5.0 * mean);
}

/// Alternating least-squares fit of r ~ mu + b_u + b_i (ridge-regularised).
fn bias_model_rmse(train: &[Rating], test: &[Rating]) -> (f64, f64) {
    let mu = train.iter().map(|r| f64::from(r.rating)).sum::<f64>() / train.len() as f64;
    let mut bu: HashMap<i32, f64> = HashMap::new();
    let mut bi: HashMap<i32, f64> = HashMap::new();
    let lambda = 5.0;
    for _ in 0..10 {
        let mut acc: HashMap<i32, (f64, f64)> = HashMap::new();
        for r in train {
            let e = acc.entry(r.movie_id).or_default();
            e.0 += f64::from(r.rating) - mu - bu.get(&r.user_id).unwrap_or(&0.0);
            e.1 += 1.0;
        }
        bi = acc
            .into_iter()
            .map(|(k, (s, n))| (k, s / (n + lambda)))
            .collect();
        let mut acc: HashMap<i32, (f64, f64)> = HashMap::new();
        for r in train {
            let e = acc.entry(r.user_id).or_default();
            e.0 += f64::from(r.rating) - mu - bi.get(&r.movie_id).unwrap_or(&0.0);
            e.1 += 1.0;
        }
        bu = acc
            .into_iter()
            .map(|(k, (s, n))| (k, s / (n + lambda)))
            .collect();
    }
    let rmse = |pred: &dyn Fn(&Rating) -> f64| {
        (test
            .iter()
            .map(|r| (f64::from(r.rating) - pred(r)).powi(2))
            .sum::<f64>()
            / test.len() as f64)
            .sqrt()
    };
    let baseline = rmse(&|_| mu);
    let model =
        rmse(&|r| mu + bu.get(&r.user_id).unwrap_or(&0.0) + bi.get(&r.movie_id).unwrap_or(&0.0));
    (baseline, model)
}

#[test]
fn ratings_are_learnable() {
    let world = SynthWorld::new(&small(21)).unwrap();
    let ratings = all_ratings(&world);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for r in ratings {
        if unit(&mut rng) < 0.8 {
            train.push(r);
        } else {
            test.push(r);
        }
    }
    let (baseline, model) = bias_model_rmse(&train, &test);
    assert!(
        model < 0.85 * baseline,
        "bias model RMSE {model:.3} vs global mean {baseline:.3}"
    );
    // The noise-free truth does better still: there is structure beyond
    // biases for a factorization model to find.
    let truth = (test
        .iter()
        .map(|r| (f64::from(r.rating) - world.expected_rating(r.user_id, r.movie_id)).powi(2))
        .sum::<f64>()
        / test.len() as f64)
        .sqrt();
    assert!(
        truth < model - 0.1,
        "truth {truth:.3} vs bias model {model:.3}"
    );
}

#[test]
fn genres_shape_tastes() {
    // Movies sharing a genre set have more similar latent vectors than
    // random pairs, so genre features can help cold-start predictions.
    let world = SynthWorld::new(&small(4)).unwrap();
    let k = world.factors;
    let q = |i: usize| &world.movie_factors[i * k..(i + 1) * k];
    let cos = |a: &[f32], b: &[f32]| {
        let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        f64::from(d / (na * nb))
    };
    let (mut same, mut same_n, mut other, mut other_n) = (0.0, 0, 0.0, 0);
    for i in 0..500 {
        for j in (i + 1)..500 {
            let c = cos(q(i), q(j));
            if world.movie_genres[i] == world.movie_genres[j] {
                same += c;
                same_n += 1;
            } else if world.movie_genres[i] & world.movie_genres[j] == 0 {
                other += c;
                other_n += 1;
            }
        }
    }
    let (same, other) = (same / f64::from(same_n), other / f64::from(other_n));
    assert!(
        same > other + 0.2,
        "same-genre cosine {same:.3} vs disjoint {other:.3}"
    );
}

#[test]
fn extra_streams_give_fresh_ratings_in_a_window() {
    let world = SynthWorld::new(&small(2)).unwrap();
    let base = world.user_ratings(5);
    let (a, b) = world.user_active_period(5);
    let again = world
        .ratings_in_window(5, base.len(), (a, b), BASE_STREAM)
        .unwrap();
    assert_eq!(base, again);
    let week = (ML_SMALL_END - 7 * 86_400, ML_SMALL_END);
    let batch = world.ratings_in_window(5, 30, week, 1).unwrap();
    assert_eq!(batch.len(), 30);
    assert!(batch
        .iter()
        .all(|r| r.timestamp >= week.0 && r.timestamp <= week.1));
    assert_ne!(batch, world.ratings_in_window(5, 30, week, 2).unwrap());
    assert!(world.ratings_in_window(5, 4_001, week, 1).is_err());
}

#[test]
fn progress_reports_every_user() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64);
    impl Progress for Count {
        fn stage(&self, name: &str, total: Option<u64>) {
            assert_eq!(name, "synth");
            self.1.store(total.unwrap(), Ordering::SeqCst);
        }
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::SeqCst);
        }
        fn message(&self, _: &str) {}
        fn finish(&self) {}
    }
    let p = Count::default();
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        users: 400,
        movies: 1_000,
        ratings: 80_000,
        ..SynthOptions::default()
    };
    generate(dir.path(), &opts, &p).unwrap();
    assert_eq!(p.0.load(Ordering::SeqCst), 400);
    assert_eq!(p.1.load(Ordering::SeqCst), 400);
}
