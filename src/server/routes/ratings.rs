//! A user's ratings, and new ratings into `ratings_buffer`. The handler
//! parses and validates the body field by field (so every problem names the
//! rating and the field); the ingestion module does the rest.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{genre_list, in_range};
use crate::pipeline::ingest::{append_api_ratings, request_hash, AppendOutcome, RequestKey};
use crate::server::auth::{Authorized, ReadAuthorized};
use crate::server::errors::{ApiError, ApiJson, ApiQuery, ErrorBody, PathId};
use crate::server::state::AppState;
use crate::types::{check_rating, check_timestamp, Movie, Rating};
use crate::Error;

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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserRatingsQuery {
    /// At most this many, newest first, 1..1000 (default 50).
    limit: Option<usize>,
}

/// Movies a user has rated (train, test and buffer), newest first. Private
/// when the server has a read token (`CINEMATCH_READ_TOKEN`; the write
/// token works too): ids are sequential, so anyone could read everyone.
#[utoipa::path(
    get,
    path = "/api/users/{userId}/ratings",
    tag = "ratings",
    params(("userId" = i32, Path, description = "A positive user id"), UserRatingsQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = UserRatingsBody),
        (status = 400, description = "Bad user id or limit", body = ErrorBody),
        (status = 401, description = "The server has a read token and the request lacks it", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)
    )
)]
pub async fn user_ratings(
    State(state): State<AppState>,
    _auth: ReadAuthorized,
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

/// Adds ratings to `ratings_buffer` under the day's batch (`api_YYYY-MM-DD`,
/// UTC), validated as `cinematch ingest` validates a batch file: positive
/// ids, ratings 0.5..5.0 in half steps, no repeated (user, movie), and only
/// movies of the catalogue. All or nothing: one invalid rating refuses the
/// request.
///
/// Retries are safe with an `Idempotency-Key` header (any 1 to 255 visible
/// ASCII characters naming this request, e.g. a UUID): the key commits with
/// the ratings, and a request with a key seen before, by this server or any
/// other sharing the database, stores nothing and gets the first answer
/// again (header `Idempotent-Replayed: true`); the same key with another
/// body is refused with 422. The answer is never given before the database
/// has decided: a write that runs out of time is rolled back and answered
/// 503 "nothing was stored".
#[utoipa::path(
    post,
    path = "/api/ratings",
    tag = "ratings",
    params(("Idempotency-Key" = Option<String>, Header, description = "Names this request so that retries store it once (1 to 255 visible ASCII characters)")),
    request_body(content = NewRatings, description = "One rating or a list", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Buffered (or, with a known Idempotency-Key, buffered before: the first answer again)", body = AcceptedBody),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Writes are disabled (no CINEMATCH_API_TOKEN)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A rating is invalid or names an unknown movie, or the Idempotency-Key named another request", body = ErrorBody),
        (status = 503, description = "Database unavailable or out of time; nothing was stored", body = ErrorBody)
    )
)]
pub async fn post_ratings(
    State(state): State<AppState>,
    _auth: Authorized,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now();
    let (ratings, positions, canonical) = parse_ratings(&body, now.timestamp())?;
    let key = key.map(|key| RequestKey {
        key,
        request_hash: request_hash(canonical.as_bytes()),
    });
    let keyed = key.is_some();
    let to_store = ratings.clone();
    // Awaited to the end, whatever the time: the answer says what the
    // database did (the statement timeout bounds the wait).
    let outcome = state
        .pool
        .run_write(move |store| append_api_ratings(store, &to_store, now, key.as_ref()))
        .await
        .map_err(|e| match e {
            // Name the rating in the body, as the other validation errors do.
            Error::UnknownMovie { movie_id } => {
                let at = ratings
                    .iter()
                    .zip(&positions)
                    .find(|(r, _)| r.movie_id == movie_id)
                    .map(|(_, p)| format!("{p}: "))
                    .unwrap_or_default();
                ApiError::unprocessable(format!("{at}{e}"))
            }
            // The connection failed during the write: its commit may have
            // happened with the acknowledgement lost, or not at all.
            Error::Postgres(_) | Error::Sqlite(_) => {
                tracing::error!(error = %crate::store::redact(&e.to_string()), "a write failed; its outcome is unknown");
                ApiError::unavailable(if keyed {
                    "the database connection failed during the write, so whether the ratings \
                     were stored is unknown; send the request again with the same \
                     Idempotency-Key: it is stored at most once"
                } else {
                    "the database connection failed during the write, so whether the ratings \
                     were stored is unknown: sending them again may store them twice. Send an \
                     Idempotency-Key header (a UUID, say) with every write, so that a retry \
                     is always safe"
                })
            }
            Error::TimedOut(why) => {
                tracing::warn!(%why, "a write ran out of time and was rolled back");
                ApiError::unavailable(
                    "the database did not store the ratings in time (it was busy or locked), \
                     so nothing was stored; send the request again (with the same \
                     Idempotency-Key a retry is always safe)",
                )
            }
            e => ApiError::from(e),
        })?;
    // Committed, now or by the first attempt: exclude them at once.
    state.add_rated(&ratings);
    Ok(match outcome {
        AppendOutcome::Stored(a) => (
            StatusCode::CREATED,
            Json(AcceptedBody {
                accepted: a.accepted,
                batch_id: a.batch_id,
            }),
        )
            .into_response(),
        AppendOutcome::Replayed { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    HeaderName::from_static("idempotent-replayed"),
                    HeaderValue::from_static("true"),
                ),
            ],
            body,
        )
            .into_response(),
    })
}

/// The optional `Idempotency-Key` header, checked before the body is read.
pub struct IdempotencyKey(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        match v.to_str() {
            Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(IdempotencyKey(Some(k.to_string())))
            }
            _ => Err(ApiError::bad_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
            )),
        }
    }
}

/// Validates the body field by field so each problem names the rating and
/// field; returns the ratings, each one's position ("ratings[3]"), and the
/// request as parsed, in one canonical form: what an `Idempotency-Key` names,
/// so `"rating": 4` and `4.0`, `userId` and `user_id`, or one rating sent
/// bare and in a list are one request (a timestamp left out stays "left
/// out", not the time of each attempt).
fn parse_ratings(body: &Value, now: i64) -> Result<(Vec<Rating>, Vec<String>, String), ApiError> {
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
    let mut canonical = String::new();
    for (pos, v) in items {
        match parse_rating(v, now) {
            Ok((r, given)) => {
                let _ = write!(canonical, "{},{},{},", r.user_id, r.movie_id, r.rating);
                match given {
                    Some(t) => {
                        let _ = writeln!(canonical, "{t}");
                    }
                    None => canonical.push_str("-\n"),
                }
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
    Ok((ratings, positions, canonical))
}

/// One rating, and its timestamp when the client gave one.
fn parse_rating(v: &Value, now: i64) -> Result<(Rating, Option<i64>), String> {
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
    let given = match timestamp {
        None | Some(Value::Null) => None,
        Some(t) => {
            let ts = t
                .as_i64()
                .ok_or_else(|| format!("timestamp {t} is not an integer (Unix seconds)"))?;
            check_timestamp(ts, now).map_err(|e| format!("timestamp {ts} {e}"))?;
            Some(ts)
        }
    };
    Ok((
        Rating {
            user_id,
            movie_id,
            rating: value as f32,
            timestamp: given.unwrap_or(now),
        },
        given,
    ))
}
