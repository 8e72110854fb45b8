//! The write side of orders: the aggregate and its lines.

use orion_domain::order::OrderParts;
use orion_domain::{
    Currency, CustomerId, DomainEvent, Money, Order, OrderId, OrderLine, OrderStatus, Quantity, Sku,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::events::{self, EventMetadata};
use crate::{Error, Result, read_models};

/// Writes a newly placed order and its lines.
#[tracing::instrument(skip_all, fields(order.id = %order.id()))]
pub async fn insert_order(
    conn: &mut PgConnection,
    order: &Order,
    payment_token: Option<&str>,
) -> Result<()> {
    let status = order.status();
    let currency = order.total().currency();
    sqlx::query!(
        r#"insert into orders
               (id, customer_id, status, failure_reason, total_amount, currency, payment_token,
                version, created_at, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        order.id().as_uuid(),
        order.customer_id().as_uuid(),
        status.as_str(),
        status.failure_reason().map(|r| r.as_str()),
        order.total().amount(),
        currency.as_str(),
        payment_token,
        order.version(),
        order.created_at(),
        order.updated_at(),
    )
    .execute(&mut *conn)
    .await?;

    let lines = order.lines();
    let line_nos: Vec<i32> = (1..).take(lines.len()).collect();
    let skus: Vec<String> = lines.iter().map(|l| l.sku.to_string()).collect();
    let names: Vec<String> = lines.iter().map(|l| l.name.clone()).collect();
    let quantities: Vec<i32> = lines
        .iter()
        .map(|l| l.quantity.get().min(i32::MAX as u32) as i32)
        .collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.unit_price.amount()).collect();
    let currencies: Vec<String> = lines
        .iter()
        .map(|l| l.unit_price.currency().to_string())
        .collect();
    sqlx::query!(
        r#"insert into order_items (order_id, line_no, sku, name, quantity, unit_price_amount, currency)
           select $1, * from unnest($2::int4[], $3::text[], $4::text[], $5::int4[], $6::int8[], $7::text[])"#,
        order.id().as_uuid(),
        &line_nos,
        &skus,
        &names,
        &quantities,
        &prices,
        &currencies,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Loads an order with its lines from the write tables.
pub async fn find_order(conn: &mut PgConnection, id: OrderId) -> Result<Option<Order>> {
    let Some(row) = sqlx::query!(
        r#"select customer_id, status, failure_reason, version, created_at, updated_at
           from orders where id = $1"#,
        id.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query!(
        r#"select sku, name, quantity, unit_price_amount, currency
           from order_items where order_id = $1 order by line_no"#,
        id.as_uuid(),
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|l| {
        Ok(OrderLine {
            sku: Sku::parse(&l.sku)?,
            name: l.name,
            quantity: Quantity::parse(i64::from(l.quantity))?,
            unit_price: Money::new(l.unit_price_amount, Currency::parse(&l.currency)?)?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let status =
        OrderStatus::from_parts(&row.status, row.failure_reason.as_deref()).ok_or_else(|| {
            Error::corrupt(
                "orders",
                format!("status {:?}/{:?}", row.status, row.failure_reason),
            )
        })?;
    let order = Order::from_parts(OrderParts {
        id,
        customer_id: CustomerId::from_uuid(row.customer_id),
        status,
        lines,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    })?;
    Ok(Some(order))
}

/// Saves an order's new status if it is still at the version it was loaded at; returns the new
/// version. [`Error::VersionConflict`] when someone else moved the order first.
#[tracing::instrument(skip_all, fields(order.id = %order.id(), order.status = %order.status()))]
pub async fn save_order_status(conn: &mut PgConnection, order: &Order) -> Result<i64> {
    let status = order.status();
    let version = sqlx::query_scalar!(
        r#"update orders
           set status = $2, failure_reason = $3, updated_at = $4, version = version + 1
           where id = $1 and version = $5
           returning version"#,
        order.id().as_uuid(),
        status.as_str(),
        status.failure_reason().map(|r| r.as_str()),
        order.updated_at(),
        order.version(),
    )
    .fetch_optional(conn)
    .await?;
    version.ok_or_else(|| Error::VersionConflict {
        aggregate: "order",
        id: order.id().to_string(),
    })
}

/// Loads an order and locks its row until the transaction ends: the saga takes this lock before
/// it moves an order, so a concurrent API change waits and then sees the new version.
pub async fn lock_order(conn: &mut PgConnection, id: OrderId) -> Result<Option<Order>> {
    let found = sqlx::query_scalar!(
        "select id from orders where id = $1 for update",
        id.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(_) => find_order(conn, id).await,
        None => Ok(None),
    }
}

/// Locks several orders' rows, in id order (see [`lock_order`]); returns the cancelled ones.
pub async fn lock_orders(conn: &mut PgConnection, ids: &[OrderId]) -> Result<Vec<OrderId>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows = sqlx::query!(
        "select id, status from orders where id = any($1) order by id for update",
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.status == OrderStatus::Cancelled.as_str())
        .map(|r| OrderId::from_uuid(r.id))
        .collect())
}

/// The payment token the client sent with an order, if any.
pub async fn payment_token(conn: &mut PgConnection, id: OrderId) -> Result<Option<String>> {
    let token = sqlx::query_scalar!(
        "select payment_token from orders where id = $1",
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(token.flatten())
}

/// Saves an order's status change the one way the API and the worker both do: the new status
/// (optimistically, [`Error::VersionConflict`] if the order moved meanwhile), its event in the
/// event log and the outbox, and the read models, all in the caller's transaction.
pub async fn save_transition(
    conn: &mut PgConnection,
    order: &Order,
    previous: OrderStatus,
    event: &DomainEvent,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<()> {
    let version = save_order_status(conn, order).await?;
    events::record_event(conn, event, metadata, now).await?;
    read_models::project_order(conn, order, Some(previous), version).await?;
    tracing::info!(order.id = %order.id(), from = %previous, to = %order.status(), "order status changed");
    Ok(())
}
