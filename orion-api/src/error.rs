//! Every failure as RFC 7807 `application/problem+json`, with a stable `type` per kind.
//!
//! Internal causes (database errors, bugs) are logged once here, inside the request's span, and
//! answered with a generic 500: no SQL text, no stack trace reaches a client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The crate's error: start-up failures and request failures alike.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] orion_config::Error),
    #[error(transparent)]
    Persistence(#[from] orion_persistence::Error),
    #[error(transparent)]
    Auth(#[from] orion_auth::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// A problem with a request, answered as problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body did not arrive in time; send it at once")]
    BodyTimeout,
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("too many failed sign-ins for this account; retry in {0} s")]
    TooManyAttempts(u64),
    #[error("another sign-in for this account is being checked; retry in a second")]
    SignInBusy,
    #[error("this account already has {0} hub connections open; close one first")]
    TooManyConnections(usize),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot {action} an order that is {current_status}")]
    IllegalTransition {
        action: &'static str,
        current_status: String,
    },
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the value is, as a JSON-pointer-like path such as `items[2].quantity`.
    pub field: String,
    pub message: String,
}

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:orion:problem:validation-error",
    "title": "Invalid request",
    "status": 422,
    "detail": "the order has 2 invalid fields",
    "errors": [{"field": "items[0].quantity", "message": "must be between 1 and 1000"}]
}))]
pub struct Problem {
    /// Stable identifier of the kind of problem: `urn:orion:problem:` and a kind such as
    /// `validation-error`, `unauthorized`, `forbidden`, `not-found`, `conflict`,
    /// `illegal-transition`, `idempotency-key-reused`, `too-many-attempts`, `rate-limited`,
    /// `unavailable`, `timeout`, `bad-gateway`. Kinds may be added (RFC 7807 types are open), so
    /// this is a pattern, not an enum: a client generated from a closed list would fail on the
    /// next kind, where it should fall back to `status`.
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:orion:problem:[a-z0-9-]+$")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Invalid fields, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The order's status, for illegal transitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self::Validation { detail, errors }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body timed out",
            ),
            Self::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-error",
                "Invalid request",
            ),
            Self::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            Self::TooManyAttempts(_) | Self::SignInBusy => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many attempts",
            ),
            Self::TooManyConnections(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-connections",
                "Too many connections",
            ),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::IllegalTransition { .. } => (
                StatusCode::CONFLICT,
                "illegal-transition",
                "Illegal status change",
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", "Request timed out"),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

/// Seconds a client should wait after a `503` before it tries again.
const RETRY_AFTER_SECONDS: &str = "5";

impl ApiError {
    /// The database could not be reached: the request was fine and will work once it is back.
    pub(crate) fn database_unavailable(error: orion_persistence::Error) -> Self {
        tracing::warn!(%error, "database unavailable");
        Self::Unavailable("the database is unavailable; retry shortly".into())
    }
}

/// The `type` URI of a problem kind.
pub(crate) fn problem_type(slug: &str) -> String {
    format!("urn:orion:problem:{slug}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let self_retry = match &self {
            Self::TooManyAttempts(seconds) => Some(*seconds),
            Self::SignInBusy => Some(1),
            _ => None,
        };
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, source = ?cause.source(), "request failed");
        }
        let problem = Problem {
            kind: problem_type(slug),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match &self {
                Self::Validation { errors, .. } => Some(errors.clone()),
                _ => None,
            },
            current_status: match &self {
                Self::IllegalTransition { current_status, .. } => Some(current_status.clone()),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A dependency is away; clients (and the gateway) wait this long before trying again.
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if let Some(seconds) = self_retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="orion""#),
            );
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Api(api) => api,
            Error::Persistence(e) => e.into(),
            Error::Auth(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<orion_persistence::Error> for ApiError {
    fn from(error: orion_persistence::Error) -> Self {
        use orion_persistence::Error as P;
        match error {
            P::DuplicateEmail => Self::Conflict("an account with this email already exists".into()),
            P::DuplicateSku(sku) => {
                Self::Conflict(format!("an item with SKU {sku} already exists"))
            }
            P::VersionConflict { .. } => Self::Conflict(format!("{error}")),
            P::ItemNotFound(sku) => Self::NotFound(format!("no inventory item with SKU {sku}")),
            P::OrderNotFound(id) => Self::NotFound(format!("no order {id}")),
            P::Domain(e) => e.into(),
            other if other.is_unavailable() => Self::database_unavailable(other),
            other => Self::internal(other),
        }
    }
}

impl From<orion_domain::Error> for ApiError {
    fn from(error: orion_domain::Error) -> Self {
        match error {
            orion_domain::Error::IllegalTransition { from, action } => Self::IllegalTransition {
                action,
                current_status: from.as_str().to_owned(),
            },
            other => Self::Validation {
                detail: other.to_string(),
                errors: Vec::new(),
            },
        }
    }
}

impl From<orion_auth::Error> for ApiError {
    fn from(error: orion_auth::Error) -> Self {
        use orion_auth::Error as A;
        match error {
            A::PasswordLength | A::PasswordTooSimple => Self::field("password", error.to_string()),
            A::TokenExpired | A::InvalidToken => Self::Unauthorized(error.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "expected a body with `Content-Type: application/json`".into(),
            ),
            JsonRejection::JsonSyntaxError(e) => {
                Self::MalformedJson(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => Self::field("body", e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge(crate::BODY_LIMIT)
            }
            other if timed_out(&other) => Self::BodyTimeout,
            other => Self::BadRequest(other.body_text()),
        }
    }
}

/// Whether reading the body failed because the client sent it too slowly.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    orion_http::any_cause(error, |cause| {
        cause.is::<tower_http::timeout::TimeoutError>()
    })
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(format!("invalid path parameter: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(format!(
            "invalid query parameter: {}",
            rejection.body_text()
        ))
    }
}
