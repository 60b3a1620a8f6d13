//! Bearer tokens, checked before a body is read.
//!
//! Two tokens, because two kinds of secret are at stake: the write token
//! (`CINEMATCH_API_TOKEN`) lets its holder add ratings, the read token
//! (`CINEMATCH_READ_TOKEN`) lets its holder read any user's rating history
//! and the lists made from it. A deployment that hands the read token to
//! its front end need not hand out the right to write. Without a read token
//! per-user reads stay open, as they are in a demo; without a write token
//! writes are refused.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::errors::ApiError;
use super::state::AppState;

/// The write endpoint's check: the write token, and nothing else.
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
        let Some(token) = bearer(parts)? else {
            return Err(ApiError::unauthorized(
                "this endpoint needs Authorization: Bearer <token> (the server's CINEMATCH_API_TOKEN)",
            ));
        };
        if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        }
        Ok(Authorized)
    }
}

/// The check of private reads (a user's ratings and recommendations, and
/// the ingestion audit trail, whose notes name delivered files and their
/// problems): when the server has a read token, the read token or the write
/// token (whoever may write a user's ratings may read them); without one,
/// open.
pub struct ReadAuthorized;

impl FromRequestParts<AppState> for ReadAuthorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(read) = state.read_token.as_deref() else {
            return Ok(ReadAuthorized);
        };
        let Some(token) = bearer(parts)? else {
            return Err(ApiError::unauthorized(
                "a user's ratings and recommendations, and the ingestion audit trail, are \
                 private on this server: send Authorization: Bearer <token> with the server's \
                 read token",
            ));
        };
        let write = state.api_token.as_deref();
        // Both comparisons run, so timing does not say which token matched.
        let is_read = constant_time_eq(token.as_bytes(), read.as_bytes());
        let is_write = write.is_some_and(|w| constant_time_eq(token.as_bytes(), w.as_bytes()));
        if !(is_read | is_write) {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        }
        Ok(ReadAuthorized)
    }
}

/// The token of an `Authorization: Bearer <token>` header, `None` without
/// the header, 401 for another scheme.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(given) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return Ok(None);
    };
    match given.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be Bearer <token>",
        )),
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
