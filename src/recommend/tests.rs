use std::collections::HashSet;

use super::*;
use crate::models::Algo;
use crate::types::rated;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GENRES: [&str; 4] = ["Comedy", "Drama", "Horror", "Sci-Fi"];

/// A random model of `movies` movies (ids 10, 13, 16, ...) and 12 users;
/// `kind` shapes the factors: 0 normal, 1 many exact ties (duplicate
/// rows and biases), 2 tiny, subnormal and zero factors, large biases
/// and sparse ids, 3 a few huge factors, 4 near ties.
fn random_model(seed: u64, movies: usize, k: usize, kind: u8) -> (FactorModel, Vec<Movie>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let users = 12;
    let mut g = |scale: f32| (rng.random::<f32>() - 0.5) * 2.0 * scale;
    let scale = match kind {
        2 => 1e-6,
        _ => 0.3,
    };
    let p: Vec<f32> = (0..users * k).map(|_| g(0.5)).collect();
    let mut q: Vec<f32> = (0..movies * k).map(|_| g(scale)).collect();
    let mut item_bias: Vec<f32> = (0..movies)
        .map(|_| g(if kind == 2 { 3.0 } else { 0.5 }))
        .collect();
    if kind == 1 {
        for m in (0..movies).step_by(3) {
            let src = (m / 9) * 9;
            let row: Vec<f32> = q[src * k..(src + 1) * k].to_vec();
            q[m * k..(m + 1) * k].copy_from_slice(&row);
            item_bias[m] = item_bias[src];
        }
    }
    if kind == 2 {
        // Some rows subnormal (so is their scale), some all zero.
        for m in (0..movies).step_by(5) {
            for x in &mut q[m * k..(m + 1) * k] {
                *x *= 1e-33;
            }
        }
        for m in (0..movies).step_by(7) {
            q[m * k..(m + 1) * k].fill(0.0);
        }
    }
    if kind == 3 {
        for m in (0..movies).step_by(97) {
            q[m * k] = 3000.0;
        }
    }
    if kind == 4 {
        // Near ties: groups of 16 movies a hair apart (far below the
        // int8 error), so only exact re-scoring orders them.
        for m in 0..movies {
            let src = (m / 16) * 16;
            for f in 0..k {
                q[m * k + f] = q[src * k + f] + g(1e-4);
            }
            item_bias[m] = item_bias[src] + g(1e-5);
        }
    }
    let user_bias: Vec<f32> = (0..users).map(|_| g(0.3)).collect();
    // Sparse ids (kind 2) take the hashed id lookup instead of the table.
    let spread = if kind == 2 { 1000 } else { 1 };
    let movie_ids: Vec<i32> = (0..movies as i32).map(|i| (10 + 3 * i) * spread).collect();
    let catalogue = movie_ids
        .iter()
        .map(|&id| Movie {
            movie_id: id,
            title: format!("Movie {id}"),
            genres: format!("{}|{}", GENRES[id as usize % 4], GENRES[id as usize % 3]),
            pca_features: None,
        })
        .collect();
    let model = FactorModel::from_parts(
        Algo::Svd,
        3.5,
        (1..=users as i32).collect(),
        movie_ids,
        user_bias,
        item_bias,
        k,
        p,
        q,
    )
    .unwrap();
    (model, catalogue)
}

/// The serving scan gives exactly `FactorModel::top_k`'s answer: same
/// movies, same order, same (clipped) ratings, with exclusions, genre
/// filters, ties, tiny and huge factors, any k, any width.
#[test]
fn serving_scan_equals_top_k() {
    let mut seed = 0;
    for (movies, k) in [(1, 1), (7, 3), (50, 8), (1003, 13), (517, 100), (2000, 128)] {
        for kind in 0..5u8 {
            seed += 1;
            let (model, catalogue) = random_model(seed, movies, k, kind);
            let rec = Recommender::new(
                "v1".into(),
                Model::Factor(model.clone()),
                catalogue.clone(),
                &[],
            );
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                assert!(rec.uses_quantized_scan(), "the fast path is what is tested");
            }
            let what = format!("movies {movies} k {k} kind {kind}");
            check_against_top_k(&rec, &model, &catalogue, seed, &what);
        }
    }
}

/// `(movie, 3 stars)` for each id: a history that only excludes.
fn hist(ids: &[i32]) -> Vec<Rated> {
    ids.iter().map(|&id| Rated::new(id, 3.0, 0)).collect()
}

fn ids_and_scores(r: &[Ranked]) -> Vec<(i32, f32)> {
    r.iter().map(|x| (x.movie_id, x.score)).collect()
}

fn ask<'a>(user: i32, k: usize, genre: Option<&'a str>, history: &'a [Rated]) -> Request<'a> {
    Request {
        genre,
        ..Request::new(user, k, history)
    }
}

fn check_against_top_k(
    rec: &Recommender,
    model: &FactorModel,
    catalogue: &[Movie],
    seed: u64,
    what: &str,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed * 7);
    for user in 1..=12 {
        let rated: Vec<i32> = model
            .movie_ids()
            .iter()
            .copied()
            .filter(|_| rng.random::<f32>() < 0.2)
            .chain([99_999, -4, i32::MAX])
            .collect();
        let history = hist(&rated);
        for top in [1, 3, 10, 100] {
            let want = model.top_k(user, top, &rated);
            let (strategy, got) = rec.recommend_ids(&ask(user, top, None, &history)).unwrap();
            assert_eq!(strategy, Strategy::Model);
            assert_eq!(ids_and_scores(&got), want, "{what} user {user} top {top}");
            // A genre filter is an exclusion of every other movie.
            let genre = GENRES[(user as usize) % 4];
            let mut exclude = rated.clone();
            exclude.extend(
                catalogue
                    .iter()
                    .filter(|m| !m.genres.contains(genre))
                    .map(|m| m.movie_id),
            );
            let want = model.top_k(user, top, &exclude);
            let lower = genre.to_lowercase();
            let (_, got) = rec
                .recommend_ids(&ask(user, top, Some(&lower), &history))
                .unwrap();
            assert_eq!(
                ids_and_scores(&got),
                want,
                "{what} genre {genre} user {user} top {top}"
            );
        }
    }
    // Unknown genre: nothing; everything rated: nothing.
    let (_, none) = rec.recommend_ids(&ask(1, 10, Some("Polka"), &[])).unwrap();
    assert!(none.is_empty());
    let all = hist(model.movie_ids());
    let (_, none) = rec.recommend_ids(&ask(2, 10, None, &all)).unwrap();
    assert!(none.is_empty());
}

/// Items carry titles and the rating champion's clipped prediction, and
/// unknown users get the cold-start list without rated movies.
#[test]
fn recommend_and_cold_start() {
    let (model, catalogue) = random_model(99, 40, 8, 0);
    let stats: Vec<MovieStats> = model
        .movie_ids()
        .iter()
        .map(|&id| MovieStats {
            movie_id: id,
            count: 10 + i64::from(id),
            mean: 3.0 + f64::from(id % 5) / 4.0,
        })
        .collect();
    let rec = Recommender::new("v1".into(), Model::Factor(model.clone()), catalogue, &stats);
    let rated: HashSet<i32> = [10, 13, 16].into();
    let history = hist(&[10, 13, 16]);
    let r = rec.recommend(&Request::new(3, 5, &history)).unwrap();
    assert_eq!(r.strategy, Strategy::Model);
    let want = model.top_k(3, 5, &rated);
    assert_eq!(
        r.items
            .iter()
            .map(|i| (i.movie_id, i.score))
            .collect::<Vec<_>>(),
        want
    );
    assert!(r.items.iter().all(|i| i.predicted_rating == Some(i.score)));
    assert_eq!(r.items[0].title, format!("Movie {}", want[0].0));
    let cold = rec.recommend(&Request::new(777, 4, &history)).unwrap();
    assert_eq!(cold.strategy, Strategy::Popular);
    let ranked: Vec<i32> = popularity(&stats)
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !rated.contains(id))
        .take(4)
        .collect();
    assert_eq!(
        cold.items.iter().map(|i| i.movie_id).collect::<Vec<_>>(),
        ranked
    );
    let many = hist(&(0..100).map(|i| 10 + 3 * i).collect::<Vec<_>>());
    let (_, cold) = rec.recommend_ids(&Request::new(777, 4, &many)).unwrap();
    assert!(cold.is_empty(), "all 40 movies rated");
    assert!(rec.recommend_ids(&Request::new(0, 4, &[])).is_err());
    assert!(rec.recommend_ids(&Request::new(1, 0, &[])).is_err());
    assert!(rec.recommend_ids(&Request::new(1, MAX_K + 1, &[])).is_err());
}

#[test]
fn popularity_damps_small_counts_by_hand() {
    let stats = [
        MovieStats {
            movie_id: 1,
            count: 10,
            mean: 5.0,
        },
        MovieStats {
            movie_id: 2,
            count: 1000,
            mean: 4.6,
        },
        MovieStats {
            movie_id: 3,
            count: 9,
            mean: 5.0,
        },
        MovieStats {
            movie_id: 4,
            count: 100,
            mean: 3.0,
        },
    ];
    // global = (50 + 4600 + 45 + 300) / 1119 = 4995/1119 = 4.463807
    // movie 1: (50 + 25*4.463807)/35 = 4.616; movie 2: (4600 + 111.595)/1025 = 4.5967
    // movie 4: (300 + 111.595)/125 = 3.2928; movie 3 has fewer than 10 ratings.
    let p = popularity(&stats);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 4]);
    let g = 4995.0 / 1119.0;
    assert!((p[0].1 - (50.0 + 25.0 * g) / 35.0).abs() < 1e-12);
    assert!((p[2].1 - (300.0 + 25.0 * g) / 125.0).abs() < 1e-12);
}

/// Two tastes: users 1..=30 rate movies 100..110 (cluster A), users
/// 31..=60 movies 200..210 (cluster B); everyone also rated movie 300.
fn two_clusters() -> (Vec<crate::types::Rating>, Vec<Movie>) {
    let mut ratings = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for user in 1..=60 {
        let base = if user <= 30 { 100 } else { 200 };
        for m in base..base + 10 {
            if rng.random::<f32>() < 0.7 {
                ratings.push(crate::types::Rating {
                    user_id: user,
                    movie_id: m,
                    rating: 4.0,
                    timestamp: 0,
                });
            }
        }
        ratings.push(crate::types::Rating {
            user_id: user,
            movie_id: 300,
            rating: 3.0,
            timestamp: 0,
        });
    }
    let movies = (100..110)
        .chain(200..210)
        .chain([300])
        .map(|id| Movie {
            movie_id: id,
            title: format!("Movie {id}"),
            genres: if id < 200 {
                "Animation".into()
            } else {
                "Horror".into()
            },
            pca_features: None,
        })
        .collect();
    (ratings, movies)
}

/// EASE unpruned with a small lambda: what the two clusters need.
fn small_ease() -> crate::models::Hyperparams {
    crate::models::Hyperparams::Ease(crate::models::EaseParams {
        lambda: 5.0,
        neighbors: 0,
        ..Default::default()
    })
}

/// Each user's ratings, by user id.
fn histories(ratings: &[crate::types::Rating]) -> std::collections::BTreeMap<i32, Vec<Rated>> {
    let mut by_user: std::collections::BTreeMap<i32, Vec<Rated>> = Default::default();
    for r in ratings {
        by_user.entry(r.user_id).or_default().push(Rated::from(r));
    }
    by_user
}

/// A small iALS for the two clusters.
fn small_ials() -> crate::models::Hyperparams {
    crate::models::Hyperparams::Ials(crate::models::IalsParams {
        factors: 4,
        iterations: 8,
        reg: 0.1,
        ..Default::default()
    })
}

fn fit_model(params: crate::models::Hyperparams, ratings: &[crate::types::Rating]) -> Model {
    crate::models::fit(&params, ratings, 3, &crate::progress::Silent).unwrap()
}

/// A brand-new user who rated three cluster-A movies gets a folded-in list
/// of the other cluster-A movies, each explained by the movies they rated;
/// the same history not marked fresh is a `model` list (EASE keeps
/// nothing per user); no usable history means the popular list.
#[test]
fn ease_folds_in_new_users_and_explains() {
    let (ratings, movies) = two_clusters();
    let model = fit_model(small_ease(), &ratings);
    let rec = Recommender::new("e1".into(), model, movies, &[]);
    let history = rated(&[(100, 5.0), (101, 4.5), (102, 4.0)]);
    let req = Request {
        fresh: true,
        explain: true,
        ..Request::new(999, 5, &history)
    };
    let r = rec.recommend(&req).unwrap();
    assert_eq!(r.strategy, Strategy::FoldIn);
    assert_eq!(r.items.len(), 5);
    // Cluster A first; movie 300 (rated by everyone) may join them; never
    // a cluster-B movie.
    let from_a = r
        .items
        .iter()
        .filter(|i| (103..110).contains(&i.movie_id))
        .count();
    assert!(from_a >= 4, "{:?}", r.items);
    for item in &r.items {
        assert!(!(200..210).contains(&item.movie_id), "{item:?}");
        assert!(item.predicted_rating.is_none(), "no rating model");
        assert!(!item.because.is_empty(), "{item:?}");
        assert!(item
            .because
            .iter()
            .all(|b| [100, 101, 102].contains(&b.movie_id)));
        assert!(item.because[0].title.starts_with("Movie 10"));
        let total: f32 = item.because.iter().map(|b| b.share).sum();
        assert!(total > 0.0 && total <= 1.0 + 1e-6, "{total}");
    }
    let not_fresh = Request {
        fresh: false,
        ..req
    };
    assert_eq!(rec.recommend_ids(&not_fresh).unwrap().0, Strategy::Model);
    let unknown_movies = rated(&[(424242, 5.0)]);
    let (s, _) = rec
        .recommend_ids(&Request::new(999, 5, &unknown_movies))
        .unwrap();
    assert_eq!(s, Strategy::Popular);
    // Similar movies come from the item weights.
    let sim = rec.similar(100, 3).unwrap();
    assert_eq!(sim.basis, SimilarBasis::ItemWeights);
    assert!(
        sim.items.iter().all(|i| !(200..210).contains(&i.movie_id)),
        "{sim:?}"
    );
    assert!((101..110).contains(&sim.items[0].movie_id), "{sim:?}");
}

/// iALS: a user seen in training gets `model` from their trained factors;
/// the same user with fresh ratings, or an unknown user, is folded in, and
/// the folded-in list is the exact top k of the folded-in vector. The
/// predicted stars come from the rating model when one is attached.
#[test]
fn ials_folds_in_and_attaches_predicted_ratings() {
    let (ratings, movies) = two_clusters();
    let ials = fit_model(
        crate::models::Hyperparams::Ials(crate::models::IalsParams {
            factors: 4,
            iterations: 8,
            reg: 0.1,
            ..Default::default()
        }),
        &ratings,
    );
    let svd = fit_model(
        crate::models::Hyperparams::Baseline(Default::default()),
        &ratings,
    );
    let Model::Factor(f) = ials.clone() else {
        unreachable!()
    };
    let rec = Recommender::new("i1".into(), ials, movies, &[])
        .with_rating_model(Some(("b1".into(), svd.clone())));
    let seen: Vec<Rated> = ratings
        .iter()
        .filter(|r| r.user_id == 40)
        .map(Rated::from)
        .collect();
    let (s, _) = rec.recommend_ids(&Request::new(40, 3, &seen)).unwrap();
    assert_eq!(s, Strategy::Model);
    let history = rated(&[(200, 5.0), (201, 4.0)]);
    let req = Request {
        explain: true,
        ..Request::new(777, 4, &history)
    };
    let (s, got) = rec.recommend_ids(&req).unwrap();
    assert_eq!(s, Strategy::FoldIn);
    let folded = f.fold_in(&history).unwrap();
    let mut scores = Vec::new();
    f.score_vector(&folded.vector, &mut scores);
    let mut want: Vec<(i32, f32)> = f
        .movie_ids()
        .iter()
        .copied()
        .zip(scores)
        .filter(|(id, _)| *id != 200 && *id != 201)
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(4);
    assert_eq!(ids_and_scores(&got), want);
    for r in &got {
        assert_eq!(r.predicted_rating, svd.predict(777, r.movie_id));
        assert!(r.because.iter().all(|b| b.0 == 200 || b.0 == 201));
    }
    assert!(
        got.iter().take(2).all(|r| (202..210).contains(&r.movie_id)),
        "{got:?}"
    );
}

#[test]
fn reasons_are_the_largest_positive_shares() {
    let got = reasons(
        [1, 2, 3, 4, 5].into_iter(),
        &[0.5, -1.0, 0.25, 0.25, f32::NAN],
    );
    assert_eq!(got, vec![(1, 0.5), (3, 0.25), (4, 0.25)]);
    assert!(reasons([1].into_iter(), &[-0.5]).is_empty());
}

/// Returning users' `model` lists come from the cache after the first
/// request, identical to a recommender that computes every list; a rating
/// merged into the history (not fresh) changes the key, so the rated movie
/// never comes back; fold-in and genre lists are never kept.
#[test]
fn cached_lists_equal_computed_ones_and_follow_the_history() {
    let (ratings, movies) = two_clusters();
    let params = small_ease();
    let cached = Recommender::new(
        "e1".into(),
        fit_model(params.clone(), &ratings),
        movies.clone(),
        &[],
    );
    let plain =
        Recommender::new("e1".into(), fit_model(params, &ratings), movies, &[]).with_list_cache(0);
    let by_user = histories(&ratings);
    for (user, history) in &by_user {
        for _ in 0..2 {
            let req = Request::new(*user, 5, history);
            assert_eq!(
                cached.recommend_ids(&req).unwrap(),
                plain.recommend_ids(&req).unwrap(),
                "user {user}"
            );
        }
    }
    assert_eq!(cached.cached_lists(), by_user.len());
    assert_eq!(plain.cached_lists(), 0);

    // The user's first answer, then the same user with that movie merged.
    let (user, history) = by_user.iter().next().unwrap();
    let (_, first) = cached
        .recommend_ids(&Request::new(*user, 5, history))
        .unwrap();
    let mut merged = history.clone();
    merged.push(Rated::new(first[0].movie_id, 4.0, 0));
    let (strategy, after) = cached
        .recommend_ids(&Request::new(*user, 5, &merged))
        .unwrap();
    assert_eq!(strategy, Strategy::Model);
    assert!(
        after.iter().all(|r| r.movie_id != first[0].movie_id),
        "{after:?}"
    );

    let before = cached.cached_lists();
    let fresh = Request {
        fresh: true,
        ..Request::new(*user, 5, history)
    };
    cached.recommend_ids(&fresh).unwrap();
    let genre = Request {
        genre: Some("Comedy"),
        ..Request::new(*user, 5, history)
    };
    cached.recommend_ids(&genre).unwrap();
    assert_eq!(
        cached.cached_lists(),
        before,
        "fold-in and genre lists are not kept"
    );
}

/// A precomputed list answers every request it covers exactly as a
/// recommender that computes each list would (any k up to its depth, with
/// or without explanations: the top k is the first k of the top n), for
/// iALS (explanations from the user's solve) and EASE; users the model
/// would fold in or cannot rank get none, and deeper or fresh requests are
/// computed.
#[test]
fn precomputed_lists_answer_as_computed_ones() {
    let (ratings, movies) = two_clusters();
    let by_user = histories(&ratings);
    for params in [small_ials(), small_ease()] {
        let model = fit_model(params.clone(), &ratings);
        let warm = Recommender::new("v".into(), model, movies.clone(), &[]);
        let plain = Recommender::new("v".into(), fit_model(params, &ratings), movies.clone(), &[])
            .with_list_cache(0);
        for (user, history) in &by_user {
            assert!(warm.precompute(*user, history, 6).unwrap(), "user {user}");
        }
        assert_eq!(warm.cached_lists(), by_user.len());
        for (user, history) in &by_user {
            for k in [1, 3, 6] {
                for explain in [true, false] {
                    let req = Request {
                        explain,
                        ..Request::new(*user, k, history)
                    };
                    let want = plain.recommend_ids(&req).unwrap();
                    assert_eq!(want.0, Strategy::Model);
                    assert_eq!(want.1.len(), k);
                    if explain {
                        assert!(want.1.iter().any(|r| !r.because.is_empty()), "{want:?}");
                    }
                    assert_eq!(warm.recommend_ids(&req).unwrap(), want, "user {user} k {k}");
                }
            }
        }
        // Nothing computed on those requests: the same users are held.
        assert_eq!(warm.cached_lists(), by_user.len());
        let (user, history) = by_user.iter().next().unwrap();
        let deeper = Request::new(*user, 9, history);
        assert_eq!(
            warm.recommend_ids(&deeper).unwrap(),
            plain.recommend_ids(&deeper).unwrap()
        );
        let fresh = Request {
            fresh: true,
            ..Request::new(*user, 3, history)
        };
        assert_eq!(
            warm.recommend_ids(&fresh).unwrap(),
            plain.recommend_ids(&fresh).unwrap()
        );
        // A user the model never saw: iALS folds them in, so no list is
        // kept for them; EASE ranks any history.
        let stranger = rated(&[(100, 5.0), (101, 4.0)]);
        let is_ease = matches!(&*warm.model, Model::Ease(_));
        assert_eq!(warm.precompute(999, &stranger, 6).unwrap(), is_ease);
        assert!(!warm.precompute(998, &[], 6).unwrap());
    }
}

/// Once the cache's budget is spent, precomputing stops holding lists
/// rather than evicting others.
#[test]
fn precomputing_stops_at_the_cache_budget() {
    let (ratings, movies) = two_clusters();
    let params = small_ease();
    let rec =
        Recommender::new("v".into(), fit_model(params, &ratings), movies, &[]).with_list_cache(25);
    let mut held = 0;
    for user in 1..=60 {
        let history: Vec<Rated> = ratings
            .iter()
            .filter(|r| r.user_id == user)
            .map(Rated::from)
            .collect();
        if rec.precompute(user, &history, 5).unwrap() {
            held += 1;
        }
    }
    assert_eq!(held, 5);
    assert_eq!(rec.cached_lists(), 5);
}

/// The niche re-ranking serves exactly the lists evaluation judges: for
/// short and long histories, with EASE and iALS, the recommender's list is
/// `models::Listed`'s (what `eval::evaluate` ranks through), and for a
/// short history it differs from the plain top k of the model's scores.
#[test]
fn served_lists_are_the_evaluated_lists() {
    let (ratings, movies) = two_clusters();
    let stats = {
        let mut c: std::collections::BTreeMap<i32, i64> = Default::default();
        for r in &ratings {
            *c.entry(r.movie_id).or_default() += 1;
        }
        c.into_iter()
            .map(|(movie_id, count)| MovieStats {
                movie_id,
                count,
                mean: 4.0,
            })
            .collect::<Vec<_>>()
    };
    let by_user = histories(&ratings);
    let mut reranked = 0;
    for params in [small_ease(), small_ials()] {
        let model = fit_model(params, &ratings);
        let rec =
            Recommender::new("v".into(), model.clone(), movies.clone(), &stats).with_list_cache(0);
        let listed = crate::models::Listed::new(&model, &movies, &ratings);
        for (user, history) in by_user.iter().take(12) {
            for take in [1, 2, history.len()] {
                let h = &history[..take.min(history.len())];
                let (_, served) = rec.recommend_ids(&Request::new(*user, 4, h)).unwrap();
                let mut rated: Vec<i32> = h.iter().map(|r| r.movie_id).collect();
                rated.sort_unstable();
                let (mut scores, mut top) = (Vec::new(), Vec::new());
                let n =
                    crate::eval::Scorer::top_k(&listed, *user, h, &rated, 4, &mut scores, &mut top);
                if model.knows_user(*user) || matches!(model, Model::Ease(_)) {
                    assert!(n.is_some());
                    let ids: Vec<i32> = served.iter().map(|r| r.movie_id).collect();
                    assert_eq!(ids, top, "user {user}, {take} ratings");
                    scores.clear();
                    crate::eval::Scorer::score_catalogue(&model, *user, h, &mut scores);
                    let mut plain = Vec::new();
                    crate::eval::top_k_unrated(&mut scores, &rated, 4, &mut plain);
                    reranked += usize::from(plain != top);
                }
            }
        }
    }
    assert!(reranked > 0, "the niche re-ranking changed no list");
}
