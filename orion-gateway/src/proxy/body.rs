//! The request body: kept when small enough to be sent to a second replica, streamed once
//! otherwise; and which requests may be sent twice at all.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, header};

/// The request body: kept for another attempt, or a stream that can go out once.
pub(super) enum Payload {
    Replayable(Bytes),
    Stream(Option<Body>),
}

impl Payload {
    pub(super) fn take(&mut self) -> Option<Body> {
        match self {
            Self::Replayable(bytes) => Some(Body::from(bytes.clone())),
            Self::Stream(body) => body.take(),
        }
    }

    pub(super) fn is_replayable(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }
}

/// Whether a request may be sent to a second replica after the first failed: HTTP's idempotent
/// methods, and the commands the API deduplicates by `Idempotency-Key` when they carry one. Any
/// other POST with the header would be applied twice, so it is not retried.
pub(super) fn is_replayable(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    method.is_idempotent()
        || (*method == Method::POST
            && headers.contains_key("idempotency-key")
            && honours_idempotency_key(path))
}

/// The API's commands that honour `Idempotency-Key`: placing an order and restocking an item
/// (those whose OpenAPI operation takes the header; a test holds the two together).
pub fn honours_idempotency_key(path: &str) -> bool {
    path == "/api/orders"
        || path
            .strip_prefix("/api/inventory/")
            .and_then(|rest| rest.strip_suffix("/restock"))
            .is_some_and(|sku| !sku.is_empty() && !sku.contains('/'))
}

/// The body's announced length; a bodiless method without one has none.
pub(super) fn body_length(headers: &HeaderMap, method: &Method) -> Option<usize> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(value) => value.to_str().ok()?.parse().ok(),
        None if matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
        ) =>
        {
            Some(0)
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_idempotent_methods_and_keyed_commands_the_api_deduplicates_are_replayed() {
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", "k-1".parse().unwrap());
        let plain = HeaderMap::new();
        assert!(is_replayable(&Method::GET, "/api/orders", &plain));
        assert!(is_replayable(
            &Method::DELETE,
            "/api/admin/api-keys/1",
            &plain
        ));
        assert!(is_replayable(&Method::POST, "/api/orders", &keyed));
        assert!(is_replayable(
            &Method::POST,
            "/api/inventory/SKU-1/restock",
            &keyed
        ));
        assert!(!is_replayable(&Method::POST, "/api/orders", &plain));
        // The API ignores the key here: a retry would apply the command twice.
        assert!(!is_replayable(&Method::POST, "/api/admin/api-keys", &keyed));
        assert!(!is_replayable(
            &Method::POST,
            "/api/orders/1/cancel",
            &keyed
        ));
        assert!(!is_replayable(
            &Method::POST,
            "/api/inventory/a/b/restock",
            &keyed
        ));
        assert!(!is_replayable(
            &Method::PATCH,
            "/api/inventory/SKU-1",
            &keyed
        ));
    }
}
