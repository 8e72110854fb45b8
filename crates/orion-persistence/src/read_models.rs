//! Read models: `order_views`, the API's order shape, kept in step with the write side.

use orion_domain::Order;
use sqlx::PgConnection;

use crate::{Error, Result};

/// Writes the view of an order at `version`. A view never moves backwards: an older version
/// arriving late (a redelivered projection) leaves a newer view alone.
#[tracing::instrument(skip_all, fields(order.id = %order.id()))]
pub async fn upsert_order_view(conn: &mut PgConnection, order: &Order, version: i64) -> Result<()> {
    let status = order.status();
    let currency = order.total().currency();
    let items =
        serde_json::to_value(order.lines()).map_err(|e| Error::corrupt("order_views", e))?;
    sqlx::query!(
        r#"insert into order_views
               (order_id, customer_id, status, failure_reason, items, total_amount, currency,
                created_at, updated_at, version)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           on conflict (order_id) do update
           set status = excluded.status, failure_reason = excluded.failure_reason,
               updated_at = excluded.updated_at, version = excluded.version
           where order_views.version < excluded.version"#,
        order.id().as_uuid(),
        order.customer_id().as_uuid(),
        status.as_str(),
        status.failure_reason().map(|r| r.as_str()),
        items,
        order.total().amount(),
        currency.as_str(),
        order.created_at(),
        order.updated_at(),
        version,
    )
    .execute(conn)
    .await?;
    Ok(())
}
