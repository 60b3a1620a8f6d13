//! The JSON API, one file per route group; handlers parse the request,
//! call the library and shape the answer. Each handler carries its
//! `#[utoipa::path]`, and [`ApiDoc`] lists them all, so
//! `/api/openapi.json` is generated from the code it describes.
//!
//! Recommendations, similar movies and the movie page are answered from the
//! in-memory snapshot; search (through the full-text indexes) and the
//! monitoring endpoints read the store through the pool on blocking threads.
//!
//! * `recommendations`: a user's list, from memory.
//! * `movies`: the movie page, similar movies, search.
//! * `ratings`: a user's ratings, and new ratings into the buffer.
//! * `models`, `drift`, `status`: the monitoring history.
//! * `health`: probes, `/metrics` and this document.

mod drift;
mod health;

/// A drift result as `/api/drift` gives it, for the CLI's `--json` too.
pub use drift::AlertBody;

mod models;
mod movies;
mod ratings;
mod recommendations;
mod status;

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

pub(crate) use drift::drift;
pub(crate) use health::{healthz, metrics, openapi, readyz};
pub(crate) use models::{models, promote, rollback};
pub(crate) use movies::{movie, search_movies, similar};
pub(crate) use ratings::{post_ratings, user_ratings};
pub(crate) use recommendations::recommendations;
pub(crate) use status::{ingestions, status};

use super::errors::{ApiError, ErrorBody};
use super::state::{AppState, Snapshot};
use crate::types::Movie;

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
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
        status::status,
        models::models,
        models::promote,
        models::rollback,
        drift::drift,
        status::ingestions,
        movies::search_movies,
        movies::movie,
        movies::similar,
        recommendations::recommendations,
        ratings::user_ratings,
        ratings::post_ratings
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

pub(super) fn genre_list(m: &Movie) -> Vec<String> {
    m.genre_list().map(str::to_string).collect()
}

pub(super) fn date(d: chrono::NaiveDateTime) -> String {
    d.format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub(super) fn in_range(
    name: &str,
    v: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let v = v.unwrap_or(default);
    if v == 0 || v > max {
        return Err(ApiError::bad_request(format!(
            "{name} must be between 1 and {max}, got {v}"
        )));
    }
    Ok(v)
}

pub(super) fn not_loaded() -> ApiError {
    ApiError::unavailable(
        "the catalogue is not loaded yet: the server is still connecting to the database; see /readyz",
    )
}

pub(super) fn loaded(state: &AppState) -> Result<std::sync::Arc<Snapshot>, ApiError> {
    state.snapshot.load_full().ok_or_else(not_loaded)
}

/// A movie of the catalogue, or the 404 that says how to find one.
pub(super) fn catalogue_movie(snap: &Snapshot, movie_id: i32) -> Result<&Movie, ApiError> {
    snap.catalogue.get(movie_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "movie {movie_id} is not in the catalogue; /api/movies?q=... searches it"
        ))
    })
}

/// The catalogue's spelling of a genre typed in any case; 400 naming the
/// genres there are when no movie has it.
pub(super) fn canonical_genre<'a>(snap: &'a Snapshot, g: &str) -> Result<&'a str, ApiError> {
    snap.catalogue.canonical_genre(g).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no movie has genre {g:?}; the catalogue's genres are {}",
            snap.catalogue.genres().collect::<Vec<_>>().join(", ")
        ))
    })
}

pub(super) fn genre_filter(
    snap: &Snapshot,
    genre: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match genre.map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(g) => canonical_genre(snap, g).map(|c| Some(c.to_string())),
    }
}

/// `body` as an `application/json` response, serialized into one buffer
/// sized for a typical answer.
pub(super) fn json_response<T: Serialize>(body: &T) -> Response {
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
