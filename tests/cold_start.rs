//! The cold-start list (`recommend::popularity`) through its public
//! function, with every number worked by hand: who is listed, in what
//! order, with what damped mean. Kept apart from the catalogue's internals
//! so it holds whatever shape the catalogue code takes.

use cinematch::recommend::{popularity, POPULAR_DAMPING, POPULAR_MIN_COUNT};
use cinematch::store::MovieStats;

fn stats(movie_id: i32, count: i64, mean: f64) -> MovieStats {
    MovieStats {
        movie_id,
        count,
        mean,
    }
}

#[test]
fn the_constants_are_the_documented_ones() {
    assert_eq!(POPULAR_MIN_COUNT, 10);
    assert_eq!(POPULAR_DAMPING, 25.0);
}

/// Damped mean `(sum + 25 * global) / (count + 25)`, the global mean over
/// every rating (listed or not), movies under 10 ratings left out, best
/// first. By hand: 40 + 10 + 9 + 1 = 60 ratings; sums 40*4 = 160,
/// 10*5 = 50, 9*5 = 45, 1*1 = 1: global = 256 / 60 = 4.2666...
/// Movie 1: (160 + 25 * 4.2666) / 65 = 266.666 / 65 = 4.102564...
/// Movie 2: (50 + 106.666) / 35 = 156.666 / 35 = 4.476190...
#[test]
fn popularity_damps_toward_the_global_mean_and_drops_rare_movies() {
    let list = popularity(&[
        stats(1, 40, 4.0),
        stats(2, 10, 5.0),
        stats(3, 9, 5.0),
        stats(4, 1, 1.0),
    ]);
    let global = 256.0 / 60.0;
    let expected = [
        (2, (50.0 + 25.0 * global) / 35.0),
        (1, (160.0 + 25.0 * global) / 65.0),
    ];
    assert_eq!(list.len(), 2, "{list:?}");
    for ((id, score), (want_id, want)) in list.iter().zip(expected) {
        assert_eq!(*id, want_id, "{list:?}");
        assert!((score - want).abs() < 1e-12, "{id}: {score} vs {want}");
    }
    assert!((list[0].1 - 4.476_190_476_190_476).abs() < 1e-12);
    assert!((list[1].1 - 4.102_564_102_564_102).abs() < 1e-12);
}

/// Exactly 10 ratings is enough; ties in the damped mean go to the lower id.
#[test]
fn popularity_keeps_ten_ratings_and_breaks_ties_by_id() {
    let list = popularity(&[stats(9, 10, 3.0), stats(5, 10, 3.0), stats(7, 20, 3.0)]);
    // Every mean is 3.0, so every damped mean is exactly 3.0.
    assert_eq!(list, vec![(5, 3.0), (7, 3.0), (9, 3.0)]);
}

/// A worse mean with many ratings loses to a better one; a high mean with
/// few ratings is pulled down more than the same mean with many.
#[test]
fn popularity_prefers_confidence_at_the_same_mean() {
    let list = popularity(&[stats(1, 10, 5.0), stats(2, 1000, 5.0), stats(3, 1000, 2.0)]);
    let ids: Vec<i32> = list.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2, 1, 3]);
    assert!(list[0].1 > list[1].1 && list[1].1 > list[2].1, "{list:?}");
}

#[test]
fn popularity_of_nothing_is_empty() {
    assert!(popularity(&[]).is_empty());
    // Only rare movies: a global mean exists, nobody is listed.
    assert!(popularity(&[stats(1, 3, 4.0)]).is_empty());
    // Movies without ratings: no global mean, no list (and no NaN).
    assert!(popularity(&[stats(1, 0, 0.0)]).is_empty());
}

// --- the history half-life a run serves with (issue 17, item 4) -----------------------

/// Four clusters of ten movies; every user rates six movies of one cluster
/// in their first 100 days and six of another two years later, all five
/// stars. Fading old ratings puts the later cluster first, which is what
/// the held-out later ratings ask for, so a half-life is chosen and beats
/// no fading by the margin. With every rating at one instant there is
/// nothing to fade: every candidate scores alike and none is kept.
#[test]
fn recency_is_chosen_when_tastes_move_and_not_otherwise() {
    use cinematch::models::{self, Algo, Hyperparams};
    use cinematch::progress::Silent;
    use cinematch::registry::recency::{choose, MARGIN};
    use cinematch::Rating;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    let day = 86_400i64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut rows = Vec::new();
    for u in 0..600i32 {
        let a = u % 4;
        let b = (a + 1 + (u / 4) % 3) % 4;
        for (phase, cluster) in [(0i64, a), (1, b)] {
            let mut ids: Vec<i32> = (1..=10).map(|m| cluster * 10 + m).collect();
            ids.shuffle(&mut rng);
            for (j, &m) in ids.iter().take(6).enumerate() {
                let t = phase * 700 * day + (j as i64) * 15 * day + rng.random_range(0..day);
                rows.push(Rating {
                    user_id: u + 1,
                    movie_id: m,
                    rating: 5.0,
                    timestamp: t,
                });
            }
        }
    }
    let split = |rows: &[Rating]| -> (Vec<Rating>, Vec<Rating>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        rows.iter().partition(|_| rng.random_bool(0.7))
    };
    let ease = Hyperparams::default_for(Algo::Ease);

    let (train, test) = split(&rows);
    let mut model = models::fit(&ease, &train, 42, &Silent).unwrap();
    let choice = choose(&mut model, &train, &test).expect("ease scores histories");
    assert!(choice.users > 50, "{choice:?}");
    assert_eq!(choice.candidates[0].half_life.as_days(), None);
    let none = choice.candidates[0].ndcg_at_10;
    let chosen = choice
        .candidates
        .iter()
        .find(|c| c.half_life == choice.chosen)
        .unwrap();
    assert!(choice.chosen.as_days().is_some(), "{choice:?}");
    assert!(chosen.ndcg_at_10 > none * (1.0 + MARGIN), "{choice:?}");
    assert_eq!(
        model.history_half_life().unwrap().as_days(),
        None,
        "choosing must leave the model as evaluated"
    );

    let flat: Vec<Rating> = rows
        .iter()
        .map(|r| Rating {
            timestamp: 1_000 * day,
            ..*r
        })
        .collect();
    let (train, test) = split(&flat);
    let mut model = models::fit(&ease, &train, 42, &Silent).unwrap();
    let choice = choose(&mut model, &train, &test).unwrap();
    assert_eq!(choice.chosen.as_days(), None, "{choice:?}");
    let scores: Vec<f64> = choice.candidates.iter().map(|c| c.ndcg_at_10).collect();
    assert!(
        scores.iter().all(|s| (s - scores[0]).abs() < 1e-12),
        "{scores:?}"
    );
}
