//! `POST /hubs/orders/negotiate` and the WebSocket at `GET /hubs/orders`.
//!
//! Negotiation is stateless: the WebSocket request authenticates itself with the access token
//! again, so negotiate and connect may reach different replicas behind a load balancer (no sticky
//! sessions) and clients that skip negotiation connect too.

use axum::Json;
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, Query, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use orion_auth::{Credential, Principal, Scope};

use super::{Caller, Reach, connection};
use crate::AppState;
use crate::error::ApiError;

/// Largest message a client may send; clients only send handshakes, pings and closes.
const MAX_INCOMING: usize = 64 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/hubs/orders", get(connect))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct NegotiateQuery {
    /// The negotiate protocol the client speaks; the hub answers with version 1 at most.
    #[param(minimum = 0)]
    negotiate_version: Option<i32>,
}

/// The transports a client may use: WebSockets with text (JSON) frames only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transport {
    #[schema(example = "WebSockets")]
    transport: &'static str,
    transfer_formats: Vec<&'static str>,
}

/// SignalR's negotiate answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"negotiateVersion": 1, "connectionId": "5f0c2b1e9a8d4c3b8f7e6d5c4b3a2910",
    "connectionToken": "0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b",
    "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}]}))]
pub(crate) struct NegotiateResponse {
    negotiate_version: i32,
    connection_id: String,
    /// Present from negotiate version 1: the `id` the client passes when connecting.
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_token: Option<String>,
    available_transports: Vec<Transport>,
}

/// Starts a SignalR connection to the order hub.
///
/// After this, the client opens a WebSocket at `/hubs/orders?id=<connectionToken>` with the same
/// access token (the `Authorization` header, or the `access_token` query parameter from a
/// browser) and speaks SignalR's JSON hub protocol. A customer receives `OrderStatusUpdated` for
/// their own orders; an administrator receives it for every order, and `OrderPlaced`,
/// `InventoryUpdated` and `LowStockAlert`. An API key with `orders:read` (in place of the access
/// token) receives what an administrator receives about orders: every `OrderStatusUpdated` and
/// `OrderPlaced`; its connection lasts an hour, then the client connects again. The messages are
/// described in the AsyncAPI document at `/api-docs/asyncapi.json`. Every message's argument carries a `sequence` that
/// grows by one per message on the connection. After a reconnect, re-read state over REST.
#[utoipa::path(
    post,
    path = "/hubs/orders/negotiate",
    tag = "hub",
    operation_id = "negotiate_hub_connection",
    params(NegotiateQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "How to connect", body = NegotiateResponse),
        (status = 400, description = "A malformed `negotiateVersion`", body = crate::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token or API key", body = crate::Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key without `orders:read`", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn negotiate(
    HubCaller(_caller): HubCaller,
    query: Result<Query<NegotiateQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NegotiateResponse>, ApiError> {
    let Query(query) = query.map_err(ApiError::from)?;
    let version = match query.negotiate_version.unwrap_or(0) {
        negative if negative < 0 => {
            return Err(ApiError::BadRequest(
                "negotiateVersion must be 0 or more (SignalR clients send 1)".into(),
            ));
        }
        requested => requested.min(1),
    };
    let connection_id = uuid::Uuid::new_v4().simple().to_string();
    Ok(Json(NegotiateResponse {
        negotiate_version: version,
        connection_token: (version >= 1).then(|| uuid::Uuid::new_v4().simple().to_string()),
        connection_id,
        available_transports: vec![Transport {
            transport: "WebSockets",
            transfer_formats: vec!["Text"],
        }],
    }))
}

/// The WebSocket. Refused with 401 before the upgrade when the token is missing or invalid.
async fn connect(
    State(state): State<AppState>,
    HubCaller(caller): HubCaller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "the hub speaks SignalR over WebSockets; negotiate at /hubs/orders/negotiate, then \
             open a WebSocket here ({rejection})"
        ))
    })?;
    if state.hub.is_shutting_down() {
        return Err(ApiError::Unavailable(
            "this replica is shutting down; connect again".into(),
        ));
    }
    let admitted = state.hub.admit(caller.user)?;
    let hub = state.hub.clone();
    Ok(upgrade
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            // The connection's place under the caps is held until it ends.
            let _admitted = admitted;
            connection::serve(hub, socket, caller).await;
        }))
}

/// The caller of the hub, from `Authorization: Bearer <token>` or the `access_token` query
/// parameter that browsers use because they cannot set headers on a WebSocket.
pub(crate) struct HubCaller(pub(crate) Caller);

impl FromRequestParts<AppState> for HubCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = match crate::extract::presented(&parts.headers) {
            Credential::None => {
                let token = access_token_parameter(parts.uri.query().unwrap_or_default())
                    .ok_or_else(|| {
                        ApiError::Unauthorized(
                            "the hub needs an access token or an API key: `Authorization: \
                                 Bearer <token>` or the `access_token` query parameter"
                                .into(),
                        )
                    })?;
                // Browsers pass whichever they hold in the query; a key shows by its start.
                if token.starts_with(orion_auth::API_KEY_START) {
                    HubCredential::Key(token)
                } else {
                    HubCredential::Token(token)
                }
            }
            Credential::Bearer(token) => HubCredential::Token(token.to_owned()),
            Credential::ApiKey(key) => HubCredential::Key(key.to_owned()),
            Credential::Unsupported => {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>` or `ApiKey <key>`".into(),
                ));
            }
        };
        match credential {
            HubCredential::Token(token) => token_caller(state, &token),
            HubCredential::Key(key) => key_caller(state, &key).await,
        }
        .map(HubCaller)
    }
}

enum HubCredential {
    Token(String),
    Key(String),
}

/// A user, by their access token: a customer hears about their own orders, an admin about all
/// of them and the stock.
fn token_caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let claims = state.keys.verify(token)?;
    let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|_| ApiError::Unauthorized("the access token has no valid expiry".into()))?;
    // REST allows a few seconds of clock skew; a connection would be closed at once.
    if expires_at <= time::OffsetDateTime::now_utc() {
        return Err(ApiError::Unauthorized(
            "the access token has expired; sign in again".into(),
        ));
    }
    let admin = claims.role == orion_auth::Role::Admin;
    Ok(Caller {
        user: claims.sub,
        reach: if admin { Reach::Admin } else { Reach::Own },
        expires_at,
    })
}

/// An integrator's API key with `orders:read`: hears what an admin hears about orders (every
/// `OrderPlaced` and `OrderStatusUpdated`), not the stock. A key has no expiry of its own, so
/// its connection ends after [`KEY_SESSION`] and the client connects again, which checks the key
/// again (a revoked key is then refused).
async fn key_caller(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let principal = crate::extract::api_key(state, key).await?;
    let Principal::ApiKey { id, .. } = principal else {
        return Err(ApiError::Unauthorized("not an API key".into()));
    };
    if !principal.has_scope(Scope::OrdersRead) {
        return Err(ApiError::Forbidden(
            "the hub takes API keys with the `orders:read` scope".into(),
        ));
    }
    Ok(Caller {
        user: id,
        reach: Reach::AllOrders,
        expires_at: time::OffsetDateTime::now_utc() + KEY_SESSION,
    })
}

/// How long a connection made with an API key lasts before it must connect again.
const KEY_SESSION: time::Duration = time::Duration::hours(1);

fn access_token_parameter(query: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Token {
        access_token: Option<String>,
    }
    serde_urlencoded::from_str::<Token>(query)
        .ok()
        .and_then(|t| t.access_token)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_token_parameter_is_decoded() {
        assert_eq!(
            access_token_parameter("id=abc&access_token=a.b%2Dc"),
            Some("a.b-c".to_owned())
        );
        assert_eq!(access_token_parameter("id=abc"), None);
        assert_eq!(access_token_parameter("access_token="), None);
    }
}
