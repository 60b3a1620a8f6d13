//! Answering "what should user U watch?" and "what is like movie M?" from
//! the champion model, with a cold-start list for users it does not know.
//!
//! [`Recommender`] holds everything a request needs in memory (the model,
//! the catalogue, the popularity ranking), so the CLI builds one per command
//! and the server keeps one and swaps it when the champion changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::models::FactorModel;
use crate::registry;
use crate::store::{MovieStats, Store};
use crate::types::Movie;
use crate::{Error, Result};

/// The largest `k` any request may ask for.
pub const MAX_K: usize = 100;

/// Cold start: a movie needs this many training ratings to be listed...
pub const POPULAR_MIN_COUNT: i64 = 10;
/// ...and its mean is shrunk toward the global mean by this many pseudo-ratings,
/// so a movie with ten 5-star ratings does not outrank one with a thousand 4.6s.
pub const POPULAR_DAMPING: f64 = 25.0;

/// How a list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Personalized by the champion model.
    Model,
    /// Cold start: damped mean rating over the training data.
    Popular,
}

/// One recommended or similar movie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub movie_id: i32,
    pub title: String,
    pub genres: String,
    /// Predicted rating (model), damped mean (popular) or cosine similarity (similar).
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    pub user_id: i32,
    pub strategy: Strategy,
    pub model_version: String,
    pub items: Vec<Item>,
}

/// Where similar movies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimilarBasis {
    /// Cosine similarity of the champion's movie factors.
    Factors,
    /// Cosine similarity of the PCA genre features (movie unknown to the model).
    PcaFeatures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similar {
    pub movie: Item,
    pub basis: SimilarBasis,
    pub items: Vec<Item>,
}

/// The champion and what serving it needs, loaded once.
pub struct Recommender {
    pub model_version: String,
    pub model: Arc<FactorModel>,
    movies: HashMap<i32, Movie>,
    /// Movie ids by damped mean, best first, with the damped mean.
    popular: Vec<(i32, f64)>,
}

impl Recommender {
    /// Loads the champion, the catalogue and the popularity ranking.
    pub fn load(store: &mut dyn Store) -> Result<Recommender> {
        let (version, model) = registry::load_champion(store)?;
        let movies = store.movies()?;
        let stats = store.movie_stats()?;
        Ok(Recommender::new(version, model, movies, &stats))
    }

    pub fn new(
        model_version: String,
        model: FactorModel,
        movies: Vec<Movie>,
        stats: &[MovieStats],
    ) -> Recommender {
        Recommender {
            model_version,
            model: Arc::new(model),
            movies: movies.into_iter().map(|m| (m.movie_id, m)).collect(),
            popular: popularity(stats),
        }
    }

    pub fn movie(&self, movie_id: i32) -> Option<&Movie> {
        self.movies.get(&movie_id)
    }

    pub fn catalogue_size(&self) -> usize {
        self.movies.len()
    }

    fn item(&self, movie_id: i32, score: f32) -> Item {
        let (title, genres) = match self.movies.get(&movie_id) {
            Some(m) => (m.title.clone(), m.genres.clone()),
            None => (format!("movie {movie_id}"), String::new()),
        };
        Item {
            movie_id,
            title,
            genres,
            score,
        }
    }

    /// The top `k` movies `user` has not rated (`rated`: every movie the
    /// user rated, in any split or the buffer), optionally of one genre.
    /// A user the model has never seen gets the cold-start list.
    pub fn recommend(
        &self,
        user_id: i32,
        k: usize,
        genre: Option<&str>,
        rated: &HashSet<i32>,
    ) -> Result<Recommendations> {
        check_k(k)?;
        if user_id <= 0 {
            return Err(Error::InvalidArgument(format!(
                "user id must be a positive integer, got {user_id}"
            )));
        }
        let genre = genre.map(str::trim).filter(|g| !g.is_empty());
        let in_genre = |id: i32| match genre {
            None => true,
            Some(g) => self
                .movies
                .get(&id)
                .is_some_and(|m| m.genre_list().any(|x| x.eq_ignore_ascii_case(g))),
        };
        if self.model.knows_user(user_id) {
            let exclude: Vec<i32> = match genre {
                None => rated.iter().copied().collect(),
                Some(_) => self
                    .model
                    .movie_ids()
                    .iter()
                    .copied()
                    .filter(|id| rated.contains(id) || !in_genre(*id))
                    .collect(),
            };
            let items = self
                .model
                .top_k(user_id, k, &exclude)
                .into_iter()
                .map(|(id, score)| self.item(id, score))
                .collect();
            return Ok(Recommendations {
                user_id,
                strategy: Strategy::Model,
                model_version: self.model_version.clone(),
                items,
            });
        }
        let items = self
            .popular
            .iter()
            .filter(|(id, _)| !rated.contains(id) && in_genre(*id))
            .take(k)
            .map(|&(id, score)| self.item(id, score as f32))
            .collect();
        Ok(Recommendations {
            user_id,
            strategy: Strategy::Popular,
            model_version: self.model_version.clone(),
            items,
        })
    }

    /// The `k` movies most like `movie_id`: by the model's factors, or by
    /// PCA genre features for a movie the model has no factors for.
    pub fn similar(&self, movie_id: i32, k: usize) -> Result<Similar> {
        check_k(k)?;
        let movie = self.movies.get(&movie_id).ok_or_else(|| {
            Error::NotFound(format!(
                "movie {movie_id} is not in the catalogue; `cinematch search` or the movies table lists ids"
            ))
        })?;
        let by_factors = self.model.similar_movies(movie_id, k);
        let (basis, found) = if !by_factors.is_empty() {
            (SimilarBasis::Factors, by_factors)
        } else {
            (SimilarBasis::PcaFeatures, self.similar_by_pca(movie, k))
        };
        Ok(Similar {
            movie: self.item(movie_id, 1.0),
            basis,
            items: found.into_iter().map(|(id, s)| self.item(id, s)).collect(),
        })
    }

    fn similar_by_pca(&self, movie: &Movie, k: usize) -> Vec<(i32, f32)> {
        let Some(a) = movie.pca_features.as_deref() else {
            return Vec::new();
        };
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        if na == 0.0 {
            return Vec::new();
        }
        let mut sims: Vec<(i32, f32)> = self
            .movies
            .values()
            .filter(|m| m.movie_id != movie.movie_id)
            .filter_map(|m| {
                let b = m.pca_features.as_deref()?;
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                (nb > 0.0).then(|| {
                    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    (m.movie_id, (dot / (na * nb)) as f32)
                })
            })
            .collect();
        sims.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        sims.truncate(k);
        sims
    }
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::InvalidArgument(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(())
}

/// Movies with at least [`POPULAR_MIN_COUNT`] ratings, by damped mean
/// `(sum + D * global_mean) / (count + D)`, best first (ties by id).
pub fn popularity(stats: &[MovieStats]) -> Vec<(i32, f64)> {
    let (n, sum) = stats.iter().fold((0i64, 0.0f64), |(n, s), m| {
        (n + m.count, s + m.mean * m.count as f64)
    });
    if n == 0 {
        return Vec::new();
    }
    let global = sum / n as f64;
    let mut ranked: Vec<(i32, f64)> = stats
        .iter()
        .filter(|m| m.count >= POPULAR_MIN_COUNT)
        .map(|m| {
            let damped = (m.mean * m.count as f64 + POPULAR_DAMPING * global)
                / (m.count as f64 + POPULAR_DAMPING);
            (m.movie_id, damped)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
