//! `cinematch-libmf-bench TRAIN.csv TEST.csv [THREADS=2] [ROUNDS=3]
//! [FACTORS=100] [ITERATIONS=20]`
//!
//! Files: `user,movie,rating` lines without a header. Ids are mapped to dense
//! indices first (LIBMF sizes P and Q by the largest index); a test pair with
//! an id unseen in training gets LIBMF's fallback (the training mean).
//! Parameters are LIBMF's defaults (squared loss, lr 0.1 with its adaptive
//! per-row rates, L2 0.1 on P and Q, no biases) apart from the factor,
//! iteration and thread counts. Prints one JSON line: the seconds of each
//! `fit` (LIBMF's own copy of the data, grid and shuffle included, as
//! CineMatch's fit includes its indexing) and the test RMSE of predictions
//! clipped to 0.5..5.0.
use std::collections::HashMap;
use std::time::Instant;

fn read(path: &str) -> Vec<(i32, i32, f32)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let mut next = || {
                f.next()
                    .unwrap_or_else(|| panic!("{path}: short line {l:?}"))
            };
            let u = next().parse().expect("user id");
            let m = next().parse().expect("movie id");
            let r = next().parse().expect("rating");
            (u, m, r)
        })
        .collect()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: i32| a.get(i).map_or(d, |s| s.parse().expect("number"));
    let (threads, rounds, factors, iters) = (num(2, 2), num(3, 3), num(4, 100), num(5, 20));
    let train = read(&a[0]);
    let test = read(&a[1]);
    let (mut users, mut movies) = (HashMap::new(), HashMap::new());
    let mut data = libmf::Matrix::with_capacity(train.len());
    for &(u, m, r) in &train {
        let n = users.len() as i32;
        let u = *users.entry(u).or_insert(n);
        let n = movies.len() as i32;
        let m = *movies.entry(m).or_insert(n);
        data.push(u, m, r);
    }
    let mut secs = Vec::new();
    let mut rmse = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        let model = libmf::Model::params()
            .factors(factors)
            .iterations(iters)
            .threads(threads)
            .quiet(true)
            .fit(&data)
            .expect("libmf fit");
        secs.push(t.elapsed().as_secs_f64());
        let sse: f64 = test
            .iter()
            .map(|&(u, m, r)| {
                let u = users.get(&u).copied().unwrap_or(-1);
                let m = movies.get(&m).copied().unwrap_or(-1);
                let e = f64::from(model.predict(u, m).clamp(0.5, 5.0)) - f64::from(r);
                e * e
            })
            .sum();
        rmse = (sse / test.len() as f64).sqrt();
    }
    let secs: Vec<String> = secs.iter().map(|s| format!("{s:.4}")).collect();
    println!(
        "{{\"name\": \"libmf {threads} threads\", \"threads\": {threads}, \"factors\": {factors}, \
         \"iterations\": {iters}, \"train_rows\": {}, \"fit_seconds\": [{}], \"rmse\": {rmse}}}",
        train.len(),
        secs.join(", ")
    );
}
