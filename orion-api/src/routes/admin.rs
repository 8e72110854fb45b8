//! Admin-only reads and API key management.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orion_auth::{Scope, secret_hash};
use orion_persistence::credentials::{self, ApiKeyRecord, NewApiKey};
use orion_persistence::dead_letters::{self, DeadLetter};
use orion_persistence::emails::{self, DeliveryStatus};
use orion_persistence::read_models;
use uuid::Uuid;

use super::pagination::{after_cursor, page_size, split_page};
use super::{begin, commit, connection};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::models::{
    ApiKeyCreated, ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, DeadLetterList,
    DeadLetterResponse, EmailDeliveryList, EmailDeliveryQuery, EmailDeliveryResponse,
    LowStockEntry, MoneyBody, PageQuery, StatsResponse, StatusCount,
};
use crate::{AppState, api_keys};

/// Statuses whose orders count as revenue.
const REVENUE_STATUSES: [&str; 3] = ["confirmed", "shipped", "delivered"];

/// Sales figures and the items running low (admins).
///
/// Orders and amounts per status and currency, from the `sales_stats` read model (folded by the
/// worker about once a second, so a just-placed order may take a moment to count), and every item
/// whose available stock is below its low-stock threshold.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin", operation_id = "get_sales_stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Orders by status, revenue, low-stock items", body = StatsResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<StatsResponse>, ApiError> {
    auth.require_admin()?;
    let mut conn = connection(&state.pool).await?;
    let rows = read_models::sales_stats(&mut conn).await?;
    let low = read_models::low_stock_items(&mut conn).await?;
    let mut revenue: Vec<MoneyBody> = Vec::new();
    for row in rows
        .iter()
        .filter(|r| REVENUE_STATUSES.contains(&r.status.as_str()))
    {
        match revenue.iter_mut().find(|m| m.currency == row.currency) {
            Some(total) => total.amount = total.amount.saturating_add(row.total_amount),
            None => revenue.push(MoneyBody {
                amount: row.total_amount,
                currency: row.currency.clone(),
            }),
        }
    }
    Ok(Json(StatsResponse {
        orders_by_status: rows
            .into_iter()
            .map(|r| StatusCount {
                status: r.status,
                currency: r.currency,
                count: r.order_count,
                amount: r.total_amount,
            })
            .collect(),
        revenue,
        low_stock: low
            .into_iter()
            .map(|l| LowStockEntry {
                sku: l.sku,
                name: l.name,
                available: l.available,
                low_stock_threshold: l.low_stock_threshold,
            })
            .collect(),
    }))
}

fn key_response(record: ApiKeyRecord) -> ApiKeyResponse {
    ApiKeyResponse {
        id: record.id,
        name: record.name,
        prefix: record.prefix,
        scopes: record.scopes,
        created_at: record.created_at,
        last_used_at: record.last_used_at,
        revoked_at: record.revoked_at,
    }
}

/// Create a scoped API key for an integrator (admins).
///
/// The key itself is in this response only; Orion stores a hash of it. Send it as
/// `X-Api-Key: <key>`, `Authorization: ApiKey <key>` or `Authorization: Bearer <key>`. A key
/// with `orders:write` places orders for the customer named in `customer_id`.
#[utoipa::path(post, path = "/api/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; store `key` now, it is not shown again", body = ApiKeyCreated),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or scopes", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    auth.require_admin()?;
    let (admin_id, _) = auth.require_user()?;
    let name = super::display_name("name", &body.name)?;
    if body.scopes.is_empty() {
        return Err(ApiError::field("scopes", "give at least one scope"));
    }
    let mut scopes = Vec::new();
    for (index, raw) in body.scopes.iter().enumerate() {
        let scope = Scope::parse(raw).ok_or_else(|| {
            ApiError::field(
                format!("scopes[{index}]"),
                format!(
                    "unknown scope {raw:?}; expected orders:read, orders:write or inventory:read"
                ),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let (key, prefix) = api_keys::generate()?;
    let record = credentials::insert_api_key(
        &mut *connection(&state.pool).await?,
        &NewApiKey {
            id: Uuid::now_v7(),
            name,
            prefix: &prefix,
            key_hash: &secret_hash(&key),
            scopes: &scopes,
            created_by: admin_id,
        },
    )
    .await?;
    tracing::info!(api_key.id = %record.id, api_key.prefix = %record.prefix, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key_info: key_response(record),
            key,
        }),
    ))
}

/// List API keys (admins).
///
/// Every key ever made, newest first, with its name, scopes, visible prefix, last use and
/// revocation time; never the keys themselves.
#[utoipa::path(get, path = "/api/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Keys, newest first", body = ApiKeyList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ApiKeyList>, ApiError> {
    auth.require_admin()?;
    let records = credentials::list_api_keys(&mut *connection(&state.pool).await?).await?;
    Ok(Json(ApiKeyList {
        items: records.into_iter().map(key_response).collect(),
    }))
}

/// Revoke an API key (admins).
///
/// The key stops working at once, on every replica. Revoking a key twice answers 404.
#[utoipa::path(delete, path = "/api/admin/api-keys/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such active key", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    if credentials::revoke_api_key(&mut *connection(&state.pool).await?, id, crate::now()).await? {
        tracing::info!(api_key.id = %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active API key {id}")))
    }
}

fn dead_letter_response(letter: DeadLetter) -> DeadLetterResponse {
    let body = serde_json::from_slice(&letter.body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&letter.body).into_owned())
    });
    DeadLetterResponse {
        id: letter.id,
        message_id: letter.message_id,
        event_type: letter.event_type,
        queue: letter.origin_queue,
        error: letter.error,
        attempts: letter.attempts,
        parked_at: letter.parked_at,
        replayed_at: letter.replayed_at,
        replay_count: letter.replay_count,
        body,
    }
}

/// List dead letters (admins).
///
/// Messages that failed for good and were parked, newest first, with the queue they failed in,
/// their last error, their attempts and their body. Cursor pagination: pass `next_cursor` as
/// `cursor`.
#[utoipa::path(get, path = "/api/admin/dead-letters", tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of parked messages", body = DeadLetterList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_dead_letters(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    auth.require_admin()?;
    let limit = page_size(query.limit, 20)?;
    let after = after_cursor(query.cursor.as_deref())?;
    let letters =
        dead_letters::list_dead_letters(&mut *connection(&state.pool).await?, after, limit + 1)
            .await?;
    let (letters, next_cursor) = split_page(letters, limit, |l| (l.parked_at, l.id));
    Ok(Json(DeadLetterList {
        items: letters.into_iter().map(dead_letter_response).collect(),
        next_cursor,
    }))
}

/// Replay a dead letter (admins).
///
/// Sends the parked message back to the queue it failed in. Consumers ignore what they handled
/// already, so replaying a message twice does no harm.
#[utoipa::path(post, path = "/api/admin/dead-letters/{id}/replay", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "Sent back to its queue", body = DeadLetterResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its queue no longer exists", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay_dead_letter(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DeadLetterResponse>, ApiError> {
    auth.require_admin()?;
    let mut tx = begin(&state.pool).await?;
    let letter = dead_letters::lock_dead_letter(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    match orion_messaging::dead_letters::replay(&state.publisher, &letter).await {
        Ok(()) => {}
        Err(orion_messaging::Error::Unroutable(queue)) => {
            return Err(ApiError::Conflict(format!(
                "queue {queue} does not exist; the message cannot be replayed there"
            )));
        }
        Err(error) => {
            tracing::warn!(%error, "replay failed");
            return Err(ApiError::Unavailable(
                "the message broker is unavailable; try again".into(),
            ));
        }
    }
    let replayed = dead_letters::mark_replayed(&mut tx, id, crate::now()).await?;
    commit(tx).await?;
    tracing::info!(dead_letter.id = %id, queue = %replayed.origin_queue, "dead letter replayed");
    Ok(Json(dead_letter_response(replayed)))
}

/// List email deliveries (admins).
///
/// Emails sent or tried, newest first, with their attempts and last error; `?status=failed`
/// shows the ones that gave up. Cursor pagination.
#[utoipa::path(get, path = "/api/admin/email-deliveries", tag = "admin",
    security(("bearer" = [])),
    params(EmailDeliveryQuery),
    responses(
        (status = 200, description = "Email deliveries", body = EmailDeliveryList),
        (status = 400, description = "Invalid status, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_email_deliveries(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<EmailDeliveryQuery>,
) -> Result<Json<EmailDeliveryList>, ApiError> {
    auth.require_admin()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(DeliveryStatus::parse(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown status {raw:?}; expected pending, sending, sent or failed"
            ))
        })?),
    };
    let limit = page_size(query.limit, 50)?;
    let after = after_cursor(query.cursor.as_deref())?;
    let rows = emails::list_deliveries(
        &mut *connection(&state.pool).await?,
        status,
        after,
        limit + 1,
    )
    .await?;
    let (deliveries, next_cursor) = split_page(rows, limit, |d| (d.created_at, d.id));
    Ok(Json(EmailDeliveryList {
        items: deliveries
            .into_iter()
            .map(|d| EmailDeliveryResponse {
                id: d.id,
                order_id: d.order_id.map(|id| id.as_uuid()),
                kind: d.kind,
                recipient: d.recipient,
                status: d.status.as_str().to_owned(),
                attempts: d.attempts,
                last_error: d.last_error,
                provider_message_id: d.provider_message_id,
                created_at: d.created_at,
                sent_at: d.sent_at,
            })
            .collect(),
        next_cursor,
    }))
}
