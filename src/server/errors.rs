//! One error shape for the whole API, `{"error": "..."}`, whoever failed:
//! a handler, one of axum's extractors, the router (404, 405), a layer (413,
//! 408). Client mistakes get a 4xx that says what to fix; database trouble
//! gets a 503 that never shows the database URL or its password.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and, where it can, what to do about it.
    pub error: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            www_authenticate: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            www_authenticate: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 503 while no champion is loaded.
    pub fn no_champion() -> ApiError {
        ApiError::unavailable(
            "no champion model is loaded yet: train one with `cinematch train` \
             (the server picks it up within its reload interval)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.www_authenticate {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::from(&e)
    }
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> ApiError {
        let (status, message) = public_message(e);
        if status.is_server_error() {
            tracing::error!(error = %crate::store::redact(&e.to_string()), "request failed");
        }
        ApiError::new(status, message)
    }
}

/// The status and the message a client may see for a library error. A
/// database failure becomes a generic 503 (its detail goes to the log,
/// redacted): driver messages can carry host names or worse.
pub fn public_message(e: &Error) -> (StatusCode, String) {
    match e {
        Error::InvalidArgument(m) => (StatusCode::BAD_REQUEST, m.clone()),
        Error::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        Error::UnknownModel { .. } => (StatusCode::NOT_FOUND, e.to_string()),
        Error::AmbiguousModel { .. }
        | Error::AmbiguousMovie { .. }
        | Error::UnknownGenre { .. } => (StatusCode::BAD_REQUEST, e.to_string()),
        Error::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
        Error::BatchCompleted { .. } | Error::Busy(_) | Error::DatasetLoaded { .. } => {
            (StatusCode::CONFLICT, e.to_string())
        }
        // The stored model is broken, not the request: a server error, with
        // no detail of the stored bytes.
        Error::Artifact(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored model cannot be decoded; the server log has the details".to_string(),
        ),
        Error::Input(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Error::UnknownMovie { .. } | Error::IdempotencyKeyReused { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        // The detail may name tables or locks: the log has it.
        Error::TimedOut(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database did not answer in time (it was busy or locked) and the work was \
             rolled back; try again later"
                .to_string(),
        ),
        other => {
            let kind = match other {
                Error::Postgres(_) => "PostgreSQL error",
                Error::Sqlite(_) => "SQLite error",
                Error::Config(_) => "cannot connect",
                _ => "I/O error",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the database is unavailable ({kind}); try again later, the server log has the details"
                ),
            )
        }
    }
}

/// A positive id from the path (`/api/users/{userId}/...`), named in the
/// error when it is not one.
pub struct PathId(pub i32);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))?;
        let (name, raw) = params
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::bad_request("an id is missing from the path"))?;
        parse_positive_id(&name, &raw).map(PathId)
    }
}

pub fn parse_positive_id(name: &str, raw: &str) -> Result<i32, ApiError> {
    match raw.trim().parse::<i64>() {
        Ok(v) if v > 0 && v <= i64::from(i32::MAX) => Ok(v as i32),
        Ok(v) if v <= 0 => Err(ApiError::bad_request(format!(
            "{name} must be a positive integer, got {v}"
        ))),
        Ok(_) => Err(ApiError::bad_request(format!(
            "{name} {raw} is too large for a 32-bit id"
        ))),
        Err(_) => Err(ApiError::bad_request(format!(
            "{name} must be a positive integer, got {:?}",
            truncate(raw, 40)
        ))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// `Query<T>` with the rejection as a 400 JSON error.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// `Json<T>` with the rejection's status (400 syntax, 415 content type, 413
/// too large, 422 wrong shape) and a JSON error body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    let status = e.status();
    let message = match &e {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON: send Content-Type: application/json".to_string()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this server accepts; send fewer ratings per request"
                .to_string()
        }
        _ => e.body_text(),
    };
    ApiError::new(status, message)
}

/// Unknown routes.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}; /api/openapi.json lists the routes",
        req.method(),
        req.uri().path()
    ))
}

pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; /api/openapi.json lists the methods",
            req.method(),
            req.uri().path()
        ),
    )
}

/// Answers 408 when a request runs longer than the configured limit.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request did not complete within {} ms; try again later",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// The writes' last resort. A write waits for the database's verdict (the
/// statement timeout ends it well before this), so that its answer says
/// what was stored; only a database that stops answering altogether leaves
/// the outcome unknown, and the answer says so.
pub async fn write_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::unavailable(format!(
            "the database did not answer within {} ms, so whether the ratings were stored \
             is unknown; send the request again with the same Idempotency-Key (it is stored \
             at most once)",
            limit.as_millis()
        ))
        .into_response(),
    }
}

/// Turns any error response that is not JSON yet (axum's plain-text
/// rejections, an empty 405) into `{"error": ...}`, keeping status and
/// headers, so clients parse one shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        });
    let body = serde_json::to_vec(&ErrorBody { error: text }).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_are_never_client_errors() {
        let broken = Error::Artifact("checksum mismatch".into());
        let (status, message) = public_message(&broken);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(message.contains("stored model"), "{message}");
        assert!(!message.contains("checksum"), "{message}");
        let startup = Error::Server("cannot listen on 127.0.0.1:80: denied".into());
        assert!(public_message(&startup).0.is_server_error());
        let unknown = Error::UnknownModel {
            version: "run_x_v1".into(),
        };
        assert_eq!(public_message(&unknown).0, StatusCode::NOT_FOUND);
        let loaded = Error::DatasetLoaded {
            ratings: 1,
            movies: 1,
        };
        assert_eq!(public_message(&loaded).0, StatusCode::CONFLICT);
    }
}
