//! Benchmark of the drift computation (issue 4: "over 700,000 baseline and
//! 130,000 new ratings, after the data is read, takes well under 100 ms").
//!
//!     cargo bench --bench drift                       # timings
//!     cargo bench --bench drift -- --dump DIR         # also write the arrays
//!     scripts/bench/drift.sh                          # + scipy side by side
//!
//! The data is MovieLens-shaped synthetic ratings from the crate's own
//! generator (830,000 ratings, 5,000 users, 9,000 movies with MovieLens
//! genres), split two ways:
//!
//! * `temporal`: the earliest 700,000 ratings are the baseline, the latest
//!   130,000 the new batch, as in production (new users and movies appear,
//!   the distribution moves);
//! * `random`: a seeded random 700,000 / 130,000 split (no drift).
//!
//! What is timed is [`drift_check::compute`], the function `cinematch drift
//! check` calls once the baseline, the buffer and the catalogue are in
//! memory: every test it records (rating mean and std, KS with its
//! p-value, PSI, chi-square, Jensen-Shannon of the genre mix, unseen user
//! and movie shares) including the notes. Performance drift needs the
//! champion and is timed separately (`+ performance_rmse`, with a random
//! 100-factor model of the SVD shape: `predict` costs the same for any
//! values). The lines below the totals break the statistics down, and
//! `ks_2samp raw` is the sort-based KS on the raw samples, the like-for-like
//! counterpart of `scipy.stats.ks_2samp(a, b)`.
//!
//! Each line is the median (and min / max) of repeated runs after warm-up.
//! Not a test: nothing here asserts a time.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cinematch::data::synth::{SynthOptions, SynthWorld};
use cinematch::drift::stats;
use cinematch::models::{Algo, FactorModel};
use cinematch::pipeline::drift_check::{compute, Thresholds};
use cinematch::{Movie, Rating};

const BASELINE: usize = 700_000;
const NEW: usize = 130_000;

/// Runs `f` repeatedly (3 warm-ups, then at least 15 runs and ~1.5 s, at
/// most 500 runs) and prints the median, min and max in milliseconds.
fn time<T>(label: &str, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..3 {
        black_box(f());
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 15
        || (start.elapsed() < Duration::from_millis(1500) && samples.len() < 500)
    {
        let t = Instant::now();
        black_box(f());
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    println!(
        "  {label:<44} median {median:>8.3} ms   min {:>8.3}   max {:>8.3}   ({} runs)",
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
    median
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dump = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);

    let t = Instant::now();
    let world = SynthWorld::new(&SynthOptions {
        users: 5_000,
        movies: 9_000,
        ratings: (BASELINE + NEW) as u64,
        ..SynthOptions::default()
    })
    .expect("valid synthetic options");
    let movies: Vec<Movie> = world.movies();
    let mut all: Vec<Rating> = (1..=5_000).flat_map(|u| world.user_ratings(u)).collect();
    assert_eq!(all.len(), BASELINE + NEW);
    println!(
        "data: {} ratings, {} movies, generated in {:.1}s",
        all.len(),
        movies.len(),
        t.elapsed().as_secs_f64()
    );

    all.sort_by_key(|r| (r.timestamp, r.user_id, r.movie_id));
    let temporal = all.clone();
    // Seeded Fisher-Yates (splitmix64), so the random split is the same every run.
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..all.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
    let random = all;

    let champion =
        cinematch::models::Model::Factor(random_svd_shaped_model(&temporal[..BASELINE], &mut next));
    let thresholds = Thresholds::default();
    let mut summary = Vec::new();
    for (name, data) in [("temporal", &temporal), ("random", &random)] {
        let (baseline, new) = data.split_at(BASELINE);
        let base_counts = stats::rating_level_counts(baseline.iter().map(|r| r.rating));
        let new_counts = stats::rating_level_counts(new.iter().map(|r| r.rating));
        let ks = stats::ks_2samp_counts(&base_counts, &new_counts).expect("non-empty");
        println!(
            "\n{name} split: {} baseline vs {} new ratings; KS D = {:.4}, p = {:.3e}",
            baseline.len(),
            new.len(),
            ks.statistic,
            ks.pvalue
        );
        let alerts = compute(baseline, new, &movies, None, &thresholds).expect("finite");
        let scores: Vec<String> = alerts
            .iter()
            .map(|a| format!("{} {:.4}", a.feature_name, a.drift_score))
            .collect();
        println!("  scores: {}", scores.join(", "));

        let total = time("drift_check::compute (all tests but perf.)", || {
            compute(baseline, new, &movies, None, &thresholds)
        });
        let with_perf = time("compute + performance_rmse (k = 100)", || {
            compute(
                baseline,
                new,
                &movies,
                Some(("bench", &champion, 0.85)),
                &thresholds,
            )
        });
        time("  rating_level_counts (both samples)", || {
            (
                stats::rating_level_counts(baseline.iter().map(|r| r.rating)),
                stats::rating_level_counts(new.iter().map(|r| r.rating)),
            )
        });
        time("  ks_2samp_counts (D and p)", || {
            stats::ks_2samp_counts(black_box(&base_counts), black_box(&new_counts))
        });
        let levels = stats::RATING_LEVELS;
        time("  mean/std + PSI + chi-square from counts", || {
            (
                stats::mean_std_counts(&levels, black_box(&base_counts)),
                stats::mean_std_counts(&levels, black_box(&new_counts)),
                stats::psi(&base_counts, &new_counts, 1e-4),
                stats::chi2_homogeneity(&base_counts, &new_counts),
            )
        });
        let (a, b): (Vec<f64>, Vec<f64>) = (
            baseline.iter().map(|r| r.rating as f64).collect(),
            new.iter().map(|r| r.rating as f64).collect(),
        );
        let raw_ks = time("  ks_2samp raw (sorts both samples)", || {
            stats::ks_2samp(black_box(&a), black_box(&b))
        });
        let like_scipy = time("ks_2samp raw + counts + chi-square", || {
            let ks = stats::ks_2samp(black_box(&a), black_box(&b));
            let ca = stats::rating_level_counts(a.iter().map(|&x| x as f32));
            let cb = stats::rating_level_counts(b.iter().map(|&x| x as f32));
            (ks, stats::chi2_homogeneity(&ca, &cb))
        });
        summary.push((name, total, with_perf, raw_ks, like_scipy));

        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).expect("create dump dir");
            for (file, xs) in [("baseline", &a), ("new", &b)] {
                let path = dir.join(format!("{name}_{file}.f64"));
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
                for x in xs.iter() {
                    f.write_all(&x.to_le_bytes()).expect("write");
                }
            }
        }
    }
    println!("\nsummary (median ms; bar: well under 100 ms):");
    for &(name, total, with_perf, raw_ks, like_scipy) in &summary {
        println!(
            "  {name:<9} compute {total:.3}   with performance drift {with_perf:.3}   \
             ks_2samp raw {raw_ks:.3}   ks raw + chi-square {like_scipy:.3}"
        );
    }
    if let Some(dir) = dump {
        println!("arrays written to {}", dir.display());
        // One line per split for scripts/bench/drift.sh to read.
        for (name, total, with_perf, raw_ks, like_scipy) in summary {
            println!("RESULT {name} {total:.3} {with_perf:.3} {raw_ks:.3} {like_scipy:.3}");
        }
    }
}

/// A model with the shape of the default SVD champion (100 factors) over the
/// baseline's users and movies, with arbitrary small values.
fn random_svd_shaped_model(baseline: &[Rating], next: &mut impl FnMut() -> u64) -> FactorModel {
    let mut users: Vec<i32> = baseline.iter().map(|r| r.user_id).collect();
    let mut movies: Vec<i32> = baseline.iter().map(|r| r.movie_id).collect();
    users.sort_unstable();
    users.dedup();
    movies.sort_unstable();
    movies.dedup();
    let k = 100;
    let mut small = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2)
            .collect()
    };
    let (ub, ib) = (small(users.len()), small(movies.len()));
    let (p, q) = (small(users.len() * k), small(movies.len() * k));
    FactorModel::from_parts(Algo::Svd, 3.5, users, movies, ub, ib, k, p, q)
        .expect("consistent model")
}
