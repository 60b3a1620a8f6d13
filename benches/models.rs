//! Model speed benchmark (issue 3): CineMatch's side of
//! `scripts/bench/models.sh`, which runs it next to Surprise, LIBMF and
//! `implicit` on the same split and prints the ratios. Each mode prints one
//! JSON object per measurement on stdout.
//!
//! ```text
//! cargo bench --bench models -- svd URL [THREADS=2] [ROUNDS=3]
//! cargo bench --bench models -- als URL [FACTORS=64] [ITERATIONS=15]
//! cargo bench --bench models -- recommend [REQUESTS=2000]
//! cargo bench --bench models -- evaluate [ROUNDS=5]
//! cargo bench --bench models -- rank ease|ials URL [ROUNDS=3] [FACTORS ITERATIONS]
//! ```
//!
//! * `svd`: SVD with Surprise's `SVD()` settings (100 factors, 20 epochs,
//!   lr 0.005, reg 0.02, init N(0, 0.1²)) and `threads`, trained `rounds`
//!   times on the train split stored at `URL` (seed 42); fit seconds of each
//!   round (the fit alone, as `cinematch train` records it: the ratings are
//!   already in memory) and the test RMSE.
//! * `als`: one ALS fit (every core, as `cinematch train`), with the time of
//!   each iteration (one iteration = solve every user, solve every movie,
//!   compute the training RMSE the progress line shows) and the peak memory
//!   the fit adds to the process (VmHWM after the fit minus VmRSS before it,
//!   the high-water mark reset through `/proc/self/clear_refs` first).
//! * `recommend`: latency of one recommendation (score every movie for a
//!   user, drop the ~150 movies it rated, top 10 with titles) through
//!   [`Recommender::recommend`], the serving path minus HTTP and the
//!   database, on random models of the shapes ml-latest-small (9,742 movies
//!   × 100 factors) and ml-25m (62,000 movies × 128 factors) give; also the
//!   bare [`FactorModel::score_all`]. With rayon's default pool (the server's)
//!   and with one thread.
//! * `evaluate`: one [`cinematch::eval::evaluate`] (RMSE, MAE, rated and
//!   full-catalogue ranking metrics, coverage) at the size of
//!   ml-latest-small (610 users, 9,742 movies, ~100,000 ratings, a fifth of
//!   them test), with a random 100-factor model; seconds of each round.
//!   Bar: under a second.
//! * `rank`: the ranking model (`ease` or `ials`) with its default
//!   hyperparameters (what `cinematch train --algo A` fits; for `ials`
//!   optionally other factors and iterations), trained `rounds`
//!   times on the train split stored at `URL` (seed 42): fit seconds of each
//!   round, the peak memory the first fit adds (as `als`), and the
//!   full-catalogue NDCG@10, recall@10 and P@10 on the test split from
//!   [`cinematch::eval::evaluate`], with the seconds that evaluation took,
//!   and the size of the stored artifact.
//!   `scripts/bench/ranking.sh` runs it next to numpy's EASE, `implicit`'s
//!   iALS and the most-rated list, each scored by Python.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use cinematch::models::{fit, Algo, AlsParams, FactorModel, Hyperparams, Model, SvdParams};
use cinematch::progress::{Progress, Silent};
use cinematch::recommend::{Recommender, Request};
use cinematch::store::{self, MovieStats};
use cinematch::{Movie, Rated, Rating, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

fn main() {
    // `cargo bench` passes `--bench`; positional arguments follow the mode.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let num = |i: usize, default: usize| -> usize {
        arg(i, &default.to_string())
            .parse()
            .unwrap_or_else(|_| panic!("argument {i} must be a number"))
    };
    match args.first().map(String::as_str) {
        Some("svd") => svd(&arg(1, ""), num(2, 2), num(3, 3)),
        Some("als") => als(&arg(1, ""), num(2, 64), num(3, 15)),
        Some("recommend") => recommend(num(1, 2000)),
        Some("evaluate") => evaluate(num(1, 5)),
        Some("rank") => rank(&arg(1, ""), &arg(2, ""), num(3, 3), num(4, 0), num(5, 0)),
        _ => {
            eprintln!("usage: models svd URL [THREADS] [ROUNDS] | als URL [FACTORS] [ITERATIONS] | recommend [REQUESTS] | evaluate [ROUNDS] | rank ease|ials URL [ROUNDS] [FACTORS ITERATIONS]");
            std::process::exit(2);
        }
    }
}

fn split(url: &str) -> (Vec<Rating>, Vec<Rating>) {
    assert!(!url.is_empty(), "a database URL is required");
    let mut s = store::open(url).expect("open store");
    let train = s.ratings(Split::Train).expect("train ratings");
    let test = s.ratings(Split::Test).expect("test ratings");
    assert!(!train.is_empty(), "no training ratings at {url}");
    (train, test)
}

fn test_rmse(m: &Model, test: &[Rating]) -> f64 {
    let sse: f64 = test
        .iter()
        .map(|r| {
            let p = m.predict(r.user_id, r.movie_id).unwrap_or(f32::NAN);
            let e = f64::from(p) - f64::from(r.rating);
            e * e
        })
        .sum();
    (sse / test.len() as f64).sqrt()
}

fn svd(url: &str, threads: usize, rounds: usize) {
    let (train, test) = split(url);
    let params = Hyperparams::Svd(SvdParams {
        threads,
        ..SvdParams::surprise()
    });
    let mut secs = Vec::new();
    let mut rmse = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        let m = fit(&params, &train, 42, &Silent).expect("svd fit");
        secs.push(t.elapsed().as_secs_f64());
        rmse = test_rmse(&m, &test);
    }
    println!(
        "{}",
        json!({
            "name": format!("cinematch svd ({threads} thread{})", if threads == 1 { "" } else { "s" }),
            "threads": threads,
            "train_rows": train.len(),
            "test_rows": test.len(),
            "fit_seconds": secs,
            "rmse": rmse,
            "params": params,
        })
    );
}

/// Records when each ALS iteration ends.
struct Clock {
    start: Instant,
    marks: Mutex<Vec<f64>>,
}

impl Progress for Clock {
    fn stage(&self, _: &str, _: Option<u64>) {
        self.marks
            .lock()
            .unwrap()
            .push(self.start.elapsed().as_secs_f64());
    }
    fn advance(&self, _: u64) {}
    fn message(&self, _: &str) {
        // Sent after the iteration's training RMSE is computed.
        self.marks
            .lock()
            .unwrap()
            .push(self.start.elapsed().as_secs_f64());
    }
    fn finish(&self) {}
}

/// `VmRSS` or `VmHWM` of this process in bytes, from /proc (Linux).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn als(url: &str, factors: usize, iterations: usize) {
    let (train, test) = split(url);
    let params = Hyperparams::Als(AlsParams {
        factors,
        iterations,
        ..AlsParams::default()
    });
    // Reset the high-water mark to the current RSS (Linux ≥ 4.0).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = proc_status_bytes("VmRSS:");
    let clock = Clock {
        start: Instant::now(),
        marks: Mutex::new(Vec::new()),
    };
    let m = fit(&params, &train, 42, &clock).expect("als fit");
    let total = clock.start.elapsed().as_secs_f64();
    let hwm = proc_status_bytes("VmHWM:");
    let marks = clock.marks.into_inner().unwrap();
    // marks[0]: the iterations start (after the CSR build); then one per
    // iteration.
    let setup = marks[0];
    let per_iter: Vec<f64> = marks.windows(2).map(|w| w[1] - w[0]).collect();
    let peak_added = match (reset, rss_before, hwm) {
        (true, Some(b), Some(h)) => Some(h.saturating_sub(b)),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "name": "cinematch als",
            "threads": rayon::current_num_threads(),
            "train_rows": train.len(),
            "fit_seconds": total,
            "setup_seconds": setup,
            "iteration_seconds": per_iter,
            "peak_rss_bytes": hwm,
            "rss_before_fit_bytes": rss_before,
            "peak_added_bytes": peak_added,
            "rmse": test_rmse(&m, &test),
            "params": params,
        })
    );
}

/// A model of the given shape with N(0, 0.1²)-ish factors and biases: the
/// latency of scoring depends on the shape only.
fn random_model(users: usize, movies: usize, k: usize, rng: &mut ChaCha8Rng) -> FactorModel {
    let mut v = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.2..0.2)).collect() };
    let (bu, bi, p, q) = (v(users), v(movies), v(users * k), v(movies * k));
    FactorModel::from_parts(
        Algo::Svd,
        3.5,
        (1..=users as i32).collect(),
        (1..=movies as i32).collect(),
        bu,
        bi,
        k,
        p,
        q,
    )
    .expect("valid model")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Runs `f` `n` times after `n / 10` warm-up calls; microseconds per call.
fn latency(n: usize, mut f: impl FnMut(usize)) -> serde_json::Value {
    for i in 0..n / 10 {
        f(i);
    }
    let mut us: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    json!({
        "requests": n,
        "mean_us": us.iter().sum::<f64>() / n as f64,
        "p50_us": percentile(&us, 0.5),
        "p90_us": percentile(&us, 0.9),
        "p99_us": percentile(&us, 0.99),
        "max_us": us[n - 1],
    })
}

fn recommend(requests: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let users = 1000;
    for (label, movies, k) in [
        ("ml-latest-small shape", 9_742usize, 100usize),
        ("ml-25m shape", 62_000, 128),
    ] {
        let model = random_model(users, movies, k, &mut rng);
        let catalogue: Vec<Movie> = (1..=movies as i32)
            .map(|id| Movie {
                movie_id: id,
                title: format!("Movie {id} (2000)"),
                genres: "Comedy|Drama".into(),
                pca_features: None,
            })
            .collect();
        let stats: Vec<MovieStats> = (1..=movies as i32)
            .map(|id| MovieStats {
                movie_id: id,
                count: 10,
                mean: 3.5,
            })
            .collect();
        // Each user rated ~150 movies, which the recommendation excludes.
        let rated: Vec<Vec<Rated>> = (0..users)
            .map(|_| {
                (0..150)
                    .map(|_| rng.random_range(1..=movies as i32))
                    .collect::<HashSet<i32>>()
                    .into_iter()
                    .map(|m| Rated::new(m, 4.0, 0))
                    .collect()
            })
            .collect();
        // Every list computed: no cache answering repeated users.
        let rec = Recommender::new(
            "bench".into(),
            Model::Factor(model.clone()),
            catalogue,
            &stats,
        )
        .with_list_cache(0);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let mut out = Vec::new();
        let mut rows = Vec::new();
        for (pool, threads) in [(None, rayon::current_num_threads()), (Some(&one), 1)] {
            let run = |f: &mut (dyn FnMut(usize) + Send)| match pool {
                Some(p) => p.install(|| latency(requests, f)),
                None => latency(requests, f),
            };
            let r = run(&mut |i| {
                let u = (i % users) as i32 + 1;
                let got = rec
                    .recommend(&Request::new(u, 10, &rated[i % users]))
                    .expect("recommend");
                assert_eq!(got.items.len(), 10);
            });
            let s = run(&mut |i| model.score_all(i % users, &mut out));
            rows.push(json!({"threads": threads, "recommend": r, "score_all": s}));
        }
        println!(
            "{}",
            json!({
                "name": "cinematch recommend",
                "shape": label,
                "movies": movies,
                "factors": k,
                "runs": rows,
            })
        );
    }
}

fn evaluate(rounds: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (users, movies, per_user) = (610, 9_742, 170);
    let model = cinematch::models::Model::Factor(random_model(users, movies, 100, &mut rng));
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for u in 1..=users as i32 {
        let rated: HashSet<i32> = (0..per_user)
            .map(|_| rng.random_range(1..=movies as i32))
            .collect();
        for (i, m) in rated.into_iter().enumerate() {
            let r = Rating {
                user_id: u,
                movie_id: m,
                rating: rng.random_range(1..=10) as f32 * 0.5,
                timestamp: 0,
            };
            if i % 5 == 0 {
                test.push(r)
            } else {
                train.push(r)
            }
        }
    }
    let opts = cinematch::eval::EvalOptions::default();
    let mut secs = Vec::new();
    let mut metrics = None;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let m = cinematch::eval::evaluate(&model, &train, &test, &opts);
        secs.push(t.elapsed().as_secs_f64());
        assert_eq!(m.test_ratings, test.len() as u64);
        metrics = Some(m);
    }
    println!(
        "{}",
        json!({
            "name": "cinematch evaluate",
            "users": users,
            "movies": movies,
            "train_rows": train.len(),
            "test_rows": test.len(),
            "seconds": secs,
            "metrics": metrics,
        })
    );
}

/// `factors` and `iterations` of 0 keep the defaults.
fn rank(algo: &str, url: &str, rounds: usize, factors: usize, iterations: usize) {
    let algo = match algo {
        "ease" => Algo::Ease,
        "ials" => Algo::Ials,
        other => panic!("rank: {other:?} is not a ranking model (ease or ials)"),
    };
    let (train, test) = split(url);
    let mut params = Hyperparams::default_for(algo);
    if let Hyperparams::Ials(p) = &mut params {
        if factors > 0 {
            p.factors = factors;
        }
        if iterations > 0 {
            p.iterations = iterations;
        }
    }
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = proc_status_bytes("VmRSS:");
    let mut secs = Vec::new();
    let mut peak = None;
    let mut model = None;
    for round in 0..rounds.max(1) {
        drop(model.take());
        let t = Instant::now();
        let m = fit(&params, &train, 42, &Silent).expect("fit");
        secs.push(t.elapsed().as_secs_f64());
        if round == 0 {
            peak = proc_status_bytes("VmHWM:");
        }
        model = Some(m);
    }
    let model = model.expect("at least one round");
    let t = Instant::now();
    let report = cinematch::eval::evaluate(
        &model,
        &train,
        &test,
        &cinematch::eval::EvalOptions::default(),
    );
    let eval_seconds = t.elapsed().as_secs_f64();
    if let Ok(path) = std::env::var("RANK_LISTS") {
        write_lists(&model, &train, &test, &path);
    }
    let peak_added = match (reset, rss_before, peak) {
        (true, Some(b), Some(h)) => Some(h.saturating_sub(b)),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "name": format!("cinematch {}", algo.as_str()),
            "threads": rayon::current_num_threads(),
            "train_rows": train.len(),
            "test_rows": test.len(),
            "fit_seconds": secs,
            "peak_added_bytes": peak_added,
            "cinematch_ndcg_at_10": report.ndcg_at_10,
            "cinematch_recall_at_10": report.recall_at_10,
            "eval_seconds": eval_seconds,
            "artifact_bytes": model.to_bytes().len(),
            "params": params,
        })
    );
}

/// Each test user's top 10 among the movies they did not rate in train, as
/// `user,movie,...` lines, for Python to score (ties by movieId ascending).
fn write_lists(model: &Model, train: &[Rating], test: &[Rating], path: &str) {
    use cinematch::eval::Scorer;
    use std::collections::{BTreeSet, HashMap};
    use std::fmt::Write as _;
    let mut history: HashMap<i32, Vec<Rated>> = HashMap::new();
    for r in train {
        history.entry(r.user_id).or_default().push(Rated::from(r));
    }
    let users: BTreeSet<i32> = test.iter().map(|r| r.user_id).collect();
    let mut out = String::new();
    let mut scores = Vec::new();
    for u in users {
        let Some(h) = history.get_mut(&u) else {
            continue;
        };
        h.sort_unstable_by_key(|r| r.movie_id);
        scores.clear();
        if !model.score_catalogue(u, h, &mut scores) {
            continue;
        }
        let seen: HashSet<i32> = h.iter().map(|r| r.movie_id).collect();
        scores.retain(|(m, _)| !seen.contains(m));
        scores.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        write!(out, "{u}").unwrap();
        for (m, _) in scores.iter().take(10) {
            write!(out, ",{m}").unwrap();
        }
        out.push('\n');
    }
    std::fs::write(path, out).expect("write the lists");
}
