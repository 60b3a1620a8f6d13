//! `GET /api/users/{userId}/recommendations`: the hot path, answered from
//! the in-memory snapshot with no database call.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{canonical_genre, in_range, json_response, not_loaded};
use crate::recommend::{Request, Strategy, MAX_K};
use crate::server::auth::ReadAuthorized;
use crate::server::errors::{ApiError, ApiQuery, ErrorBody, PathId};
use crate::server::state::AppState;
use crate::types::Rated;

#[derive(Serialize, ToSchema)]
pub enum StrategyName {
    /// Personalized from what the champion learned about the user.
    #[serde(rename = "model")]
    Model,
    /// Personalized at request time from the user's ratings: ratings newer
    /// than the champion, or a user it never saw (EASE, iALS).
    #[serde(rename = "fold-in")]
    FoldIn,
    /// Cold start: best damped mean rating, for users the model cannot rank.
    #[serde(rename = "popular")]
    Popular,
}

/// A rated movie behind a recommendation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonBody<'a> {
    movie_id: i32,
    title: &'a str,
    /// Its share of what raised the score (the positive terms sum to 1).
    share: f32,
}

/// Borrowed from the snapshot, so answering copies no title or genre.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedMovie<'a> {
    movie_id: i32,
    title: &'a str,
    genres: Vec<&'a str>,
    /// What the list is ordered by: the predicted rating (rating models),
    /// the model's score (ranking models) or the damped mean (popular).
    score: f32,
    /// Predicted stars, 0.5..5, when a rating model exists (the champion
    /// itself, or the best rating model beside a ranking champion).
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_rating: Option<f32>,
    /// The user's rated movies that contributed most to this movie's score,
    /// best first (ranking models; empty for the popular list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    because: Vec<ReasonBody<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationsBody<'a> {
    user_id: i32,
    strategy: StrategyName,
    model_version: &'a str,
    genre: Option<&'a str>,
    items: Vec<RecommendedMovie<'a>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// How many movies, 1..100 (default 10).
    k: Option<usize>,
    /// Only movies of this genre (any case), e.g. Comedy.
    genre: Option<String>,
    /// Whether each movie says which rated movies it comes from (default
    /// true).
    explain: Option<bool>,
}

/// The champion's top k movies the user has not rated, and why.
///
/// Users the model was trained on get `"strategy": "model"`; users with
/// ratings newer than the champion (or unknown to it) get a list computed
/// from their ratings at request time where the model can (`"fold-in"`);
/// anyone else gets the cold-start list (`"popular"`). Every movie the user
/// rated, in any split, the buffer or a moment ago, is left out. Answered
/// from memory: no database query. Private when the server has a read
/// token: the list and its reasons reveal what the user rated.
#[utoipa::path(
    get,
    path = "/api/users/{userId}/recommendations",
    tag = "recommendations",
    params(("userId" = i32, Path, description = "A positive user id"), RecommendationsQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Recommendations, best first", body = RecommendationsBody),
        (status = 400, description = "Bad user id, k or genre", body = ErrorBody),
        (status = 401, description = "The server has a read token and the request lacks it", body = ErrorBody),
        (status = 503, description = "No champion model loaded", body = ErrorBody)
    )
)]
pub async fn recommendations(
    State(state): State<AppState>,
    _auth: ReadAuthorized,
    PathId(user_id): PathId,
    ApiQuery(q): ApiQuery<RecommendationsQuery>,
) -> Result<Response, ApiError> {
    let k = in_range("k", q.k, 10, MAX_K)?;
    // The hot path: a guard instead of an Arc clone, no lock unless ratings
    // arrived since the snapshot, no copy of a title, one buffer for the body.
    let guard = state.snapshot.load();
    let snap = guard.as_deref().ok_or_else(not_loaded)?;
    let rec = snap
        .recommender
        .as_ref()
        .ok_or_else(ApiError::no_champion)?;
    let genre = match q.genre.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => None,
        Some(g) => Some(canonical_genre(snap, g)?),
    };
    let since = state.rated_since(user_id);
    let known = snap.history(user_id);
    let merged: Vec<Rated>;
    let history: &[Rated] = if since.is_empty() {
        known
    } else {
        merged = known.iter().chain(&since).copied().collect();
        &merged
    };
    let req = Request {
        genre,
        fresh: snap.is_fresh(user_id) || !since.is_empty(),
        explain: q.explain.unwrap_or(true),
        ..Request::new(user_id, k, history)
    };
    let (strategy, top) = rec.recommend_ids(&req)?;
    let title = |id: i32| {
        snap.catalogue
            .get(id)
            .or_else(|| rec.movie(id))
            .map_or("", |m| m.title.as_str())
    };
    let items = top
        .iter()
        .map(|r| {
            let m = snap
                .catalogue
                .get(r.movie_id)
                .or_else(|| rec.movie(r.movie_id));
            RecommendedMovie {
                movie_id: r.movie_id,
                title: m.map_or("", |m| m.title.as_str()),
                genres: m.map(|m| m.genre_list().collect()).unwrap_or_default(),
                score: r.score,
                predicted_rating: r.predicted_rating,
                because: r
                    .because
                    .iter()
                    .map(|&(movie_id, share)| ReasonBody {
                        movie_id,
                        title: title(movie_id),
                        share,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(json_response(&RecommendationsBody {
        user_id,
        strategy: match strategy {
            Strategy::Model => StrategyName::Model,
            Strategy::FoldIn => StrategyName::FoldIn,
            Strategy::Popular => StrategyName::Popular,
        },
        model_version: &rec.model_version,
        genre,
        items,
    }))
}
