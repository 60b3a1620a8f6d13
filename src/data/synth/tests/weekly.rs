//! Weekly batches: determinism, the history unchanged, batches that ingest
//! cleanly, clean weeks that look like the history and drifted weeks that
//! move what they should.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::data::formats::{read_dir, read_ratings};
use crate::data::synth::*;
use crate::data::{ReadOptions, SkipReport};
use crate::progress::Silent;
use crate::types::Rating;

/// Reads a batch the way ingestion does: strict, and with `known` any
/// rating of a movie missing from movies.csv is an error.
fn read(path: &Path, known: Option<&HashSet<i32>>) -> Vec<Rating> {
    let mut skipped = SkipReport::default();
    read_ratings(path, ReadOptions::default(), known, &mut skipped).unwrap()
}

fn hist(r: &[Rating]) -> [f64; 10] {
    let mut h = [0.0; 10];
    for x in r {
        h[(x.rating * 2.0) as usize - 1] += 1.0;
    }
    h.map(|c| c / r.len() as f64)
}

fn mean_std(r: &[Rating]) -> (f64, f64) {
    let n = r.len() as f64;
    let m = r.iter().map(|x| f64::from(x.rating)).sum::<f64>() / n;
    let v = r
        .iter()
        .map(|x| (f64::from(x.rating) - m).powi(2))
        .sum::<f64>()
        / n;
    (m, v.sqrt())
}

/// Population stability index over the ten half-star levels.
fn psi(a: &[f64; 10], b: &[f64; 10]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(1e-4), q.max(1e-4));
            (p - q) * (p / q).ln()
        })
        .sum()
}

/// Two-sample Kolmogorov–Smirnov D: the largest CDF gap over the levels.
fn ks(a: &[f64; 10], b: &[f64; 10]) -> f64 {
    let (mut ca, mut cb, mut d) = (0.0, 0.0, 0.0f64);
    for i in 0..10 {
        ca += a[i];
        cb += b[i];
        d = d.max((ca - cb).abs());
    }
    d
}

/// Genre shares of the ratings (each genre of a rated movie counts).
fn genre_shares(r: &[Rating], genres: &HashMap<i32, String>) -> HashMap<String, f64> {
    let mut c: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for x in r {
        for g in genres[&x.movie_id].split('|') {
            *c.entry(g.to_string()).or_default() += 1.0;
            total += 1.0;
        }
    }
    c.values_mut().for_each(|v| *v /= total);
    c
}

fn jensen_shannon(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let keys: HashSet<&String> = a.keys().chain(b.keys()).collect();
    let kl = |p: f64, m: f64| if p > 0.0 { p * (p / m).ln() } else { 0.0 };
    keys.into_iter()
        .map(|k| {
            let (p, q) = (*a.get(k).unwrap_or(&0.0), *b.get(k).unwrap_or(&0.0));
            let m = (p + q) / 2.0;
            0.5 * kl(p, m) + 0.5 * kl(q, m)
        })
        .sum()
}

fn movie_genres(dir: &Path) -> HashMap<i32, String> {
    read_dir(dir, ReadOptions::default())
        .unwrap()
        .movies
        .into_iter()
        .map(|m| (m.movie_id, m.genres))
        .collect()
}

fn opts(seed: u64) -> SynthOptions {
    SynthOptions {
        seed,
        ..SynthOptions::default()
    }
}

#[test]
fn rejects_impossible_weekly_options() {
    let dir = tempfile::tempdir().unwrap();
    let run = |weekly: WeeklyOptions, o: &SynthOptions| {
        generate_weekly(dir.path(), o, &weekly, &Silent)
            .unwrap_err()
            .to_string()
    };
    let spec = |week, kinds| WeeklyOptions {
        weeks: 3,
        ratings_per_week: 10,
        drift: vec![DriftSpec { week, kinds }],
    };
    let small = SynthOptions {
        users: 20,
        movies: 50,
        ratings: 500,
        ..SynthOptions::default()
    };
    let e = run(spec(4, vec![DriftKind::Mean(0.1)]), &small);
    assert!(e.contains("week 4, but weeks run from 1 to 3"), "{e}");
    let e = run(spec(0, vec![DriftKind::Mean(0.1)]), &small);
    assert!(e.contains("week 0"), "{e}");
    let e = run(spec(2, vec![DriftKind::Spread(-1.0)]), &small);
    assert!(e.contains("drift \"spread:-1\" for week 2"), "{e}");
    let e = run(
        spec(
            1,
            vec![DriftKind::Genre {
                genre: "Westerns".into(),
                delta: 0.1,
            }],
        ),
        &small,
    );
    assert!(e.contains("unknown genre"), "{e}");
    let mut twice = spec(2, vec![DriftKind::Mean(0.1)]);
    twice.drift.push(DriftSpec {
        week: 2,
        kinds: vec![DriftKind::Mean(0.2)],
    });
    let e = run(twice, &small);
    assert!(
        e.contains("week 2 has drift \"mean:+0.1\" and \"mean:+0.2\""),
        "{e}"
    );
    // 20 users x 50 movies = 1000 pairs, 500 in the history.
    let full = WeeklyOptions {
        weeks: 2,
        ratings_per_week: 300,
        drift: vec![],
    };
    let e = run(full, &small);
    assert!(e.contains("week 2 needs 300 more ratings"), "{e}");
    let late = SynthOptions {
        end_timestamp: i64::MAX - 10,
        ..small.clone()
    };
    let e = run(WeeklyOptions::default(), &late);
    assert!(e.contains("overflow"), "{e}");
    assert!(!dir.path().join("ratings.csv").exists());
}

#[test]
fn deterministic_per_seed_and_history_is_generate_s() {
    let o = SynthOptions {
        users: 200,
        movies: 2_000,
        ratings: 20_000,
        ..SynthOptions::default()
    };
    let weekly = WeeklyOptions {
        weeks: 3,
        ratings_per_week: 2_000,
        drift: vec![DriftSpec {
            week: 2,
            kinds: parse_drift("new-movies:0.2,genre:Drama:+0.3,mean:-0.2").unwrap(),
        }],
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let ra = generate_weekly(a.path(), &o, &weekly, &Silent).unwrap();
    // Thread count must not matter.
    let rb = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| generate_weekly(b.path(), &o, &weekly, &Silent).unwrap());
    let no_paths = |r: &WeeklyReport| {
        let mut r = r.clone();
        r.weeks.iter_mut().for_each(|w| w.path = PathBuf::new());
        r
    };
    assert_eq!(
        no_paths(&ra),
        no_paths(&rb),
        "the report must not depend on the thread count"
    );
    generate_weekly(
        c.path(),
        &SynthOptions {
            seed: 9,
            ..o.clone()
        },
        &weekly,
        &Silent,
    )
    .unwrap();
    let rp = generate(plain.path(), &o, &Silent).unwrap();
    assert_eq!(ra.history, rp);
    let files = [
        "ratings.csv",
        "movies.csv",
        "batches/batch_w1.csv",
        "batches/batch_w2.csv",
        "batches/batch_w3.csv",
    ];
    for f in files {
        let x = std::fs::read(a.path().join(f)).unwrap();
        assert_eq!(
            x,
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs between runs"
        );
        assert_ne!(
            x,
            std::fs::read(c.path().join(f)).unwrap(),
            "{f} ignores the seed"
        );
    }
    assert_eq!(
        std::fs::read(a.path().join("ratings.csv")).unwrap(),
        std::fs::read(plain.path().join("ratings.csv")).unwrap(),
        "the history must be exactly what generate writes"
    );
    let movies = std::fs::read_to_string(a.path().join("movies.csv")).unwrap();
    let base = std::fs::read_to_string(plain.path().join("movies.csv")).unwrap();
    assert!(
        movies.starts_with(&base),
        "new movies are appended after the base catalogue"
    );
    assert_eq!(
        movies.lines().count() - base.lines().count(),
        ra.weeks[1].new_movies as usize
    );
    assert_eq!(ra.catalogue_movies, 2_000 + ra.weeks[1].new_movies);
    assert_eq!(
        ra.weeks.iter().map(|w| w.new_movies).sum::<u32>(),
        ra.weeks[1].new_movies
    );
}

#[test]
fn batches_are_new_known_and_in_their_week() {
    let o = SynthOptions {
        users: 300,
        movies: 1_500,
        ratings: 40_000,
        seed: 5,
        ..SynthOptions::default()
    };
    let weekly = WeeklyOptions {
        weeks: 4,
        // Heavy enough that the heaviest raters need stand-ins.
        ratings_per_week: 20_000,
        drift: vec![
            DriftSpec {
                week: 2,
                kinds: vec![DriftKind::NewMovies(0.3)],
            },
            DriftSpec {
                week: 4,
                kinds: vec![DriftKind::NewMovies(0.1), DriftKind::Mean(0.5)],
            },
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("batches");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("batch_w7.csv"), "left over").unwrap();
    let report = generate_weekly(dir.path(), &o, &weekly, &Silent).unwrap();
    assert!(!stale.join("batch_w7.csv").exists());

    // The history loads on its own, and every batch movie is listed.
    let ds = read_dir(dir.path(), ReadOptions::default()).unwrap();
    assert_eq!(ds.ratings.len(), 40_000);
    assert_eq!(ds.movies.len() as u32, report.catalogue_movies);
    let known: HashSet<i32> = ds.movies.iter().map(|m| m.movie_id).collect();
    let mut pairs: HashSet<(i32, i32)> =
        ds.ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
    let history_end = ds.ratings.iter().map(|r| r.timestamp).max().unwrap();
    assert!(history_end <= o.end_timestamp);
    let mut next_user = 301;
    let mut next_movie = 1_501;
    for (k, w) in report.weeks.iter().enumerate() {
        assert_eq!(w.week, k as u32 + 1);
        assert_eq!(
            w.path,
            dir.path().join(format!("batches/batch_w{}.csv", k + 1))
        );
        let batch = read(&w.path, Some(&known));
        assert_eq!(batch.len(), 20_000);
        assert_eq!(w.ratings, 20_000);
        assert_eq!(w.start, o.end_timestamp + k as i64 * WEEK_SECONDS);
        assert_eq!(w.end, w.start + WEEK_SECONDS);
        for r in &batch {
            assert!(pairs.insert((r.user_id, r.movie_id)), "repeated pair {r:?}");
            assert!(w.start <= r.timestamp && r.timestamp < w.end, "{r:?}");
            let new_user = r.user_id > 300;
            let new_movie = r.movie_id > 1_500;
            if new_user {
                assert!((next_user..next_user + w.new_users as i32).contains(&r.user_id));
            }
            if new_movie {
                assert!((next_movie..next_movie + w.new_movies as i32).contains(&r.movie_id));
            }
        }
        let (m, s) = mean_std(&batch);
        assert!((m - w.mean_rating).abs() < 1e-9 && (s - w.std_rating).abs() < 1e-9);
        let share = |f: &dyn Fn(&Rating) -> bool| {
            batch.iter().filter(|r| f(r)).count() as f64 / batch.len() as f64
        };
        let requested = w.drift.iter().find_map(|d| match d {
            DriftKind::NewMovies(s) => Some(*s),
            _ => None,
        });
        let want = requested.unwrap_or(0.0);
        assert_eq!(w.new_movie_ratings as f64 / 20_000.0, want);
        assert_eq!(w.new_user_ratings as f64 / 20_000.0, want);
        assert_eq!(share(&|r| r.movie_id > 1_500), want);
        assert_eq!(share(&|r| r.user_id > 300), want);
        // New users and new movies cross as if independent.
        let both = share(&|r| r.movie_id > 1_500 && r.user_id > 300);
        assert!((both - want * want).abs() < 1e-3, "{both}");
        assert_eq!(w.new_movies > 0, want > 0.0);
        next_user += w.new_users as i32;
        next_movie += w.new_movies as i32;
    }
    assert_eq!(report.weeks[0].drift, vec![]);
    assert_eq!(
        report.weeks[3].drift,
        vec![DriftKind::NewMovies(0.1), DriftKind::Mean(0.5)]
    );
}

#[test]
fn clean_weeks_look_like_the_history() {
    // Seed 1 has two raters holding 6,080 and 5,645 of the 9,000
    // movies: the case that needs stand-ins.
    for seed in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let weekly = WeeklyOptions {
            weeks: 3,
            ratings_per_week: 15_000,
            drift: vec![],
        };
        let report = generate_weekly(dir.path(), &opts(seed), &weekly, &Silent).unwrap();
        let genres = movie_genres(dir.path());
        let history = read(&dir.path().join("ratings.csv"), None);
        let (hm, hs) = mean_std(&history);
        assert!((hm - report.history.mean_rating).abs() < 1e-9);
        let hh = hist(&history);
        let hg = genre_shares(&history, &genres);
        for w in &report.weeks {
            let batch = read(&w.path, None);
            let (m, s) = mean_std(&batch);
            let bh = hist(&batch);
            let (p, d) = (psi(&hh, &bh), ks(&hh, &bh));
            let js = jensen_shannon(&hg, &genre_shares(&batch, &genres));
            let what = format!(
                "seed {seed} week {}: mean {m:.3} vs {hm:.3}, std {s:.3} vs {hs:.3}, \
                 PSI {p:.4}, KS {d:.4}, JS {js:.5}",
                w.week
            );
            assert!((m - hm).abs() < 0.03, "{what}");
            assert!((s - hs).abs() < 0.03, "{what}");
            assert!(p < 0.02, "{what}");
            assert!(d < 0.03, "{what}");
            assert!(js < 0.002, "{what}");
        }
    }
}

#[test]
fn drifted_weeks_move_what_they_should() {
    let weekly = WeeklyOptions {
        weeks: 6,
        ratings_per_week: 15_000,
        drift: vec![
            DriftSpec {
                week: 2,
                kinds: vec![DriftKind::Mean(0.4)],
            },
            DriftSpec {
                week: 3,
                kinds: vec![DriftKind::Genre {
                    genre: "Comedy".into(),
                    delta: 0.3,
                }],
            },
            DriftSpec {
                week: 4,
                kinds: vec![DriftKind::NewMovies(0.2)],
            },
            DriftSpec {
                week: 5,
                kinds: vec![DriftKind::Spread(1.5)],
            },
            DriftSpec {
                week: 6,
                kinds: vec![DriftKind::Spread(0.5)],
            },
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let report = generate_weekly(dir.path(), &opts(2), &weekly, &Silent).unwrap();
    let genres = movie_genres(dir.path());
    let history = read(&dir.path().join("ratings.csv"), None);
    let (hm, hs) = mean_std(&history);
    let hh = hist(&history);
    let hg = genre_shares(&history, &genres);
    let weeks: Vec<Vec<Rating>> = report.weeks.iter().map(|w| read(&w.path, None)).collect();
    let stats = |b: &[Rating]| {
        let (m, s) = mean_std(b);
        let h = hist(b);
        (
            m,
            s,
            psi(&hh, &h),
            ks(&hh, &h),
            jensen_shannon(&hg, &genre_shares(b, &genres)),
        )
    };
    let clean = stats(&weeks[0]);
    let show = |name: &str, s: (f64, f64, f64, f64, f64)| {
        format!(
            "{name}: mean {:.3} ({:+.3}), std {:.3} ({:+.3}), PSI {:.4}, KS {:.4}, JS {:.5}",
            s.0,
            s.0 - hm,
            s.1,
            s.1 - hs,
            s.2,
            s.3,
            s.4
        )
    };
    eprintln!("history: mean {hm:.3}, std {hs:.3}");
    eprintln!("{}", show("clean", clean));

    // Mean +0.4: clipping at 5 stars absorbs some of it.
    let mean = stats(&weeks[1]);
    eprintln!("{}", show("mean:+0.4", mean));
    assert!(mean.0 - hm >= 0.3, "{}", show("mean", mean));
    assert!(mean.2 > 0.05 && mean.3 > 0.1, "{}", show("mean", mean));

    // Genre: Comedy's share of ratings and its mean both rise.
    let genre = stats(&weeks[2]);
    eprintln!("{}", show("genre:Comedy:+0.3", genre));
    let comedy = |b: &[Rating]| -> (f64, f64) {
        let c: Vec<Rating> = b
            .iter()
            .filter(|r| genres[&r.movie_id].split('|').any(|g| g == "Comedy"))
            .copied()
            .collect();
        (c.len() as f64 / b.len() as f64, mean_std(&c).0)
    };
    let (h_share, h_mean) = comedy(&history);
    let (c_share, c_mean) = comedy(&weeks[0]);
    let (g_share, g_mean) = comedy(&weeks[2]);
    eprintln!(
        "  Comedy share {h_share:.3} history, {c_share:.3} clean, {g_share:.3} drifted; \
         mean {h_mean:.3}, {c_mean:.3}, {g_mean:.3}"
    );
    assert!((c_share - h_share).abs() < 0.02 && (c_mean - h_mean).abs() < 0.05);
    assert!(
        g_share > h_share + 0.1,
        "share {h_share:.3} -> {g_share:.3}"
    );
    assert!(g_mean > h_mean + 0.2, "mean {h_mean:.3} -> {g_mean:.3}");
    assert!(
        genre.4 > 20.0 * clean.4.max(1e-4),
        "{}",
        show("genre", genre)
    );

    // New movies and users: a fifth of the ratings each, unseen by the
    // history; the ratings themselves stay like the history's.
    let new = stats(&weeks[3]);
    eprintln!("{}", show("new-movies:0.2", new));
    let rated_movies: HashSet<i32> = history.iter().map(|r| r.movie_id).collect();
    let rated_users: HashSet<i32> = history.iter().map(|r| r.user_id).collect();
    let unseen = |b: &[Rating], f: &dyn Fn(&Rating) -> bool| {
        b.iter().filter(|r| f(r)).count() as f64 / b.len() as f64
    };
    let clean_unseen = unseen(&weeks[0], &|r| !rated_movies.contains(&r.movie_id));
    let new_unseen = unseen(&weeks[3], &|r| !rated_movies.contains(&r.movie_id));
    let new_users = unseen(&weeks[3], &|r| !rated_users.contains(&r.user_id));
    eprintln!(
        "  unseen-movie share {clean_unseen:.3} clean, {new_unseen:.3} drifted; \
         unseen-user share {new_users:.3}"
    );
    assert!(
        (new_unseen - clean_unseen - 0.2).abs() < 0.02,
        "{new_unseen}"
    );
    assert!((new_users - 0.2).abs() < 1e-9);
    assert_eq!(
        unseen(&weeks[0], &|r| !rated_users.contains(&r.user_id)),
        0.0
    );
    assert!(
        (new.0 - hm).abs() < 0.05 && new.2 < 0.02,
        "{}",
        show("new", new)
    );

    // Spread: the std moves, the mean (nearly) does not.
    let wide = stats(&weeks[4]);
    let narrow = stats(&weeks[5]);
    eprintln!("{}", show("spread:1.5", wide));
    eprintln!("{}", show("spread:0.5", narrow));
    assert!(wide.1 > hs + 0.2, "{}", show("wide", wide));
    assert!(narrow.1 < hs - 0.2, "{}", show("narrow", narrow));
    assert!((wide.0 - hm).abs() < 0.1 && (narrow.0 - hm).abs() < 0.1);

    for (w, kinds) in report.weeks.iter().zip([0, 1, 1, 1, 1, 1]) {
        assert_eq!(w.drift.len(), kinds);
    }
}

#[test]
fn tiny_and_empty_worlds_work() {
    // Everyone has rated nearly everything: exercises the exhausted-
    // catalogue paths (local tables, stand-ins beyond the allowance).
    let o = SynthOptions {
        users: 10,
        movies: 30,
        ratings: 200,
        ..SynthOptions::default()
    };
    let weekly = WeeklyOptions {
        weeks: 2,
        ratings_per_week: 50,
        drift: vec![DriftSpec {
            week: 2,
            kinds: vec![DriftKind::NewMovies(0.5)],
        }],
    };
    let dir = tempfile::tempdir().unwrap();
    let report = generate_weekly(dir.path(), &o, &weekly, &Silent).unwrap();
    let ds = read_dir(dir.path(), ReadOptions::default()).unwrap();
    let known: HashSet<i32> = ds.movies.iter().map(|m| m.movie_id).collect();
    let mut pairs: HashSet<(i32, i32)> =
        ds.ratings.iter().map(|r| (r.user_id, r.movie_id)).collect();
    for w in &report.weeks {
        for r in read(&w.path, Some(&known)) {
            assert!(pairs.insert((r.user_id, r.movie_id)));
        }
    }
    assert_eq!(pairs.len(), 300);

    // No history at all: batches by everyone alike.
    let empty = SynthOptions { ratings: 0, ..o };
    let dir = tempfile::tempdir().unwrap();
    let report = generate_weekly(
        dir.path(),
        &empty,
        &WeeklyOptions {
            weeks: 1,
            ratings_per_week: 40,
            drift: vec![],
        },
        &Silent,
    )
    .unwrap();
    assert_eq!(read(&report.weeks[0].path, None).len(), 40);
    // No weeks: just the history.
    let report = generate_weekly(
        dir.path(),
        &o,
        &WeeklyOptions {
            weeks: 0,
            ratings_per_week: 40,
            drift: vec![],
        },
        &Silent,
    )
    .unwrap();
    assert!(report.weeks.is_empty());
}
