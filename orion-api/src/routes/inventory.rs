//! The catalog and its stock: public reads, admin changes. Every change is a domain event.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orion_domain::events::{AdjustmentReason, InventoryAdjusted, LowStock};
use orion_domain::{Currency, DomainEvent, InventoryItem, Money, Quantity, Sku};
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::idempotency::{self, StoredResponse};
use orion_persistence::inventory;

use super::pagination::page_size;
use super::{begin, commit, connection, idempotent};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::models::{
    CreateItemRequest, InventoryItemResponse, InventoryList, InventoryListQuery, MoneyBody,
    PatchItemRequest, RestockRequest,
};

const SAVE_ATTEMPTS: usize = 3;

pub(crate) fn parse_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub(crate) fn parse_money(field: &str, body: &MoneyBody) -> Result<Money, ApiError> {
    let currency = Currency::parse(&body.currency)
        .map_err(|e| ApiError::field(format!("{field}.currency"), e.to_string()))?;
    Money::new(body.amount, currency)
        .map_err(|e| ApiError::field(format!("{field}.amount"), e.to_string()))
}

pub(crate) fn parse_count(field: &str, value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .ok()
        .filter(|&n| n <= Quantity::MAX)
        .ok_or_else(|| ApiError::field(field, format!("must be between 0 and {}", Quantity::MAX)))
}

/// List the catalog.
///
/// Every item with its price and stock levels, by SKU. Public. Cursor pagination: pass
/// `next_cursor` as `cursor`.
#[utoipa::path(get, path = "/api/inventory", tag = "inventory",
    params(InventoryListQuery),
    responses(
        (status = 200, description = "A page of items in SKU order", body = InventoryList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_items(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InventoryListQuery>,
) -> Result<Json<InventoryList>, ApiError> {
    let limit = page_size(query.limit, 50)?;
    let after = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| Sku::parse(c).map_err(|_| ApiError::BadRequest("invalid cursor".into())))
        .transpose()?;
    let mut items = inventory::list_items(
        &mut *connection(&state.pool).await?,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let next_cursor = if items.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        items.truncate(items.len() - 1);
        items.last().map(|i| i.value.sku().to_string())
    } else {
        None
    };
    Ok(Json(InventoryList {
        items: items
            .iter()
            .map(|i| InventoryItemResponse::from(&i.value))
            .collect(),
        next_cursor,
    }))
}

/// One catalog item.
///
/// An item's price and stock levels, by SKU. Public.
#[utoipa::path(get, path = "/api/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path, description = "The item's SKU")),
    responses(
        (status = 200, description = "The item", body = InventoryItemResponse),
        (status = 400, description = "Not a valid SKU", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_item(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<InventoryItemResponse>, ApiError> {
    let sku = parse_sku(&sku)?;
    let item = inventory::find_item(&mut *connection(&state.pool).await?, &sku)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inventory item with SKU {sku}")))?;
    Ok(Json(InventoryItemResponse::from(&item.value)))
}

/// Add an item to the catalog (admins).
///
/// The SKU must be new; the answer is the item as stored.
#[utoipa::path(post, path = "/api/inventory", tag = "inventory",
    security(("bearer" = [])),
    request_body = CreateItemRequest,
    responses(
        (status = 201, description = "Created", body = InventoryItemResponse,
            headers(("Location" = String, description = "The item's URL"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid item", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateItemRequest>,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let sku = Sku::parse(&body.sku).map_err(|e| ApiError::field("sku", e.to_string()))?;
    let name = super::display_name("name", &body.name)?;
    let price = parse_money("price", &body.price)?;
    let available = parse_count("available", body.available)?;
    let threshold = parse_count("low_stock_threshold", body.low_stock_threshold)?;
    let item = InventoryItem::new(sku, name.to_owned(), price, available, threshold);
    let mut tx = begin(&state.pool).await?;
    inventory::insert_item(&mut tx, &item).await?;
    record_changes(&mut tx, &item, AdjustmentReason::Created, None).await?;
    commit(tx).await?;
    let mut response = (
        StatusCode::CREATED,
        Json(InventoryItemResponse::from(&item)),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/inventory/{}", item.sku())) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Add received units to an item's stock (admins).
///
/// With an `Idempotency-Key`, a retry of the same restock (same key, SKU and body from the same
/// caller) returns the first answer instead of adding the units twice; the same key with another
/// request is refused.
#[utoipa::path(post, path = "/api/inventory/{sku}/restock", tag = "inventory", operation_id = "restock_item",
    security(("bearer" = [])),
    params(("sku" = String, Path, description = "The item's SKU"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "Restocked", body = InventoryItemResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid quantity, or an Idempotency-Key reused with another request", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn restock(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
    ApiJson(body): ApiJson<RestockRequest>,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let key = idempotent::key(&headers)?;
    let sku = parse_sku(&sku)?;
    let quantity =
        Quantity::parse(body.quantity).map_err(|e| ApiError::field("quantity", e.to_string()))?;
    let retry = key.map(|key| Retry {
        principal: auth.0.key(),
        key,
        fingerprint: idempotent::fingerprint(&("restock", sku.as_str(), body.quantity)),
    });
    change_item(&state, &sku, AdjustmentReason::Restocked, retry, |item| {
        item.restock(quantity).map_err(ApiError::from)
    })
    .await
}

/// What makes a command safe to retry: who asked, with which key, for what.
struct Retry {
    principal: String,
    key: String,
    fingerprint: String,
}

/// Change an item (admins).
///
/// Changes its name, price or low-stock threshold; fields left out keep their value. Stock
/// changes only by restocking and by orders.
#[utoipa::path(patch, path = "/api/inventory/{sku}", tag = "inventory",
    security(("bearer" = [])),
    params(("sku" = String, Path, description = "The item's SKU")),
    request_body = PatchItemRequest,
    responses(
        (status = 200, description = "Changed", body = InventoryItemResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such item", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to change, or an invalid value", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn patch_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(sku): ApiPath<String>,
    ApiJson(body): ApiJson<PatchItemRequest>,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let sku = parse_sku(&sku)?;
    let name = match body.name.as_deref().map(str::trim) {
        Some(n) if n.is_empty() || n.chars().count() > 200 => {
            return Err(ApiError::field("name", "must be 1 to 200 characters"));
        }
        other => other.map(str::to_owned),
    };
    let price = body
        .price
        .as_ref()
        .map(|p| parse_money("price", p))
        .transpose()?;
    let threshold = body
        .low_stock_threshold
        .map(|t| parse_count("low_stock_threshold", t))
        .transpose()?;
    if name.is_none() && price.is_none() && threshold.is_none() {
        return Err(ApiError::field(
            "body",
            "give at least one of name, price, low_stock_threshold",
        ));
    }
    let reason = match (price, threshold) {
        (Some(_), _) => AdjustmentReason::Repriced,
        (None, Some(_)) => AdjustmentReason::ThresholdChanged,
        (None, None) => AdjustmentReason::Renamed,
    };
    change_item(&state, &sku, reason, None, move |item| {
        if let Some(price) = price {
            if price.currency() != item.price().currency() {
                return Err(ApiError::field(
                    "price.currency",
                    format!("the item is priced in {}", item.price().currency()),
                ));
            }
            item.set_price(price);
        }
        if let Some(threshold) = threshold {
            item.set_low_stock_threshold(threshold);
        }
        if let Some(name) = &name {
            item.rename(name.clone());
        }
        Ok(())
    })
    .await
}

/// Loads an item, applies `change`, and saves it with its events; retried on a concurrent change.
async fn change_item(
    state: &AppState,
    sku: &Sku,
    reason: AdjustmentReason,
    retry: Option<Retry>,
    change: impl Fn(&mut InventoryItem) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    for attempt in 1..=SAVE_ATTEMPTS {
        let mut tx = begin(&state.pool).await?;
        if let Some(retry) = &retry
            && let Some(stored) =
                idempotency::lock_and_find(&mut tx, &retry.principal, &retry.key).await?
        {
            return idempotent::replay(&stored, &retry.fingerprint, None);
        }
        let loaded = inventory::find_item(&mut tx, sku)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no inventory item with SKU {sku}")))?;
        let mut item = loaded.value.clone();
        change(&mut item)?;
        match inventory::save_item(&mut tx, &item, loaded.version).await {
            Ok(_) => {}
            Err(orion_persistence::Error::VersionConflict { .. }) if attempt < SAVE_ATTEMPTS => {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        record_changes(&mut tx, &item, reason, Some(&loaded.value)).await?;
        let response = InventoryItemResponse::from(&item);
        if let Some(retry) = &retry {
            let stored = StoredResponse {
                request_hash: retry.fingerprint.clone(),
                status: 200,
                body: serde_json::to_value(&response).map_err(ApiError::internal)?,
                resource_id: None,
            };
            idempotency::store(&mut tx, &retry.principal, &retry.key, &stored).await?;
        }
        commit(tx).await?;
        return Ok(Json(response).into_response());
    }
    Err(ApiError::Conflict(format!(
        "item {sku} kept changing; retry"
    )))
}

/// Writes `inventory.adjusted`, and `inventory.low_stock` when the change took the item below its
/// threshold.
async fn record_changes(
    conn: &mut sqlx::PgConnection,
    item: &InventoryItem,
    reason: AdjustmentReason,
    before: Option<&InventoryItem>,
) -> Result<(), ApiError> {
    let now = crate::now();
    let metadata = EventMetadata::default();
    let adjusted = DomainEvent::InventoryAdjusted(InventoryAdjusted {
        sku: item.sku().clone(),
        reason,
        available: item.available(),
        reserved: item.reserved(),
        price: item.price(),
        low_stock_threshold: item.low_stock_threshold(),
    });
    events::record_event(conn, &adjusted, &metadata, now).await?;
    let was_low = before.is_some_and(InventoryItem::is_low);
    if item.is_low() && !was_low {
        let low = DomainEvent::InventoryLowStock(LowStock {
            sku: item.sku().clone(),
            available: item.available(),
            low_stock_threshold: item.low_stock_threshold(),
        });
        events::record_event(conn, &low, &metadata, now).await?;
    }
    Ok(())
}
