//! RFC 7807 answers the gateway gives itself (the API's own problems pass through untouched).

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

/// A problem+json response with the same `type` URNs as the API.
pub(crate) fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response<Body> {
    let body = json!({
        "type": format!("urn:orion:problem:{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// 401 with the `WWW-Authenticate` challenge.
pub(crate) fn unauthorized(detail: &str) -> Response<Body> {
    let mut response = problem(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"orion\", error=\"invalid_token\""),
    );
    response
}
