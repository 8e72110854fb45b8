//! `Idempotency-Key`: a client that retries a command with the same key and body gets the first
//! answer back instead of a second effect. The record is written in the command's own
//! transaction, so it exists exactly when the effect does.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orion_persistence::idempotency::StoredResponse;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

const HEADER: &str = "idempotency-key";

/// The request's key, if it sent one; a malformed one is refused.
pub(crate) fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
    })
}

/// A fingerprint of what was asked (for a path-addressed command, include the path's values),
/// so that a key reused for another request is recognised.
pub(crate) fn fingerprint(request: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first answer again, marked `Idempotent-Replayed`, with `location` if the command made a
/// resource; `422` if the key came with another request.
pub(crate) fn replay(
    stored: &StoredResponse,
    fingerprint: &str,
    location: Option<String>,
) -> Result<Response, ApiError> {
    if stored.request_hash != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = StatusCode::from_u16(stored.status.unsigned_abs()).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(stored.body.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}
