//! `recommend` and `similar`: the lists, how they were made and why.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use cinematch::format::decimals;
use cinematch::recommend::{Item, Recommendations, Similar, SimilarBasis, Strategy};
use cinematch::store::MovieStats;
use cinematch::types::Movie;

use crate::cli::table;

pub fn recommendations(list: &Recommendations, genre: Option<&str>, why: bool) {
    let g = genre.map(|g| format!(" {g}")).unwrap_or_default();
    match list.strategy {
        Strategy::Model => println!(
            "top {} for user {} by {}:",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::FoldIn => println!(
            "top {} for user {} by {}, folded in from their ratings (newer than the model):",
            list.items.len(),
            list.user_id,
            list.model_version
        ),
        Strategy::Popular => println!(
            "{} cannot rank user {}: cold-start list, most popular{g} by damped mean rating:",
            list.model_version, list.user_id,
        ),
    }
    let score = match list.strategy {
        Strategy::Popular => "damped_mean",
        _ if list
            .items
            .iter()
            .all(|i| i.predicted_rating == Some(i.score)) =>
        {
            "predicted"
        }
        _ => "score",
    };
    items(&list.items, score);
    if why {
        for (i, it) in list.items.iter().enumerate() {
            if it.because.is_empty() {
                continue;
            }
            let reasons: Vec<String> = it
                .because
                .iter()
                .map(|r| format!("{} ({:.0}%)", r.title, r.share * 100.0))
                .collect();
            println!(
                "  {}. {} because you rated {}",
                i + 1,
                it.title,
                reasons.join(", ")
            );
        }
        if list.items.iter().all(|i| i.because.is_empty()) {
            println!(
                "  (no explanations: the {} list has none)",
                list.strategy.as_str()
            );
        }
    }
}

pub fn similar(sim: &Similar) {
    println!(
        "movies like {} ({}), by {}:",
        sim.movie.title,
        sim.movie.movie_id,
        match sim.basis {
            SimilarBasis::ItemWeights => "the champion's item weights (EASE)",
            SimilarBasis::Factors => "the champion's movie factors",
            SimilarBasis::PcaFeatures => "PCA genre features (the model has nothing for it)",
        }
    );
    items(&sim.items, "similarity");
}

fn items(items: &[Item], score: &str) {
    let stars = items
        .iter()
        .any(|i| i.predicted_rating.is_some() && score != "predicted");
    let rows: Vec<Vec<String>> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut row = vec![
                (i + 1).to_string(),
                it.movie_id.to_string(),
                it.title.clone(),
                it.genres.clone(),
                decimals(Some(f64::from(it.score)), 3),
            ];
            if stars {
                row.push(decimals(it.predicted_rating.map(f64::from), 2));
            }
            row
        })
        .collect();
    let mut head = vec!["#", "movieId", "title", "genres", score];
    if stars {
        head.push("predicted_rating");
    }
    table::print(&head, &rows);
}

/// A reason as the API's JSON gives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonJson<'a> {
    movie_id: i32,
    title: &'a str,
    share: f32,
}

/// A recommended movie as `/api/users/{id}/recommendations` gives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemJson<'a> {
    movie_id: i32,
    title: &'a str,
    genres: Vec<&'a str>,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_rating: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    because: Vec<ReasonJson<'a>>,
}

fn genre_list(genres: &str) -> Vec<&str> {
    genres
        .split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty() && *g != "(no genres listed)")
        .collect()
}

impl<'a> ItemJson<'a> {
    fn new(it: &'a Item) -> ItemJson<'a> {
        ItemJson {
            movie_id: it.movie_id,
            title: &it.title,
            genres: genre_list(&it.genres),
            score: it.score,
            predicted_rating: it.predicted_rating,
            because: it
                .because
                .iter()
                .map(|r| ReasonJson {
                    movie_id: r.movie_id,
                    title: &r.title,
                    share: r.share,
                })
                .collect(),
        }
    }
}

/// `recommend --json`: the API's recommendations body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationsJson<'a> {
    user_id: i32,
    strategy: &'static str,
    model_version: &'a str,
    genre: Option<&'a str>,
    items: Vec<ItemJson<'a>>,
}

impl<'a> RecommendationsJson<'a> {
    pub fn new(list: &'a Recommendations, genre: Option<&'a str>) -> RecommendationsJson<'a> {
        RecommendationsJson {
            user_id: list.user_id,
            strategy: list.strategy.as_str(),
            model_version: &list.model_version,
            genre,
            items: list.items.iter().map(ItemJson::new).collect(),
        }
    }
}

/// A similar movie as `/api/movies/{id}/similar` gives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarMovieJson<'a> {
    movie_id: i32,
    title: &'a str,
    genres: Vec<&'a str>,
    similarity: f32,
}

/// The movie asked about, as in the API's similar body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieRefJson<'a> {
    movie_id: i32,
    title: &'a str,
    genres: Vec<&'a str>,
}

/// `similar --json`: the API's similar body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarJson<'a> {
    movie: MovieRefJson<'a>,
    basis: &'static str,
    model_version: &'a str,
    items: Vec<SimilarMovieJson<'a>>,
}

impl<'a> SimilarJson<'a> {
    pub fn new(sim: &'a Similar, model_version: &'a str) -> SimilarJson<'a> {
        SimilarJson {
            movie: MovieRefJson {
                movie_id: sim.movie.movie_id,
                title: &sim.movie.title,
                genres: genre_list(&sim.movie.genres),
            },
            basis: match sim.basis {
                SimilarBasis::ItemWeights => "item_weights",
                SimilarBasis::Factors => "factors",
                SimilarBasis::PcaFeatures => "pca_features",
            },
            model_version,
            items: sim
                .items
                .iter()
                .map(|i| SimilarMovieJson {
                    movie_id: i.movie_id,
                    title: &i.title,
                    genres: genre_list(&i.genres),
                    similarity: i.score,
                })
                .collect(),
        }
    }
}

/// A movie found, as `/api/movies?q=` gives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundMovieJson<'a> {
    movie_id: i32,
    title: &'a str,
    genres: Vec<&'a str>,
    /// Ratings in the train split.
    rating_count: i64,
    mean_rating: Option<f64>,
}

/// `search --json`: the API's search body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchJson<'a> {
    query: &'a str,
    genre: Option<&'a str>,
    count: usize,
    movies: Vec<FoundMovieJson<'a>>,
}

impl<'a> SearchJson<'a> {
    pub fn new(
        query: &'a str,
        genre: Option<&'a str>,
        movies: &'a [Movie],
        stats: &[MovieStats],
    ) -> SearchJson<'a> {
        let by_id: HashMap<i32, &MovieStats> = stats.iter().map(|s| (s.movie_id, s)).collect();
        let movies: Vec<FoundMovieJson> = movies
            .iter()
            .map(|m| {
                let s = by_id.get(&m.movie_id);
                FoundMovieJson {
                    movie_id: m.movie_id,
                    title: &m.title,
                    genres: genre_list(&m.genres),
                    rating_count: s.map_or(0, |s| s.count),
                    mean_rating: s.filter(|s| s.count > 0).map(|s| s.mean),
                }
            })
            .collect();
        SearchJson {
            query,
            genre,
            count: movies.len(),
            movies,
        }
    }
}

/// `search`: the movies found, best first.
pub fn search(found: &SearchJson) {
    if found.movies.is_empty() {
        println!(
            "no movie matches {:?}{}",
            found.query,
            found
                .genre
                .map(|g| format!(" in genre {g}"))
                .unwrap_or_default()
        );
        return;
    }
    let rows: Vec<Vec<String>> = found
        .movies
        .iter()
        .map(|m| {
            vec![
                m.movie_id.to_string(),
                m.title.to_string(),
                m.genres.join("|"),
                m.rating_count.to_string(),
                decimals(m.mean_rating, 2),
            ]
        })
        .collect();
    table::print(
        &["movieId", "title", "genres", "ratings", "mean_rating"],
        &rows,
    );
}

/// `recommend --all-users --out FILE`: what was written.
pub fn exported(users: usize, rows: usize, out: &Path, model_version: &str) {
    println!(
        "wrote {rows} recommendations for {users} users by {model_version} to {}",
        out.display()
    );
}
