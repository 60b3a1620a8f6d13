//! The catalogue: one movie, the movies most like it, and title search.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{catalogue_movie, genre_filter, genre_list, in_range, loaded};
use crate::recommend::{SimilarBasis, MAX_K};
use crate::server::errors::{ApiError, ApiQuery, ErrorBody, PathId};
use crate::server::state::{AppState, Snapshot};
use crate::types::Movie;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MovieBody {
    movie_id: i32,
    title: String,
    genres: Vec<String>,
    /// Ratings in the train split.
    rating_count: i64,
    /// Mean rating in the train split; null when nobody rated it.
    mean_rating: Option<f64>,
    /// Whether the champion model can recommend it.
    in_model: bool,
}

impl MovieBody {
    fn new(m: &Movie, snap: &Snapshot) -> MovieBody {
        let stats = snap.catalogue.stats(m.movie_id);
        MovieBody {
            movie_id: m.movie_id,
            title: m.title.clone(),
            genres: genre_list(m),
            rating_count: stats.map_or(0, |s| s.count),
            mean_rating: stats.filter(|s| s.count > 0).map(|s| s.mean),
            in_model: snap
                .recommender
                .as_ref()
                .is_some_and(|r| r.model.movie_index(m.movie_id).is_some()),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilarMovie {
    movie_id: i32,
    title: String,
    genres: Vec<String>,
    /// Cosine similarity, -1..1 (factors, genre features), or EASE's item
    /// weight.
    similarity: f32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilarBody {
    movie: MovieBody,
    /// `item_weights` (EASE's item matrix), `factors` (the model's movie
    /// factors) or `pca_features` (genre features, for a movie the model
    /// has nothing for).
    basis: String,
    model_version: String,
    items: Vec<SimilarMovie>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    query: String,
    genre: Option<String>,
    count: usize,
    movies: Vec<MovieBody>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many movies, 1..100 (default 10).
    k: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Title words; each must start a word of the title. Only letters and
    /// digits count: anything else separates words.
    q: Option<String>,
    /// Only movies of this genre (any case).
    genre: Option<String>,
    /// At most this many, 1..100 (default 20).
    limit: Option<usize>,
}

/// One movie with its rating count and mean over the train split.
#[utoipa::path(
    get,
    path = "/api/movies/{movieId}",
    tag = "movies",
    params(("movieId" = i32, Path, description = "A positive movie id")),
    responses(
        (status = 200, body = MovieBody),
        (status = 400, description = "Not a positive integer", body = ErrorBody),
        (status = 404, description = "Not in the catalogue", body = ErrorBody)
    )
)]
pub async fn movie(
    State(state): State<AppState>,
    PathId(movie_id): PathId,
) -> Result<Json<MovieBody>, ApiError> {
    let snap = loaded(&state)?;
    let m = catalogue_movie(&snap, movie_id)?;
    Ok(Json(MovieBody::new(m, &snap)))
}

/// The k movies most like one movie, by the champion's movie factors (or by
/// genre features for a movie the model has none for).
#[utoipa::path(
    get,
    path = "/api/movies/{movieId}/similar",
    tag = "movies",
    params(("movieId" = i32, Path, description = "A positive movie id"), SimilarQuery),
    responses(
        (status = 200, body = SimilarBody),
        (status = 400, description = "Bad movie id or k", body = ErrorBody),
        (status = 404, description = "Not in the catalogue", body = ErrorBody),
        (status = 503, description = "No champion model loaded", body = ErrorBody)
    )
)]
pub async fn similar(
    State(state): State<AppState>,
    PathId(movie_id): PathId,
    ApiQuery(q): ApiQuery<SimilarQuery>,
) -> Result<Json<SimilarBody>, ApiError> {
    let k = in_range("k", q.k, 10, MAX_K)?;
    let snap = loaded(&state)?;
    let m = catalogue_movie(&snap, movie_id)?;
    let rec = snap
        .recommender
        .as_ref()
        .ok_or_else(ApiError::no_champion)?;
    let found = rec.similar(movie_id, k)?;
    let items = found
        .items
        .into_iter()
        .map(|i| SimilarMovie {
            movie_id: i.movie_id,
            genres: snap
                .catalogue
                .get(i.movie_id)
                .map(genre_list)
                .unwrap_or_default(),
            title: i.title,
            similarity: i.score,
        })
        .collect();
    Ok(Json(SimilarBody {
        movie: MovieBody::new(m, &snap),
        basis: match found.basis {
            SimilarBasis::ItemWeights => "item_weights",
            SimilarBasis::Factors => "factors",
            SimilarBasis::PcaFeatures => "pca_features",
        }
        .to_string(),
        model_version: rec.model_version.clone(),
        items,
    }))
}

/// Title and genre search through the database's full-text indexes,
/// ranked with the rating counts the server holds in memory.
///
/// Every word of `q` must start a word of the title; movies matching more
/// words whole come first, then the most rated (train split), then by id.
/// Without `q` the genre is listed by rating count.
#[utoipa::path(
    get,
    path = "/api/movies",
    tag = "movies",
    params(SearchQuery),
    responses(
        (status = 200, description = "Best matches first", body = SearchBody),
        (status = 400, description = "Neither q nor genre, an unknown genre, or a bad limit", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn search_movies(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<SearchBody>, ApiError> {
    let limit = in_range("limit", q.limit, 20, 100)?;
    let query = q.q.unwrap_or_default().trim().to_string();
    let snap = loaded(&state)?;
    let genre = genre_filter(&snap, q.genre.as_deref())?;
    if query.is_empty() && genre.is_none() {
        return Err(ApiError::bad_request(
            "give title words (q=toy+story), a genre (genre=Animation) or both",
        ));
    }
    let (text, g) = (query.clone(), genre.clone());
    // The database finds the matches (its full-text indexes, no rating
    // read); the snapshot's counts rank them, so a search costs the same
    // whatever the number of ratings.
    let matches = state
        .pool
        .run(move |store| store.search_matches(&text, g.as_deref()))
        .await?;
    let catalogue = &snap.catalogue;
    let ranked = crate::store::rank_matches(
        &matches,
        |id| catalogue.stats(id).map_or(0, |s| s.count),
        limit,
    );
    let movies: Vec<MovieBody> = ranked
        .iter()
        .filter_map(|&id| catalogue.get(id))
        .map(|m| MovieBody::new(m, &snap))
        .collect();
    Ok(Json(SearchBody {
        query,
        genre,
        count: movies.len(),
        movies,
    }))
}
