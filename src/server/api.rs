//! The JSON API. Each handler carries its `#[utoipa::path]`, and
//! [`ApiDoc`] lists them all, so `/api/openapi.json` is generated from the
//! code it describes.
//!
//! Recommendations, similar movies and the movie page are answered from the
//! in-memory snapshot; search (through the full-text indexes) and the
//! monitoring endpoints read the store through the pool on blocking threads.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::errors::{ApiError, ApiJson, ApiQuery, ErrorBody, PathId};
use super::metrics::escape_label;
use super::state::{AppState, Snapshot};
use crate::recommend::{Request, SimilarBasis, Strategy, MAX_K};
use crate::registry::{self, Objective, RunSummary};
use crate::store::{DriftAlert, Ingestion};
use crate::types::{check_rating, Movie, Rating};

/// Health and readiness probes answer within this, even with the pool busy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CineMatch",
        description = "Movie recommendations from the champion model, and the monitoring \
                       history (models, drift, ingestion) of a CineMatch database. Every \
                       error is `{\"error\": \"...\"}` with a 4xx status for a client mistake \
                       and 503 when the database or the model is not available."
    ),
    paths(
        super::dashboard::page,
        healthz,
        readyz,
        metrics,
        openapi,
        status,
        models,
        drift,
        ingestions,
        search_movies,
        movie,
        similar,
        recommendations,
        user_ratings,
        post_ratings
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "recommendations", description = "What to watch, from the champion model"),
        (name = "movies", description = "The catalogue"),
        (name = "ratings", description = "New ratings into ratings_buffer"),
        (name = "monitoring", description = "Models, drift, ingestion, status"),
        (name = "operations", description = "Probes, metrics, this document, the dashboard")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

// --- response bodies ---------------------------------------------------------

fn genre_list(m: &Movie) -> Vec<String> {
    m.genre_list().map(str::to_string).collect()
}

fn date(d: chrono::NaiveDateTime) -> String {
    d.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A catalogue entry with its training-split statistics.
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatedMovie {
    movie_id: i32,
    title: Option<String>,
    genres: Vec<String>,
    rating: f32,
    /// Unix seconds.
    timestamp: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRatingsBody {
    user_id: i32,
    /// All ratings of the user (train, test and buffer).
    total: usize,
    /// The newest `limit` of them, newest first.
    items: Vec<RatedMovie>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelBody {
    model_version: String,
    /// `YYYY-MM-DDTHH:MM:SS`, as stored.
    training_date: String,
    algorithm: Option<String>,
    /// Test RMSE; null for ranking models (they predict no ratings) and
    /// without a test split.
    rmse: Option<f64>,
    mae: Option<f64>,
    /// The spec's rated-items precision@10.
    precision_at_10: Option<f64>,
    /// Full-catalogue NDCG@10 (relevant = test rating >= 4).
    ndcg_at_10: Option<f64>,
    /// Full-catalogue recall@10.
    recall_at_10: Option<f64>,
    /// Full-catalogue precision@10 (hits / 10).
    catalogue_precision_at_10: Option<f64>,
    /// Share of the catalogue in some user's top 10.
    coverage: Option<f64>,
    data_size: Option<i64>,
    /// RMSE of the previous run.
    prev_rmse: Option<f64>,
    /// `rmse - prev_rmse` (negative is better), as the spec's LAG query.
    rmse_improvement: Option<f64>,
    /// The deployment's objective (`ndcg@10`, `rmse`), and this run's
    /// value of it and its change from the previous run.
    objective: String,
    objective_value: Option<f64>,
    objective_change: Option<f64>,
    is_champion: bool,
    /// The run's JSON notes: hyperparameters, seed, extra metrics, timings.
    notes: Option<Value>,
}

impl ModelBody {
    /// `prev_rmse`: the previous run's RMSE (the spec's LAG).
    fn new(r: &RunSummary, objective: Objective, prev_rmse: Option<f64>) -> ModelBody {
        let run = &r.run;
        ModelBody {
            model_version: run.model_version.clone(),
            training_date: date(run.training_date),
            algorithm: r.algorithm(),
            rmse: run.rmse,
            mae: run.mae,
            precision_at_10: run.precision_at_10,
            ndcg_at_10: r.report.ndcg_at_10,
            recall_at_10: r.report.recall_at_10,
            catalogue_precision_at_10: r.report.rank_precision_at_10,
            coverage: r.report.coverage,
            data_size: run.data_size,
            prev_rmse,
            rmse_improvement: run.rmse.zip(prev_rmse).map(|(a, b)| a - b),
            objective: objective.as_str().to_string(),
            objective_value: r.value,
            objective_change: r.change,
            is_champion: r.is_champion,
            notes: run
                .notes
                .as_deref()
                .map(|n| serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.to_string()))),
        }
    }

    /// Every run as a body, oldest first, with the spec's RMSE LAG.
    fn all(runs: &[RunSummary], objective: Objective) -> Vec<ModelBody> {
        let mut prev = None;
        runs.iter()
            .map(|r| {
                let body = ModelBody::new(r, objective, prev);
                prev = r.run.rmse;
                body
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsBody {
    champion: Option<String>,
    /// What runs are compared on in this deployment.
    objective: String,
    /// Oldest first.
    models: Vec<ModelBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertBody {
    id: i64,
    alert_date: String,
    feature_name: String,
    drift_score: Option<f64>,
    threshold: Option<f64>,
    alert_triggered: bool,
    notes: Option<String>,
}

impl From<&DriftAlert> for AlertBody {
    fn from(a: &DriftAlert) -> AlertBody {
        AlertBody {
            id: a.id,
            alert_date: date(a.alert_date),
            feature_name: a.feature_name.clone(),
            drift_score: a.drift_score,
            threshold: a.threshold,
            alert_triggered: a.alert_triggered,
            notes: a.notes.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftBody {
    days: u32,
    /// Newest first.
    alerts: Vec<AlertBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionBody {
    id: i64,
    batch_id: String,
    ingestion_date: Option<String>,
    record_count: Option<i64>,
    /// completed, failed or in_progress.
    status: Option<String>,
    notes: Option<String>,
}

impl From<&Ingestion> for IngestionBody {
    fn from(i: &Ingestion) -> IngestionBody {
        IngestionBody {
            id: i.id,
            batch_id: i.batch_id.clone(),
            ingestion_date: i.ingestion_date.map(date),
            record_count: i.record_count,
            status: i.status.clone(),
            notes: i.notes.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionsBody {
    /// Newest first.
    ingestions: Vec<IngestionBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCount {
    batch_id: Option<String>,
    ratings: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BufferBody {
    total: i64,
    batches: Vec<BatchCount>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingBody {
    /// The version this server answers with; it follows the champion
    /// within the reload interval.
    model_version: Option<String>,
    loaded_at: Option<String>,
    catalogue_movies: usize,
    users_with_ratings: usize,
    /// Why the last champion check failed, if it did (the loaded model
    /// keeps serving meanwhile).
    last_reload_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusBody {
    database: String,
    champion: Option<ModelBody>,
    serving: ServingBody,
    buffer: BufferBody,
    /// The spec's check: any drift alert triggered in the last day that no
    /// retrain has acted on yet (one raised before the latest retrain started
    /// was computed on data that retrain trained on and merged).
    retraining_needed: bool,
    /// The alerts behind the verdict, newest first.
    recent_alerts: Vec<AlertBody>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    status: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyBody {
    ready: bool,
    database_reachable: bool,
    model_version: Option<String>,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One rating to add. `timestamp` defaults to now.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the body; the handler validates field by field
pub struct NewRating {
    user_id: i32,
    movie_id: i32,
    /// 0.5 to 5.0 in steps of 0.5.
    rating: f64,
    /// Unix seconds.
    timestamp: Option<i64>,
}

/// One rating or a list of them.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewRatings {
    One(NewRating),
    Many(Vec<NewRating>),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBody {
    accepted: u64,
    /// `api_YYYY-MM-DD` (UTC): the day's batch in ingestion_metadata.
    batch_id: String,
}

// --- query parameters --------------------------------------------------------

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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserRatingsQuery {
    /// At most this many, newest first, 1..1000 (default 50).
    limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftQuery {
    /// Alerts of the last this many days, 1..3650 (default 30).
    days: Option<u32>,
}

fn in_range(name: &str, v: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let v = v.unwrap_or(default);
    if v == 0 || v > max {
        return Err(ApiError::bad_request(format!(
            "{name} must be between 1 and {max}, got {v}"
        )));
    }
    Ok(v)
}

fn not_loaded() -> ApiError {
    ApiError::unavailable(
        "the catalogue is not loaded yet: the server is still connecting to the database; see /readyz",
    )
}

fn loaded(state: &AppState) -> Result<std::sync::Arc<Snapshot>, ApiError> {
    state.snapshot.load_full().ok_or_else(not_loaded)
}

/// A movie of the catalogue, or the 404 that says how to find one.
fn catalogue_movie(snap: &Snapshot, movie_id: i32) -> Result<&Movie, ApiError> {
    snap.catalogue.get(movie_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "movie {movie_id} is not in the catalogue; /api/movies?q=... searches it"
        ))
    })
}

/// The catalogue's spelling of a genre typed in any case; 400 naming the
/// genres there are when no movie has it.
fn canonical_genre<'a>(snap: &'a Snapshot, g: &str) -> Result<&'a str, ApiError> {
    snap.catalogue.canonical_genre(g).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no movie has genre {g:?}; the catalogue's genres are {}",
            snap.catalogue.genres().collect::<Vec<_>>().join(", ")
        ))
    })
}

fn genre_filter(snap: &Snapshot, genre: Option<&str>) -> Result<Option<String>, ApiError> {
    match genre.map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(g) => canonical_genre(snap, g).map(|c| Some(c.to_string())),
    }
}

// --- handlers ------------------------------------------------------------------

/// The champion's top k movies the user has not rated, and why.
///
/// Users the model was trained on get `"strategy": "model"`; users with
/// ratings newer than the champion (or unknown to it) get a list computed
/// from their ratings at request time where the model can (`"fold-in"`);
/// anyone else gets the cold-start list (`"popular"`). Every movie the user
/// rated, in any split, the buffer or a moment ago, is left out. Answered
/// from memory: no database query.
#[utoipa::path(
    get,
    path = "/api/users/{userId}/recommendations",
    tag = "recommendations",
    params(("userId" = i32, Path, description = "A positive user id"), RecommendationsQuery),
    responses(
        (status = 200, description = "Recommendations, best first", body = RecommendationsBody),
        (status = 400, description = "Bad user id, k or genre", body = ErrorBody),
        (status = 503, description = "No champion model loaded", body = ErrorBody)
    )
)]
pub async fn recommendations(
    State(state): State<AppState>,
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
    let merged: Vec<(i32, f32)>;
    let history: &[(i32, f32)] = if since.is_empty() {
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

/// `body` as an `application/json` response, serialized into one buffer
/// sized for a typical answer.
fn json_response<T: Serialize>(body: &T) -> Response {
    let mut buf = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            buf,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the response: {e}"),
        )
        .into_response(),
    }
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

/// Title and genre search through the database's full-text indexes.
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
    let found = state
        .pool
        .run(move |store| store.search_movies(&text, g.as_deref(), limit))
        .await?;
    let movies: Vec<MovieBody> = found.iter().map(|m| MovieBody::new(m, &snap)).collect();
    Ok(Json(SearchBody {
        query,
        genre,
        count: movies.len(),
        movies,
    }))
}

/// Movies a user has rated (train, test and buffer), newest first.
#[utoipa::path(
    get,
    path = "/api/users/{userId}/ratings",
    tag = "ratings",
    params(("userId" = i32, Path, description = "A positive user id"), UserRatingsQuery),
    responses(
        (status = 200, body = UserRatingsBody),
        (status = 400, description = "Bad user id or limit", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn user_ratings(
    State(state): State<AppState>,
    PathId(user_id): PathId,
    ApiQuery(q): ApiQuery<UserRatingsQuery>,
) -> Result<Json<UserRatingsBody>, ApiError> {
    let limit = in_range("limit", q.limit, 50, 1000)?;
    let (total, newest, movies) = state
        .pool
        .run(move |store| {
            let mut all = store.user_ratings(user_id)?;
            let total = all.len();
            all.sort_by(|a, b| {
                b.timestamp
                    .cmp(&a.timestamp)
                    .then(a.movie_id.cmp(&b.movie_id))
            });
            all.truncate(limit);
            let ids: Vec<i32> = all.iter().map(|r| r.movie_id).collect();
            let movies = store.movies_by_id(&ids)?;
            Ok((total, all, movies))
        })
        .await?;
    let by_id: HashMap<i32, &Movie> = movies.iter().map(|m| (m.movie_id, m)).collect();
    Ok(Json(UserRatingsBody {
        user_id,
        total,
        items: newest
            .into_iter()
            .map(|r| {
                let m = by_id.get(&r.movie_id);
                RatedMovie {
                    movie_id: r.movie_id,
                    title: m.map(|m| m.title.clone()),
                    genres: m.map(|m| genre_list(m)).unwrap_or_default(),
                    rating: r.rating,
                    timestamp: r.timestamp,
                }
            })
            .collect(),
    }))
}

/// The bearer token check of the write endpoint, run before the body is read.
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.api_token.as_deref() else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "writing ratings is disabled on this server: start it with CINEMATCH_API_TOKEN \
                 set to a secret and send that as Authorization: Bearer <token>",
            ));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let Some(given) = given else {
            return Err(ApiError::unauthorized(
                "this endpoint needs Authorization: Bearer <token> (the server's CINEMATCH_API_TOKEN)",
            ));
        };
        let token = match given.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::unauthorized(
                    "the Authorization header must be Bearer <token>",
                ))
            }
        };
        if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        }
        Ok(Authorized)
    }
}

/// Compares without stopping at the first difference, so response time
/// does not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Adds ratings to `ratings_buffer` under the day's batch (`api_YYYY-MM-DD`,
/// UTC), validated as `cinematch ingest` validates a batch file: positive
/// ids, ratings 0.5..5.0 in half steps, no repeated (user, movie), and only
/// movies of the catalogue. All or nothing: one invalid rating refuses the
/// request.
#[utoipa::path(
    post,
    path = "/api/ratings",
    tag = "ratings",
    request_body(content = NewRatings, description = "One rating or a list", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Buffered", body = AcceptedBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Writes are disabled (no CINEMATCH_API_TOKEN)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A rating is invalid or names an unknown movie", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn post_ratings(
    State(state): State<AppState>,
    _auth: Authorized,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now();
    let (ratings, positions) = parse_ratings(&body, now.timestamp())?;
    let batch_id = crate::store::api_batch_id(now.date_naive());
    let to_store = ratings.clone();
    let batch = batch_id.clone();
    let outcome = state
        .pool
        .run(move |store| {
            let mut ids: Vec<i32> = to_store.iter().map(|r| r.movie_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let known: HashSet<i32> = store
                .movies_by_id(&ids)?
                .into_iter()
                .map(|m| m.movie_id)
                .collect();
            if let Some(r) = to_store.iter().find(|r| !known.contains(&r.movie_id)) {
                return Ok(Err(r.movie_id));
            }
            Ok(Ok(store.append_to_batch(&batch, &to_store)?))
        })
        .await?;
    let accepted = match outcome {
        Ok(n) => n,
        Err(movie_id) => {
            let unknown: Vec<String> = ratings
                .iter()
                .zip(&positions)
                .filter(|(r, _)| r.movie_id == movie_id)
                .map(|(_, p)| p.clone())
                .collect();
            return Err(ApiError::unprocessable(format!(
                "{}movieId {movie_id} is not in the catalogue; nothing was stored",
                unknown
                    .first()
                    .map(|p| format!("{p}: "))
                    .unwrap_or_default()
            )));
        }
    };
    state.add_rated(&ratings);
    Ok((
        StatusCode::CREATED,
        Json(AcceptedBody { accepted, batch_id }),
    )
        .into_response())
}

/// Validates the body field by field so each problem names the rating and
/// field; returns the ratings and each one's position ("ratings[3]").
fn parse_ratings(body: &Value, now: i64) -> Result<(Vec<Rating>, Vec<String>), ApiError> {
    let items: Vec<(String, &Value)> = match body {
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::unprocessable("the list of ratings is empty"))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("ratings[{i}]"), v))
            .collect(),
        Value::Object(_) => vec![("rating".to_string(), body)],
        _ => return Err(ApiError::unprocessable(
            "send one rating {\"userId\": 1, \"movieId\": 1, \"rating\": 4.5} or a list of them",
        )),
    };
    let mut errors: Vec<String> = Vec::new();
    let mut ratings = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    let mut first_seen: HashMap<(i32, i32), String> = HashMap::new();
    for (pos, v) in items {
        match parse_rating(v, now) {
            Ok(r) => {
                if let Some(first) = first_seen.get(&(r.user_id, r.movie_id)) {
                    errors.push(format!(
                        "{pos}: user {} rates movie {} again (already in {first})",
                        r.user_id, r.movie_id
                    ));
                    continue;
                }
                first_seen.insert((r.user_id, r.movie_id), pos.clone());
                ratings.push(r);
                positions.push(pos);
            }
            Err(e) => errors.push(format!("{pos}: {e}")),
        }
    }
    if !errors.is_empty() {
        let n = errors.len();
        let mut msg = errors.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if n > 5 {
            let _ = write!(msg, "; and {} more", n - 5);
        }
        msg.push_str("; nothing was stored");
        return Err(ApiError::unprocessable(msg));
    }
    Ok((ratings, positions))
}

fn parse_rating(v: &Value, now: i64) -> Result<Rating, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "must be an object {\"userId\", \"movieId\", \"rating\"}".to_string())?;
    let mut user = None;
    let mut movie = None;
    let mut rating = None;
    let mut timestamp = None;
    for (k, val) in obj {
        match k.as_str() {
            "userId" | "user_id" => user = Some(val),
            "movieId" | "movie_id" => movie = Some(val),
            "rating" => rating = Some(val),
            "timestamp" => timestamp = Some(val),
            other => {
                return Err(format!(
                    "unknown field {other:?}; a rating has userId, movieId, rating and optionally timestamp"
                ))
            }
        }
    }
    let id = |name: &str, v: Option<&Value>| -> Result<i32, String> {
        let v = v.ok_or_else(|| format!("{name} is missing"))?;
        match v.as_i64() {
            Some(n) if n > 0 && n <= i64::from(i32::MAX) => Ok(n as i32),
            Some(n) if n <= 0 => Err(format!("{name} {n} is not a positive integer")),
            Some(n) => Err(format!("{name} {n} is too large for a 32-bit id")),
            None => Err(format!("{name} {v} is not an integer")),
        }
    };
    let user_id = id("userId", user)?;
    let movie_id = id("movieId", movie)?;
    let rv = rating.ok_or_else(|| "rating is missing".to_string())?;
    let value = rv
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("rating {rv} is not a number"))?;
    check_rating(value).map_err(|e| format!("rating {rv} {e}"))?;
    let timestamp = match timestamp {
        None | Some(Value::Null) => now,
        Some(t) => t
            .as_i64()
            .ok_or_else(|| format!("timestamp {t} is not an integer (Unix seconds)"))?,
    };
    Ok(Rating {
        user_id,
        movie_id,
        rating: value as f32,
        timestamp,
    })
}

/// Every model version with its metrics and the RMSE change from the run
/// before, oldest first.
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "monitoring",
    responses(
        (status = 200, body = ModelsBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn models(State(state): State<AppState>) -> Result<Json<ModelsBody>, ApiError> {
    let objective = state.objective;
    let (champion, runs) = state
        .pool
        .run(move |store| {
            Ok((
                store.champion()?,
                registry::run_summaries(store, objective)?,
            ))
        })
        .await?;
    Ok(Json(ModelsBody {
        champion,
        objective: objective.as_str().to_string(),
        models: ModelBody::all(&runs, objective),
    }))
}

/// Drift test results of the last `days` days, newest first.
#[utoipa::path(
    get,
    path = "/api/drift",
    tag = "monitoring",
    params(DriftQuery),
    responses(
        (status = 200, body = DriftBody),
        (status = 400, description = "days outside 1..3650", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn drift(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DriftQuery>,
) -> Result<Json<DriftBody>, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "days must be between 1 and 3650, got {days}"
        )));
    }
    let alerts = state
        .pool
        .run(move |store| store.drift_alerts(Some(i64::from(days) * 86_400)))
        .await?;
    Ok(Json(DriftBody {
        days,
        alerts: alerts.iter().map(AlertBody::from).collect(),
    }))
}

/// The ingestion audit trail (ingestion_metadata), newest first.
#[utoipa::path(
    get,
    path = "/api/ingestions",
    tag = "monitoring",
    responses(
        (status = 200, body = IngestionsBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn ingestions(State(state): State<AppState>) -> Result<Json<IngestionsBody>, ApiError> {
    let rows = state.pool.run(|store| store.ingestions()).await?;
    Ok(Json(IngestionsBody {
        ingestions: rows.iter().map(IngestionBody::from).collect(),
    }))
}

/// The champion, what this server serves, the buffer, and whether
/// retraining is needed.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "monitoring",
    responses(
        (status = 200, body = StatusBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    let objective = state.objective;
    let (champion, runs, buffer, recent) = state
        .pool
        .run(move |store| {
            let champion = store.champion()?;
            let runs = registry::run_summaries(store, objective)?;
            let buffer = store.buffer_counts()?;
            let recent = crate::pipeline::retrain::retraining_verdict(store, 86_400)?.alerts;
            Ok((champion, runs, buffer, recent))
        })
        .await?;
    let champion = champion.and_then(|v| {
        ModelBody::all(&runs, objective)
            .into_iter()
            .find(|b| b.model_version == v)
    });
    let snap = state.snapshot.load_full();
    Ok(Json(StatusBody {
        database: state.backend.to_string(),
        champion,
        serving: ServingBody {
            model_version: snap
                .as_ref()
                .and_then(|s| s.model_version().map(str::to_string)),
            loaded_at: snap
                .as_ref()
                .map(|s| s.loaded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            catalogue_movies: snap.as_ref().map_or(0, |s| s.catalogue.len()),
            users_with_ratings: snap.as_ref().map_or(0, |s| s.users_with_ratings()),
            last_reload_error: state
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        },
        buffer: BufferBody {
            total: buffer.iter().map(|(_, n)| n).sum(),
            batches: buffer
                .into_iter()
                .map(|(batch_id, ratings)| BatchCount { batch_id, ratings })
                .collect(),
        },
        retraining_needed: !recent.is_empty(),
        recent_alerts: recent.iter().map(AlertBody::from).collect(),
    }))
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, body = HealthBody))
)]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
    })
}

/// Ready to serve: the database answers and a champion model is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = ReadyBody),
        (status = 503, description = "Database unreachable or no champion loaded", body = ReadyBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let probe = tokio::time::timeout(
        PROBE_TIMEOUT,
        state.pool.run(|store| store.schema_version().map(|_| ())),
    )
    .await;
    let database_reachable = matches!(probe, Ok(Ok(())));
    let model_version = state
        .snapshot
        .load()
        .as_ref()
        .and_then(|s| s.model_version().map(str::to_string));
    let error = if !database_reachable {
        Some("the database does not answer".to_string())
    } else if model_version.is_none() {
        Some("no champion model is loaded yet: train one with `cinematch train`".to_string())
    } else {
        None
    };
    let ready = error.is_none();
    let body = ReadyBody {
        ready,
        database_reachable,
        model_version,
        error,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics: requests and latency per route, the model served,
/// the buffer size and the last drift check.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8192);
    state.metrics.render(&mut out);
    let snap = state.snapshot.load_full();
    out.push_str(
        "# HELP cinematch_model_info The model version this server answers with (value 1).\n\
         # TYPE cinematch_model_info gauge\n",
    );
    if let Some(r) = snap.as_ref().and_then(|s| s.recommender.as_ref()) {
        let _ = writeln!(
            out,
            "cinematch_model_info{{model_version=\"{}\",algorithm=\"{}\"}} 1",
            escape_label(&r.model_version),
            r.model.algo().as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP cinematch_model_loaded Whether a champion model is loaded.\n\
         # TYPE cinematch_model_loaded gauge\ncinematch_model_loaded {}",
        u8::from(snap.as_ref().is_some_and(|s| s.recommender.is_some()))
    );
    let _ = writeln!(
        out,
        "# HELP cinematch_catalogue_movies Movies in the served catalogue.\n\
         # TYPE cinematch_catalogue_movies gauge\ncinematch_catalogue_movies {}",
        snap.as_ref().map_or(0, |s| s.catalogue.len())
    );
    if let Some(s) = snap.as_ref() {
        let _ = writeln!(
            out,
            "# HELP cinematch_model_loaded_timestamp_seconds When the served snapshot was loaded.\n\
             # TYPE cinematch_model_loaded_timestamp_seconds gauge\n\
             cinematch_model_loaded_timestamp_seconds {}",
            s.loaded_at.timestamp()
        );
    }
    let _ = writeln!(
        out,
        "# HELP cinematch_model_reloads_total Snapshots loaded (champion changes).\n\
         # TYPE cinematch_model_reloads_total counter\ncinematch_model_reloads_total {}\n\
         # HELP cinematch_model_reload_failures_total Champion checks or loads that failed.\n\
         # TYPE cinematch_model_reload_failures_total counter\ncinematch_model_reload_failures_total {}",
        state.reloads.load(Ordering::Relaxed),
        state.reload_failures.load(Ordering::Relaxed)
    );
    let db = tokio::time::timeout(
        PROBE_TIMEOUT,
        state.pool.run(|store| {
            let buffer: i64 = store.buffer_counts()?.iter().map(|(_, n)| n).sum();
            let alerts = store.drift_alerts(None)?;
            Ok((buffer, alerts))
        }),
    )
    .await;
    match db {
        Ok(Ok((buffer, alerts))) => {
            let _ = writeln!(
                out,
                "# HELP cinematch_database_up Whether the database answered this scrape.\n\
                 # TYPE cinematch_database_up gauge\ncinematch_database_up 1\n\
                 # HELP cinematch_buffer_ratings Ratings waiting in ratings_buffer.\n\
                 # TYPE cinematch_buffer_ratings gauge\ncinematch_buffer_ratings {buffer}"
            );
            if let Some(last) = alerts.first().map(|a| a.alert_date) {
                let check: Vec<&DriftAlert> =
                    alerts.iter().filter(|a| a.alert_date == last).collect();
                let _ = writeln!(
                    out,
                    "# HELP cinematch_drift_last_check_timestamp_seconds When the last drift check ran.\n\
                     # TYPE cinematch_drift_last_check_timestamp_seconds gauge\n\
                     cinematch_drift_last_check_timestamp_seconds {}\n\
                     # HELP cinematch_drift_last_check_tests Tests in the last drift check.\n\
                     # TYPE cinematch_drift_last_check_tests gauge\ncinematch_drift_last_check_tests {}\n\
                     # HELP cinematch_drift_last_check_alerts Tests of the last drift check that triggered an alert.\n\
                     # TYPE cinematch_drift_last_check_alerts gauge\ncinematch_drift_last_check_alerts {}",
                    last.and_utc().timestamp(),
                    check.len(),
                    check.iter().filter(|a| a.alert_triggered).count()
                );
                out.push_str(
                    "# HELP cinematch_drift_score Score of each test in the last drift check.\n\
                     # TYPE cinematch_drift_score gauge\n",
                );
                for a in &check {
                    if let Some(score) = a.drift_score {
                        let _ = writeln!(
                            out,
                            "cinematch_drift_score{{feature=\"{}\",triggered=\"{}\"}} {score}",
                            escape_label(&a.feature_name),
                            a.alert_triggered
                        );
                    }
                }
            }
        }
        _ => {
            out.push_str(
                "# HELP cinematch_database_up Whether the database answered this scrape.\n\
                 # TYPE cinematch_database_up gauge\ncinematch_database_up 0\n",
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
