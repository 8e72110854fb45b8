//! Orders: placement (idempotent, one transaction), the customer's and admins' status changes,
//! and the read side (from `order_views` and the event log, never the write tables).

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orion_auth::{Principal, Scope};
use orion_domain::order::MAX_LINES;
use orion_domain::{
    CustomerId, DomainEvent, Order, OrderId, OrderLine, OrderSaga, OrderStatus, Quantity,
    SagaDeadlines, Sku,
};
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::idempotency::{self, StoredResponse};
use orion_persistence::read_models::{self, OrderFilter, OrderView};
use orion_persistence::{inventory, orders, sagas, users};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pagination::{after_cursor, page_size, split_page};
use super::{begin, commit, connection, idempotent};
use crate::AppState;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::models::{
    MoneyBody, OrderItemResponse, OrderList, OrderListQuery, OrderResponse, PlaceOrderRequest,
    SagaTransitionView, SagaView, Timeline, TimelineEvent,
};

/// Attempts at a status change that lost an optimistic-concurrency race (the saga moves orders too).
const TRANSITION_ATTEMPTS: usize = 3;

/// Place an order.
///
/// Prices come from the catalog. The order, its lines, its `order.placed` event (outbox and event
/// log), the read models and the idempotency record are written in one transaction. With an
/// `Idempotency-Key`, the same key and body from the same caller return the original response;
/// the same key with another body is refused.
#[utoipa::path(post, path = "/api/orders", tag = "orders",
    security(("bearer" = []), ("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    request_body = PlaceOrderRequest,
    responses(
        (status = 202, description = "Accepted; the saga takes it from here", body = OrderResponse,
            headers(("Location" = String, description = "The new order's URL"))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed to order for this customer", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
    ))]
// The placement transaction's span: the order, its `order.placed` event (whose outbox row keeps
// this trace's context for the relay) and its saga are written in it.
#[tracing::instrument(name = "place order", skip_all, fields(db.system.name = "postgresql", order.id = tracing::field::Empty))]
pub(crate) async fn place_order(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let customer_id = ordering_customer(&auth.0, body.customer_id)?;
    let idempotency_key = idempotent::key(&headers)?;
    let wanted = validate_lines(&body)?;
    let payment_token = validate_payment_token(body.payment_token.as_deref())?;
    let request_hash = idempotent::fingerprint(&body);

    let mut tx = begin(&state.pool).await?;
    if let Some(key) = &idempotency_key
        && let Some(stored) = idempotency::lock_and_find(&mut tx, &auth.0.key(), key).await?
    {
        let location = stored.resource_id.map(order_location);
        return idempotent::replay(&stored, &request_hash, location);
    }
    if body.customer_id.is_some()
        && users::find_user(&mut tx, customer_id.as_uuid())
            .await?
            .is_none()
    {
        return Err(ApiError::field("customer_id", "no such customer"));
    }
    let skus: Vec<Sku> = wanted.iter().map(|(sku, _)| sku.clone()).collect();
    let catalog = inventory::find_items(&mut tx, &skus).await?;
    let mut lines = Vec::with_capacity(wanted.len());
    let mut unknown = Vec::new();
    for (index, (sku, quantity)) in wanted.into_iter().enumerate() {
        match catalog.iter().find(|item| item.sku() == &sku) {
            Some(item) => lines.push(OrderLine {
                sku,
                name: item.name().to_owned(),
                quantity,
                unit_price: item.price(),
            }),
            None => unknown.push(FieldError {
                field: format!("items[{index}].sku"),
                message: format!("unknown SKU {sku}"),
            }),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::validation(unknown));
    }
    let now = crate::now();
    let (order, placed) = Order::place(OrderId::new(), customer_id, lines, now)?;
    tracing::Span::current().record("order.id", tracing::field::display(order.id()));
    orders::insert_order(&mut tx, &order, payment_token).await?;
    let metadata = EventMetadata {
        correlation_id: Some(order.id().as_uuid()),
        ..EventMetadata::default()
    };
    events::record_event(&mut tx, &placed, &metadata, now).await?;
    read_models::project_order(&mut tx, &order, None, order.version()).await?;
    // The saga is written with the order, due by the reservation deadline: even if the
    // `order.placed` message is never handled, the worker's sweeper finds and begins it.
    let deadlines = SagaDeadlines {
        reserve_stock: time::Duration::try_from(state.config.saga.reserve_step())
            .map_err(ApiError::internal)?,
        ..SagaDeadlines::default()
    };
    sagas::insert_saga(&mut tx, &OrderSaga::placed(order.id(), deadlines, now)).await?;
    let response = OrderResponse::from(&order);
    if let Some(key) = &idempotency_key {
        let stored = StoredResponse {
            request_hash,
            status: 202,
            body: serde_json::to_value(&response).map_err(ApiError::internal)?,
            resource_id: Some(order.id().as_uuid()),
        };
        idempotency::store(&mut tx, &auth.0.key(), key, &stored).await?;
    }
    commit(tx).await?;
    tracing::info!(order.id = %order.id(), order.total = %order.total(), "order placed");
    Ok(accepted(order.id().as_uuid(), Json(response)))
}

fn order_location(order_id: Uuid) -> String {
    format!("/api/orders/{order_id}")
}

fn accepted(order_id: Uuid, body: impl IntoResponse) -> Response {
    let location = HeaderValue::from_str(&order_location(order_id)).ok();
    let mut response = (StatusCode::ACCEPTED, body).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whose order this is: customers order for themselves; admins for themselves or a named
/// customer; API keys with `orders:write` for a named customer.
fn ordering_customer(
    principal: &Principal,
    requested: Option<Uuid>,
) -> Result<CustomerId, ApiError> {
    match (principal, requested) {
        (Principal::User { id, .. }, None) => Ok(CustomerId::from_uuid(*id)),
        (Principal::User { id, .. }, Some(other)) if *id == other || principal.is_admin() => {
            Ok(CustomerId::from_uuid(other))
        }
        (Principal::User { .. }, Some(_)) => Err(ApiError::Forbidden(
            "customers can only order for themselves".into(),
        )),
        (key, Some(customer)) if key.has_scope(Scope::OrdersWrite) => {
            Ok(CustomerId::from_uuid(customer))
        }
        (key, None) if key.has_scope(Scope::OrdersWrite) => Err(ApiError::field(
            "customer_id",
            "required when ordering with an API key",
        )),
        _ => Err(ApiError::Forbidden(
            "this API key lacks the `orders:write` scope".into(),
        )),
    }
}

/// Checks every line and reports every problem at once.
pub(crate) fn validate_lines(body: &PlaceOrderRequest) -> Result<Vec<(Sku, Quantity)>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_LINES {
        return Err(ApiError::field(
            "items",
            format!(
                "an order needs 1 to {MAX_LINES} lines, got {}",
                body.items.len()
            ),
        ));
    }
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(body.items.len());
    let mut seen = HashSet::new();
    for (index, line) in body.items.iter().enumerate() {
        let sku = Sku::parse(&line.sku);
        if let Err(e) = &sku {
            errors.push(FieldError {
                field: format!("items[{index}].sku"),
                message: e.to_string(),
            });
        }
        let max = orion_domain::order::MAX_LINE_QUANTITY;
        if !(1..=i64::from(max)).contains(&line.quantity) {
            errors.push(FieldError {
                field: format!("items[{index}].quantity"),
                message: format!("must be between 1 and {max}"),
            });
        }
        if let Ok(sku) = sku {
            if !seen.insert(sku.clone()) {
                errors.push(FieldError {
                    field: format!("items[{index}].sku"),
                    message: format!("SKU {sku} appears more than once; send one line per SKU with the total quantity"),
                });
            }
            if let Ok(quantity) = Quantity::parse(line.quantity) {
                lines.push((sku, quantity));
            }
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(ApiError::validation(errors))
    }
}

pub(crate) fn validate_payment_token(token: Option<&str>) -> Result<Option<&str>, ApiError> {
    match token {
        Some(t) if t.is_empty() || t.len() > 200 || !t.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ApiError::field(
                "payment_token",
                "must be 1 to 200 visible ASCII characters",
            ))
        }
        other => Ok(other),
    }
}

/// List orders.
///
/// Customers see their own; admins and `orders:read` keys see everyone's. Newest first, with
/// an optional status or reference filter. Cursor pagination: pass `next_cursor` as `cursor`.
#[utoipa::path(get, path = "/api/orders", tag = "orders",
    security(("bearer" = []), ("api_key" = [])),
    params(OrderListQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = OrderList),
        (status = 400, description = "Invalid status, reference, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key without `orders:read`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<OrderListQuery>,
) -> Result<Json<OrderList>, ApiError> {
    let customer_id = if auth.sees_all_orders() {
        None
    } else {
        Some(auth.0.user_id().ok_or_else(|| {
            ApiError::Forbidden("this API key lacks the `orders:read` scope".into())
        })?)
    };
    let status = match query.status {
        Some(s) if OrderStatus::NAMES.contains(&s.as_str()) => Some(s),
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "unknown status {s:?}; expected one of {}",
                OrderStatus::NAMES.join(", ")
            )));
        }
        None => None,
    };
    let reference = match query.reference {
        Some(r)
            if r.len() == OrderId::REFERENCE_LEN && r.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Some(r)
        }
        Some(r) => {
            return Err(ApiError::BadRequest(format!(
                "invalid reference {r:?}; expected the {} characters shown for an order",
                OrderId::REFERENCE_LEN
            )));
        }
        None => None,
    };
    let limit = page_size(query.limit, 20)?;
    let after = after_cursor(query.cursor.as_deref())?;
    let filter = OrderFilter {
        customer_id,
        status,
        reference,
        after,
    };
    let views =
        read_models::list_order_views(&mut *connection(&state.pool).await?, &filter, limit + 1)
            .await?;
    let (views, next_cursor) = split_page(views, limit, |v| (v.created_at, v.order_id));
    let items = views.iter().map(view_response).collect::<Result<_, _>>()?;
    Ok(Json(OrderList { items, next_cursor }))
}

fn view_response(view: &OrderView) -> Result<OrderResponse, ApiError> {
    let lines: Vec<OrderLine> =
        serde_json::from_value(view.items.clone()).map_err(ApiError::internal)?;
    Ok(OrderResponse {
        id: view.order_id,
        customer_id: view.customer_id,
        status: view.status.clone(),
        failure_reason: view.failure_reason.clone(),
        items: lines.iter().map(OrderItemResponse::from).collect(),
        total: MoneyBody {
            amount: view.total_amount,
            currency: view.currency.clone(),
        },
        created_at: view.created_at,
        updated_at: view.updated_at,
    })
}

/// The order's view, if the caller may see it. Another customer's order is "not found", so
/// order ids cannot be probed.
async fn visible_view(
    state: &AppState,
    auth: &Auth,
    order_id: Uuid,
) -> Result<OrderView, ApiError> {
    let not_found = || ApiError::NotFound(format!("no order {order_id}"));
    // Least privilege: `orders:write` places orders; reading any order takes `orders:read`.
    auth.require_user_or_scope(Scope::OrdersRead)?;
    let view = read_models::find_order_view(&mut *connection(&state.pool).await?, order_id)
        .await?
        .ok_or_else(not_found)?;
    if auth.sees_all_orders() || auth.0.user_id() == Some(view.customer_id) {
        Ok(view)
    } else {
        Err(not_found())
    }
}

/// One order.
///
/// The order as its read model holds it. Customers may read only their own (404 for others').
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key without `orders:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another customer's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    let view = visible_view(&state, &auth, id).await?;
    Ok(Json(view_response(&view)?))
}

/// An order's timeline.
///
/// Every domain event of the order, oldest first, from the event log, and where its saga is.
#[utoipa::path(get, path = "/api/orders/{id}/timeline", tag = "orders", operation_id = "get_order_timeline",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order's events, oldest first", body = Timeline),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key without `orders:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another customer's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Timeline>, ApiError> {
    visible_view(&state, &auth, id).await?;
    let logged =
        events::order_events(&mut *connection(&state.pool).await?, OrderId::from_uuid(id)).await?;
    let events = logged
        .into_iter()
        .map(|e| TimelineEvent {
            id: e.id,
            kind: e.event.event_type().as_str().to_owned(),
            time: e.occurred_at,
            data: public_data(&e.event),
        })
        .collect();
    let saga = sagas::find_saga(&mut *connection(&state.pool).await?, OrderId::from_uuid(id))
        .await?
        .map(|saga| saga_view(&saga));
    Ok(Json(Timeline {
        order_id: id,
        events,
        saga,
    }))
}

/// What a timeline shows of an event: its payload without internal error text (an SMTP server's
/// reply, a connection error), which is the operators' business (`/api/admin/email-deliveries`),
/// not the customer's.
fn public_data(event: &DomainEvent) -> serde_json::Value {
    let mut data = event.data();
    if let (DomainEvent::EmailSent(_) | DomainEvent::EmailFailed(_), Some(fields)) =
        (event, data.as_object_mut())
    {
        fields.remove("error");
    }
    data
}

/// The wire name of a saga state or command: `held`, `release_stock`, `fail_order:timeout`.
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(tagged)) => {
            let text = |key: &str| tagged.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            match (text("command"), text("reason")) {
                (Some(command), Some(reason)) => format!("{command}:{reason}"),
                (Some(command), None) => command,
                _ => serde_json::Value::Object(tagged).to_string(),
            }
        }
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn saga_view(saga: &OrderSaga) -> SagaView {
    SagaView {
        step: saga.step().as_str().to_owned(),
        failure_reason: saga.failure_reason().map(|r| r.as_str().to_owned()),
        deadline: saga.deadline(),
        stock: wire_name(&saga.stock()),
        payment: wire_name(&saga.payment()),
        transitions: saga
            .history()
            .iter()
            .map(|t| SagaTransitionView {
                time: t.at,
                event: t.event.as_str().to_owned(),
                from: t.from.as_str().to_owned(),
                to: t.to.as_str().to_owned(),
                commands: t.commands.iter().map(wire_name).collect(),
            })
            .collect(),
    }
}

/// Who may apply a status change.
#[derive(Clone, Copy)]
enum Actor {
    /// The order's owner, an admin, or a key with `orders:write`.
    OwnerOrOperator,
    AdminOnly,
}

/// Loads the order, applies `change` through the domain, and saves it with its event and read
/// models in one transaction; retried when the saga moved the order in between.
async fn transition(
    state: &AppState,
    auth: &Auth,
    id: Uuid,
    actor: Actor,
    change: fn(&mut Order, OffsetDateTime) -> orion_domain::Result<orion_domain::DomainEvent>,
) -> Result<Json<OrderResponse>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no order {id}"));
    match actor {
        Actor::AdminOnly => auth.require_admin()?,
        // A key acts on other customers' orders only if it may also read them.
        Actor::OwnerOrOperator => {
            auth.require_user_or_scopes(&[Scope::OrdersWrite, Scope::OrdersRead])?;
        }
    }
    for attempt in 1..=TRANSITION_ATTEMPTS {
        let mut tx = begin(&state.pool).await?;
        let mut order = orders::find_order(&mut tx, OrderId::from_uuid(id))
            .await?
            .ok_or_else(not_found)?;
        let may_act = auth.0.is_admin()
            || auth.0.has_scope(Scope::OrdersWrite)
            || auth.0.user_id() == Some(order.customer_id().as_uuid());
        if !may_act {
            return Err(not_found());
        }
        let previous = order.status();
        let now = crate::now();
        let event = change(&mut order, now)?;
        let metadata = EventMetadata {
            correlation_id: Some(id),
            ..EventMetadata::default()
        };
        match orders::save_transition(&mut tx, &order, previous, &event, &metadata, now).await {
            Ok(()) => {}
            Err(orion_persistence::Error::VersionConflict { .. })
                if attempt < TRANSITION_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        commit(tx).await?;
        return Ok(Json(OrderResponse::from(&order)));
    }
    Err(ApiError::Conflict("the order kept changing; retry".into()))
}

/// Cancel an order.
///
/// Only an order that has not shipped; the saga releases its stock and voids its payment. An
/// order that has shipped or is already final answers 409 with its `current_status`.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled", body = OrderResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key without both `orders:write` and `orders:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another customer's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Shipped or already final; `current_status` says which", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    transition(&state, &auth, id, Actor::OwnerOrOperator, Order::cancel).await
}

/// Mark an order shipped (admins).
///
/// Only a confirmed order; its reserved stock leaves the warehouse and the customer is emailed.
#[utoipa::path(post, path = "/api/orders/{id}/ship", tag = "orders",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "Shipped", body = OrderResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmed; `current_status` says what it is", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ship_order(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    transition(&state, &auth, id, Actor::AdminOnly, Order::ship).await
}

/// Mark an order delivered (admins).
///
/// Only a shipped order; the customer is emailed.
#[utoipa::path(post, path = "/api/orders/{id}/deliver", tag = "orders",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "Delivered", body = OrderResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not shipped; `current_status` says what it is", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn deliver_order(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    transition(&state, &auth, id, Actor::AdminOnly, Order::deliver).await
}
