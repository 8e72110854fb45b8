//! Webhook endpoints (admins, and API keys with `webhooks:manage`): register, change, rotate the
//! secret, send a test, see and replay deliveries. Deliveries themselves are the worker's.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderName};
use orion_auth::{Principal, Scope};
use orion_persistence::webhooks::{
    self, Delivery, Endpoint, EndpointChange, NewDeliveries, NewEndpoint,
};
use orion_webhooks::{EVENT_TYPES, Secret, TEST_EVENT};
use uuid::Uuid;

use super::connection;
use super::pagination::{after_cursor, page_size, split_page};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::models::{
    CreateWebhookRequest, SecretRotated, UpdateWebhookRequest, WebhookCreated, WebhookDeliveryList,
    WebhookDeliveryQuery, WebhookDeliveryResponse, WebhookList, WebhookResponse, WebhookTestSent,
};

/// How long a rotated-out secret keeps signing beside the new one: a day for receivers to take
/// the new one.
const ROTATION_GRACE: time::Duration = time::Duration::hours(24);

/// A secret in an answer is kept by no cache.
const NO_STORE: [(HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// Longest description.
const MAX_DESCRIPTION: usize = 500;

fn response(endpoint: Endpoint) -> WebhookResponse {
    WebhookResponse {
        id: endpoint.id,
        url: endpoint.url,
        events: endpoint.events,
        description: endpoint.description,
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason,
        created_at: endpoint.created_at,
        updated_at: endpoint.updated_at,
    }
}

fn delivery_response(delivery: Delivery) -> WebhookDeliveryResponse {
    WebhookDeliveryResponse {
        id: delivery.id,
        event_id: delivery.event_id,
        event_type: delivery.event_type,
        attempts: delivery.attempts,
        last_status_code: delivery.last_status_code,
        last_latency_ms: delivery.last_latency_ms,
        last_error: delivery.last_error,
        next_attempt_at: delivery.next_attempt_at,
        outcome: delivery.outcome.as_str().to_owned(),
        created_at: delivery.created_at,
        updated_at: delivery.updated_at,
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such webhook".into())
}

/// A URL Orion will deliver to (see `orion_webhooks::address`).
async fn checked_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    orion_webhooks::check_url(raw.trim(), state.config.webhook_policy())
        .await
        .map(String::from)
        .map_err(|error| ApiError::field("url", error.to_string()))
}

/// Known event types or `*` alone, each once.
fn checked_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() || events.len() > EVENT_TYPES.len() {
        return Err(ApiError::field(
            "events",
            format!(
                "give 1 to {} event types, or \"*\" alone",
                EVENT_TYPES.len()
            ),
        ));
    }
    let mut checked: Vec<String> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let known = event == orion_webhooks::ALL_EVENTS || EVENT_TYPES.contains(&event.as_str());
        if !known {
            return Err(ApiError::field(
                format!("events[{index}]"),
                format!(
                    "unknown event type; expected \"*\" or one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !checked.contains(event) {
            checked.push(event.clone());
        }
    }
    if checked.len() > 1 && checked.iter().any(|e| e == orion_webhooks::ALL_EVENTS) {
        return Err(ApiError::field(
            "events",
            "\"*\" already means every event; give it alone",
        ));
    }
    Ok(checked)
}

/// An API key may subscribe only to what it may read: a webhook is another way to read orders
/// and stock (admins may subscribe to anything).
fn may_subscribe(auth: &Auth, events: &[String]) -> Result<(), ApiError> {
    let Principal::ApiKey { .. } = &auth.0 else {
        return Ok(());
    };
    for event in events {
        let all = event == orion_webhooks::ALL_EVENTS;
        let needs: &[Scope] = if all {
            &[Scope::OrdersRead, Scope::InventoryRead]
        } else if event.starts_with("order.") {
            &[Scope::OrdersRead]
        } else if event.starts_with("inventory.") {
            &[Scope::InventoryRead]
        } else {
            // An event type no scope covers yet is for admins only.
            return Err(ApiError::Forbidden(format!(
                "API keys cannot subscribe to `{event}` events"
            )));
        };
        if let Some(missing) = needs.iter().find(|scope| !auth.0.has_scope(**scope)) {
            return Err(ApiError::Forbidden(format!(
                "this API key lacks the `{missing}` scope that `{event}` events need"
            )));
        }
    }
    Ok(())
}

/// A key may change an endpoint (its URL, its state, its secret) only if it may read what the
/// endpoint delivers, as changed: otherwise a key could point an admin's `*` endpoint at itself.
async fn may_change(
    state: &AppState,
    auth: &Auth,
    id: Uuid,
    events: Option<&[String]>,
) -> Result<(), ApiError> {
    if !matches!(auth.0, Principal::ApiKey { .. }) {
        return Ok(());
    }
    let endpoint = webhooks::find_endpoint(&mut *connection(&state.pool).await?, id)
        .await?
        .ok_or_else(not_found)?;
    may_subscribe(auth, events.unwrap_or(&endpoint.events))
}

/// A trimmed description of at most 500 characters without control characters; empty is none.
fn checked_description(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = raw.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(ApiError::field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters, without control characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

fn secret() -> Result<Secret, ApiError> {
    Secret::generate().map_err(ApiError::internal)
}

/// Register a webhook endpoint.
///
/// Orion signs every delivery per Standard Webhooks 1.0 with the secret in the answer, which is
/// shown only here. The URL must be `http` or `https` and reach a public address.
#[utoipa::path(post, path = "/api/admin/webhooks", tag = "webhooks", operation_id = "create_webhook",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Registered; the secret is shown this once", body = WebhookCreated),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`, or a key subscribing to events its scopes do not read (`order.*` needs `orders:read`, `inventory.low_stock` `inventory:read`, `*` both)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL Orion does not deliver to, or unknown event types", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<
    (
        StatusCode,
        [(HeaderName, &'static str); 1],
        Json<WebhookCreated>,
    ),
    ApiError,
> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let events = checked_events(&body.events)?;
    may_subscribe(&auth, &events)?;
    let description = checked_description(body.description.as_deref())?;
    let url = checked_url(&state, &body.url).await?;
    let secret = secret()?.expose();
    let endpoint = webhooks::insert_endpoint(
        &mut *connection(&state.pool).await?,
        &NewEndpoint {
            id: Uuid::now_v7(),
            url: &url,
            events: &events,
            description: description.as_deref(),
            secret: &secret,
        },
        crate::now(),
    )
    .await?;
    tracing::info!(webhook.id = %endpoint.id, "webhook registered");
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(WebhookCreated {
            webhook: response(endpoint),
            secret,
        }),
    ))
}

/// List webhook endpoints.
///
/// Every endpoint, oldest first, with its events and whether it is enabled (and if not, why).
/// Secrets are never shown again.
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every endpoint, oldest first", body = WebhookList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<WebhookList>, ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let endpoints = webhooks::list_endpoints(&mut *connection(&state.pool).await?).await?;
    Ok(Json(WebhookList {
        items: endpoints.into_iter().map(response).collect(),
    }))
}

/// Get a webhook endpoint.
///
/// Its URL, events, description and state; not its secret.
#[utoipa::path(get, path = "/api/admin/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookResponse>, ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let endpoint = webhooks::find_endpoint(&mut *connection(&state.pool).await?, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(response(endpoint)))
}

/// Change a webhook endpoint.
///
/// Any of `url`, `events`, `description` and `enabled`. Enabling an endpoint that Orion disabled
/// resumes the deliveries that waited.
#[utoipa::path(patch, path = "/api/admin/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`, or a key subscribing to events its scopes do not read (`order.*` needs `orders:read`, `inventory.low_stock` `inventory:read`, `*` both)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL Orion does not deliver to, or unknown event types", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookResponse>, ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let events = body.events.as_deref().map(checked_events).transpose()?;
    may_change(&state, &auth, id, events.as_deref()).await?;
    let change = EndpointChange {
        events,
        description: body
            .description
            .map(|d| checked_description(d.as_deref()))
            .transpose()?,
        enabled: body.enabled,
        url: match body.url.as_deref() {
            Some(url) => Some(checked_url(&state, url).await?),
            None => None,
        },
    };
    let endpoint = webhooks::update_endpoint(
        &mut *connection(&state.pool).await?,
        id,
        &change,
        crate::now(),
    )
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(response(endpoint)))
}

/// Delete a webhook endpoint.
///
/// Its deliveries go with it; nothing more is sent to it.
#[utoipa::path(delete, path = "/api/admin/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    if webhooks::delete_endpoint(&mut *connection(&state.pool).await?, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// Rotate a webhook's signing secret.
///
/// The new secret signs from now on; the previous one keeps signing beside it for 24 hours, so
/// every delivery in that time carries two signatures and a receiver may switch at leisure.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The new secret, shown this once", body = SecretRotated),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_webhook_secret(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<([(HeaderName, &'static str); 1], Json<SecretRotated>), ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    may_change(&state, &auth, id, None).await?;
    let secret = secret()?.expose();
    let now = crate::now();
    let until = now + ROTATION_GRACE;
    webhooks::rotate_secret(
        &mut *connection(&state.pool).await?,
        id,
        &secret,
        until,
        now,
    )
    .await?
    .ok_or_else(not_found)?;
    tracing::info!(webhook.id = %id, "webhook secret rotated");
    Ok((
        NO_STORE,
        Json(SecretRotated {
            secret,
            previous_secret_expires_at: until,
        }),
    ))
}

/// Send a test event.
///
/// Queues a `webhook.test` delivery (`data` holds the webhook's id) for the endpoint; it shows
/// in the deliveries like any other.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Queued", body = WebhookTestSent),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn test_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<WebhookTestSent>), ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let mut conn = connection(&state.pool).await?;
    let endpoint = webhooks::find_endpoint(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    if !endpoint.enabled {
        return Err(ApiError::Conflict(
            "the webhook is disabled; enable it first".into(),
        ));
    }
    let now = crate::now();
    let delivery_id = Uuid::now_v7();
    let event_id = Uuid::now_v7();
    let payload = orion_webhooks::body(TEST_EVENT, now, &serde_json::json!({ "webhook_id": id }));
    webhooks::insert_deliveries(
        &mut conn,
        &NewDeliveries {
            targets: &[(delivery_id, id)],
            event_id,
            event_type: TEST_EVENT,
            payload: &payload,
        },
        now,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(WebhookTestSent { delivery_id })))
}

/// List a webhook's deliveries.
///
/// Newest first, with attempts, the last status code, latency and error, the next attempt and
/// the outcome (`pending`, `delivered` or `failed`); cursor pagination.
#[utoipa::path(get, path = "/api/admin/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id"), WebhookDeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = WebhookDeliveryList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_webhook_deliveries(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<WebhookDeliveryQuery>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let limit = page_size(query.limit, 50)?;
    let after = after_cursor(query.cursor.as_deref())?;
    let mut conn = connection(&state.pool).await?;
    webhooks::find_endpoint(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    let rows = webhooks::list_deliveries(&mut conn, id, after, limit + 1).await?;
    let (page, next_cursor) = split_page(rows, limit, |d| (d.created_at, d.id));
    Ok(Json(WebhookDeliveryList {
        items: page.into_iter().map(delivery_response).collect(),
        next_cursor,
    }))
}

/// Replay a delivery.
///
/// Sends it again at once with the same `webhook-id` (receivers drop duplicates by it) and a
/// fresh retry schedule, whatever its outcome was. An endpoint that is disabled gets it when
/// enabled.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    operation_id = "replay_webhook_delivery",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Webhook id"), ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = WebhookDeliveryResponse,
            example = json!({"id": "01a23a0c-7900-7000-8000-000000000005", "event_id": "01a23a0c-7720-7000-8000-000000000002",
                "event_type": "order.confirmed", "attempts": 0, "last_status_code": 503, "last_latency_ms": 15002,
                "last_error": "answered 503 Service Unavailable", "next_attempt_at": "2026-12-03T09:20:00Z",
                "outcome": "pending", "created_at": "2026-12-03T09:15:02.176Z", "updated_at": "2026-12-03T09:20:00Z"})),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an admin nor a key with `webhooks:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook or delivery", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay_webhook_delivery(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<WebhookDeliveryResponse>), ApiError> {
    auth.require_admin_or_scope(Scope::WebhooksManage)?;
    let delivery = webhooks::replay_delivery(
        &mut *connection(&state.pool).await?,
        id,
        delivery_id,
        crate::now(),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound("no such delivery of this webhook".into()))?;
    Ok((StatusCode::ACCEPTED, Json(delivery_response(delivery))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_known_types_or_a_lone_star() {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            checked_events(&strings(&["order.placed", "order.placed"])).unwrap(),
            ["order.placed"]
        );
        assert!(checked_events(&strings(&["*"])).is_ok());
        assert!(checked_events(&strings(&["*", "order.placed"])).is_err());
        assert!(checked_events(&strings(&["order.reserved"])).is_err());
        assert!(checked_events(&[]).is_err());
        assert!(checked_events(&strings(&["order.placed"; 8])).is_err());
    }
}
