//! Extractors whose rejections are problem+json, and the caller's identity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use orion_auth::{Credential, Principal, Role, Scope, secret_hash};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::{AppState, api_keys};

/// `axum::Json`, rejecting with problem+json.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// `axum::extract::Path`, rejecting with problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// `axum::extract::Query`, rejecting with problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// The authenticated caller: a bearer access token, or an API key sent as
/// `Authorization: ApiKey <key>` or `X-Api-Key: <key>`.
#[derive(Debug, Clone)]
pub(crate) struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = match presented(&parts.headers) {
            Credential::Bearer(token) => bearer(state, token)?,
            Credential::ApiKey(key) => api_key(state, key).await?,
            Credential::Unsupported => {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>` or `ApiKey <key>`".into(),
                ));
            }
            Credential::None => {
                return Err(ApiError::Unauthorized(
                    "this endpoint needs an access token or an API key".into(),
                ));
            }
        };
        if let (Principal::ApiKey { .. }, Some(accepted)) =
            (&principal, parts.extensions.get::<KeyAccepted>())
        {
            accepted.0.store(true, Ordering::Relaxed);
        }
        Ok(Auth(principal))
    }
}

/// Set when a request was authenticated with an API key, so that its answer says so.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyAccepted(Arc<AtomicBool>);

/// The answer header that tells the gateway an API key is valid: the gateway rate-limits a key
/// on its own only once the API has vouched for it (a made-up key counts against its client's
/// address), and takes the header off before the client sees it.
const KEY_ACCEPTED: HeaderName = HeaderName::from_static(orion_auth::KEY_ACCEPTED_HEADER);

/// The credential the request presents, by the rule the gateway follows too.
pub(crate) fn presented(headers: &HeaderMap) -> Credential<'_> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    Credential::of(text(AUTHORIZATION.as_str()), text("x-api-key"))
}

/// Marks the answer to a request that an API key authenticated.
pub(crate) async fn mark_key_accepted(mut request: Request, next: Next) -> Response {
    if !matches!(presented(request.headers()), Credential::ApiKey(_)) {
        return next.run(request).await;
    }
    let accepted = KeyAccepted::default();
    request.extensions_mut().insert(accepted.clone());
    let mut response = next.run(request).await;
    if accepted.0.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(KEY_ACCEPTED, HeaderValue::from_static("accepted"));
    }
    response
}

fn bearer(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state.keys.verify(token)?;
    Ok(Principal::User {
        id: claims.sub,
        role: claims.role,
    })
}

pub(crate) async fn api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthorized("the API key is invalid or revoked".into());
    let prefix = api_keys::prefix_of(key).ok_or_else(invalid)?;
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(|e| ApiError::from(orion_persistence::Error::from(e)))?;
    let record = orion_persistence::credentials::find_api_key_by_prefix(&mut conn, prefix)
        .await?
        .ok_or_else(invalid)?;
    let matches =
        orion_auth::constant_time_eq(record.key_hash.as_bytes(), secret_hash(key).as_bytes());
    if !matches || record.revoked_at.is_some() {
        return Err(invalid());
    }
    orion_persistence::credentials::touch_api_key(&mut conn, record.id, OffsetDateTime::now_utc())
        .await?;
    let scopes = record
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s))
        .collect();
    Ok(Principal::ApiKey {
        id: record.id,
        scopes,
    })
}

impl Auth {
    /// Only admins.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only admins may do this".into()))
        }
    }

    /// Admins, or API keys that carry `scope`.
    pub(crate) fn require_admin_or_scope(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.is_admin() || self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only admins and API keys with the `{scope}` scope may do this"
            )))
        }
    }

    /// A user (customer or admin), not an API key.
    pub(crate) fn require_user(&self) -> Result<(uuid::Uuid, Role), ApiError> {
        match self.0 {
            Principal::User { id, role } => Ok((id, role)),
            Principal::ApiKey { .. } => Err(ApiError::Forbidden(
                "this endpoint is for user accounts, not API keys".into(),
            )),
        }
    }

    /// Users, or API keys that carry `scope`.
    pub(crate) fn require_user_or_scope(&self, scope: Scope) -> Result<(), ApiError> {
        self.require_user_or_scopes(&[scope])
    }

    /// Users, or API keys that carry every one of `scopes`.
    pub(crate) fn require_user_or_scopes(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        match &self.0 {
            Principal::User { .. } => Ok(()),
            key => match scopes.iter().find(|scope| !key.has_scope(**scope)) {
                None => Ok(()),
                Some(missing) => Err(ApiError::Forbidden(format!(
                    "this API key lacks the `{missing}` scope"
                ))),
            },
        }
    }

    /// May see every order, not only its own.
    pub(crate) fn sees_all_orders(&self) -> bool {
        self.0.is_admin() || self.0.has_scope(Scope::OrdersRead)
    }
}
