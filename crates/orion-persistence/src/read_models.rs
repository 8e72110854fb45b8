//! Read models: `order_views` (the API's order shape) and `sales_stats` (counts and amounts by
//! status), kept in step with the write side in the same transaction as each change.

use orion_domain::{Order, OrderStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result};

/// One order as the API shows it.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub failure_reason: Option<String>,
    /// The order lines, as serialized `OrderLine`s.
    pub items: serde_json::Value,
    pub total_amount: i64,
    pub currency: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Which orders a listing shows.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this customer's orders; `None` for everyone's.
    pub customer_id: Option<Uuid>,
    pub status: Option<String>,
    /// Only the order with this reference (`OrderId::reference`, any case).
    pub reference: Option<String>,
    /// Continue after this (created_at, order_id), newest first.
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// Writes the view of an order at `version`; returns whether it did. A view never moves
/// backwards: an older version arriving late (a redelivered projection) leaves a newer view alone.
#[tracing::instrument(skip_all, fields(order.id = %order.id()))]
pub async fn upsert_order_view(
    conn: &mut PgConnection,
    order: &Order,
    version: i64,
) -> Result<bool> {
    let status = order.status();
    let currency = order.total().currency();
    let items =
        serde_json::to_value(order.lines()).map_err(|e| Error::corrupt("order_views", e))?;
    let written = sqlx::query_scalar!(
        r#"insert into order_views
               (order_id, customer_id, status, failure_reason, items, total_amount, currency,
                created_at, updated_at, version)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           on conflict (order_id) do update
           set status = excluded.status, failure_reason = excluded.failure_reason,
               updated_at = excluded.updated_at, version = excluded.version
           where order_views.version < excluded.version
           returning order_id"#,
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
    .fetch_optional(conn)
    .await?;
    Ok(written.is_some())
}

/// Keeps both read models in step with an order that was just placed (`previous` is `None`) or
/// moved from `previous` to its current status, saved at `version`.
pub async fn project_order(
    conn: &mut PgConnection,
    order: &Order,
    previous: Option<OrderStatus>,
    version: i64,
) -> Result<()> {
    if !upsert_order_view(conn, order, version).await? {
        // This version (or a later one) is already counted.
        return Ok(());
    }
    let currency = order.total().currency();
    let amount = order.total().amount();
    let mut statuses = vec![order.status().as_str()];
    let mut counts = vec![1_i64];
    let mut amounts = vec![amount];
    if let Some(previous) = previous {
        statuses.push(previous.as_str());
        counts.push(-1);
        amounts.push(-amount);
    }
    // New rows only: no lock that another order's transaction waits for (see the migration).
    sqlx::query!(
        r#"insert into sales_stats_changes (currency, status, order_count, total_amount)
           select $1, c.status, c.order_count, c.total_amount
           from unnest($2::text[], $3::int8[], $4::int8[]) as c(status, order_count, total_amount)"#,
        currency.as_str(),
        &statuses as &[&str],
        &counts,
        &amounts,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Folds the committed changes into the totals, in one statement; returns how many it folded.
/// Safe in several workers at once: a change is deleted, and so added, once.
pub async fn fold_sales_stats(conn: &mut PgConnection) -> Result<u64> {
    let folded = sqlx::query_scalar!(
        r#"with moved as (
               delete from sales_stats_changes
               returning currency, status, order_count, total_amount
           ),
           sums as (
               select currency, status, sum(order_count)::int8 as order_count,
                      sum(total_amount)::int8 as total_amount, count(*) as changes
               from moved group by currency, status
           ),
           folded as (
               insert into sales_stats_folded (currency, status, order_count, total_amount)
               select currency, status, order_count, total_amount from sums
               on conflict (currency, status) do update
               set order_count = sales_stats_folded.order_count + excluded.order_count,
                   total_amount = sales_stats_folded.total_amount + excluded.total_amount,
                   updated_at = now()
           )
           select coalesce(sum(changes), 0)::int8 as "folded!" from sums"#
    )
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(folded).unwrap_or(0))
}

pub async fn find_order_view(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<OrderView>> {
    let view = sqlx::query_as!(
        OrderView,
        r#"select order_id, customer_id, status, failure_reason, items, total_amount, currency,
                  created_at, updated_at
           from order_views where order_id = $1"#,
        order_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(view)
}

/// Orders, newest first, at most `limit`.
pub async fn list_order_views(
    conn: &mut PgConnection,
    filter: &OrderFilter,
    limit: i64,
) -> Result<Vec<OrderView>> {
    let (after_time, after_id) = filter.after.unzip();
    let views = sqlx::query_as!(
        OrderView,
        r#"select order_id, customer_id, status, failure_reason, items, total_amount, currency,
                  created_at, updated_at
           from order_views
           where ($1::uuid is null or customer_id = $1)
             and ($2::text is null or status = $2)
             and ($3::timestamptz is null or (created_at, order_id) < ($3, $4::uuid))
             and ($6::text is null or right(replace(order_id::text, '-', ''), 10) = lower($6))
           order by created_at desc, order_id desc
           limit $5"#,
        filter.customer_id,
        filter.status,
        after_time,
        after_id,
        limit,
        filter.reference,
    )
    .fetch_all(conn)
    .await?;
    Ok(views)
}

/// Orders and amounts in one status and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStats {
    pub currency: String,
    pub status: String,
    pub order_count: i64,
    pub total_amount: i64,
}

pub async fn sales_stats(conn: &mut PgConnection) -> Result<Vec<StatusStats>> {
    let rows = sqlx::query_as!(
        StatusStats,
        r#"select currency as "currency!", status as "status!", order_count as "order_count!",
                  total_amount as "total_amount!"
           from sales_stats order by currency, status"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// An item whose available stock is below its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockItem {
    pub sku: String,
    pub name: String,
    pub available: i32,
    pub low_stock_threshold: i32,
}

pub async fn low_stock_items(conn: &mut PgConnection) -> Result<Vec<LowStockItem>> {
    let rows = sqlx::query_as!(
        LowStockItem,
        r#"select sku, name, available, low_stock_threshold from inventory_items
           where available < low_stock_threshold order by sku"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// The version and status an order's view shows, to tell whether it has caught up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewVersion {
    pub version: i64,
    pub status: String,
    pub failure_reason: Option<String>,
}

pub async fn order_view_version(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<ViewVersion>> {
    let row = sqlx::query_as!(
        ViewVersion,
        "select version, status, failure_reason from order_views where order_id = $1",
        order_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// One page of the read models' check: of the orders after `after` (by id, at most `limit`), those
/// whose view is missing or behind, and the last order id looked at (`None` past the last order).
pub async fn views_behind_after(
    conn: &mut PgConnection,
    after: Uuid,
    limit: i64,
) -> Result<(Vec<Uuid>, Option<Uuid>)> {
    let rows = sqlx::query!(
        r#"select o.id as "id!", (v.order_id is null or v.version < o.version) as "behind!"
           from orders o left join order_views v on v.order_id = o.id
           where o.id > $1
           order by o.id
           limit $2"#,
        after,
        limit,
    )
    .fetch_all(conn)
    .await?;
    let last = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok((
        rows.into_iter()
            .filter(|r| r.behind)
            .map(|r| r.id)
            .collect(),
        last,
    ))
}
