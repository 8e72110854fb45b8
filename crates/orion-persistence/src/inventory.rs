//! Inventory: catalog items, their stock counters, and reservations held for orders.
//!
//! Reservation is all-or-nothing and cannot oversell: the order's items are locked in SKU order
//! (so two orders never deadlock each other), checked, then changed in one statement, all in the
//! caller's transaction. The table's checks (`available >= 0`, conservation) are the last line.

use std::collections::BTreeMap;

use orion_domain::inventory::InventoryParts;
use orion_domain::{Currency, InventoryItem, Money, OrderId, Shortage, Sku, StockLine};
use sqlx::PgConnection;

use crate::{Error, Result, Versioned};

/// An item's counters right after a stock movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub sku: Sku,
    pub available: u32,
    pub reserved: u32,
    pub low_stock_threshold: u32,
    pub price: Money,
    /// Available units before the movement, to tell when the item crossed its threshold.
    pub available_before: u32,
}

impl StockLevel {
    /// The movement took available stock below the threshold (a low-stock alert is due).
    pub fn crossed_below_threshold(&self) -> bool {
        self.available_before >= self.low_stock_threshold
            && self.available < self.low_stock_threshold
    }
}

struct ItemRow {
    sku: String,
    name: String,
    price_amount: i64,
    currency: String,
    available: i32,
    reserved: i32,
    shipped: i32,
    received: i32,
    low_stock_threshold: i32,
    version: i64,
}

impl TryFrom<ItemRow> for Versioned<InventoryItem> {
    type Error = Error;

    fn try_from(row: ItemRow) -> Result<Self> {
        let count = |n: i32| {
            u32::try_from(n).map_err(|_| Error::corrupt("inventory_items", "negative counter"))
        };
        let parts = InventoryParts {
            sku: Sku::parse(&row.sku)?,
            name: row.name,
            price: Money::new(row.price_amount, Currency::parse(&row.currency)?)?,
            available: count(row.available)?,
            reserved: count(row.reserved)?,
            shipped: count(row.shipped)?,
            received: count(row.received)?,
            low_stock_threshold: count(row.low_stock_threshold)?,
        };
        let item = InventoryItem::from_parts(parts).ok_or_else(|| {
            Error::corrupt(
                "inventory_items",
                format!("{} breaks conservation", row.sku),
            )
        })?;
        Ok(Versioned {
            value: item,
            version: row.version,
        })
    }
}

fn to_i32(n: u32) -> Result<i32> {
    i32::try_from(n).map_err(|_| orion_domain::Error::StockOverflow { sku: String::new() }.into())
}

/// Adds a new item to the catalog; [`Error::DuplicateSku`] if the SKU exists.
pub async fn insert_item(conn: &mut PgConnection, item: &InventoryItem) -> Result<()> {
    if insert_item_if_missing(conn, item).await? {
        Ok(())
    } else {
        Err(Error::DuplicateSku(item.sku().to_string()))
    }
}

/// Adds an item unless its SKU exists; returns whether it was added. Never aborts the caller's
/// transaction over a duplicate.
#[tracing::instrument(skip_all, fields(sku = %item.sku()))]
pub async fn insert_item_if_missing(conn: &mut PgConnection, item: &InventoryItem) -> Result<bool> {
    let currency = item.price().currency();
    let result = sqlx::query!(
        r#"insert into inventory_items
               (sku, name, price_amount, currency, available, reserved, shipped, received, low_stock_threshold)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           on conflict on constraint inventory_items_pk do nothing"#,
        item.sku().as_str(),
        item.name(),
        item.price().amount(),
        currency.as_str(),
        to_i32(item.available())?,
        to_i32(item.reserved())?,
        to_i32(item.shipped())?,
        to_i32(item.received())?,
        to_i32(item.low_stock_threshold())?,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn find_item(
    conn: &mut PgConnection,
    sku: &Sku,
) -> Result<Option<Versioned<InventoryItem>>> {
    let row = sqlx::query_as!(
        ItemRow,
        r#"select sku, name, price_amount, currency, available, reserved, shipped, received,
                  low_stock_threshold, version
           from inventory_items where sku = $1"#,
        sku.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// Items in SKU order, after `after` (keyset pagination), at most `limit`.
pub async fn list_items(
    conn: &mut PgConnection,
    after: Option<&Sku>,
    limit: i64,
) -> Result<Vec<Versioned<InventoryItem>>> {
    let rows = sqlx::query_as!(
        ItemRow,
        r#"select sku, name, price_amount, currency, available, reserved, shipped, received,
                  low_stock_threshold, version
           from inventory_items
           where $1::text is null or sku > $1
           order by sku
           limit $2"#,
        after.map(Sku::as_str),
        limit,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// The items with these SKUs (unknown SKUs are simply absent), in SKU order.
pub async fn find_items(conn: &mut PgConnection, skus: &[Sku]) -> Result<Vec<InventoryItem>> {
    let skus: Vec<String> = skus.iter().map(|s| s.as_str().to_owned()).collect();
    let rows = sqlx::query_as!(
        ItemRow,
        r#"select sku, name, price_amount, currency, available, reserved, shipped, received,
                  low_stock_threshold, version
           from inventory_items where sku = any($1) order by sku"#,
        &skus,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Versioned::try_from(row).map(|v| v.value))
        .collect()
}

/// Writes an item changed through the domain (restock, price, threshold), if nobody changed it
/// since it was read at `expected_version`.
#[tracing::instrument(skip_all, fields(sku = %item.sku()))]
pub async fn save_item(
    conn: &mut PgConnection,
    item: &InventoryItem,
    expected_version: i64,
) -> Result<i64> {
    let currency = item.price().currency();
    let version = sqlx::query_scalar!(
        r#"update inventory_items
           set name = $2, price_amount = $3, currency = $4, available = $5, reserved = $6,
               shipped = $7, received = $8, low_stock_threshold = $9,
               version = version + 1, updated_at = now()
           where sku = $1 and version = $10
           returning version"#,
        item.sku().as_str(),
        item.name(),
        item.price().amount(),
        currency.as_str(),
        to_i32(item.available())?,
        to_i32(item.reserved())?,
        to_i32(item.shipped())?,
        to_i32(item.received())?,
        to_i32(item.low_stock_threshold())?,
        expected_version,
    )
    .fetch_optional(conn)
    .await?;
    version.ok_or_else(|| Error::VersionConflict {
        aggregate: "inventory item",
        id: item.sku().to_string(),
    })
}

/// Sums lines per SKU, in SKU order.
fn merge_lines(lines: &[StockLine]) -> Result<(Vec<String>, Vec<i32>)> {
    let mut merged: BTreeMap<&str, u32> = BTreeMap::new();
    for line in lines {
        let total = merged.entry(line.sku.as_str()).or_default();
        *total = total.checked_add(line.quantity.get()).ok_or_else(|| {
            orion_domain::Error::StockOverflow {
                sku: line.sku.to_string(),
            }
        })?;
    }
    let skus = merged.keys().map(|s| (*s).to_owned()).collect();
    let quantities = merged.values().map(|&q| to_i32(q)).collect::<Result<_>>()?;
    Ok((skus, quantities))
}

/// Locks every item the orders hold or ask for, in SKU order: a transaction that moves the stock
/// of several orders takes its item locks up front, in the same order as every other, so two such
/// transactions wait for each other instead of deadlocking. `no key update`, the lock the stock
/// updates take anyway: a placement's foreign-key check (`key share`, in its lines' order) does
/// not wait for it.
pub async fn lock_items_of_orders(conn: &mut PgConnection, order_ids: &[OrderId]) -> Result<()> {
    let ids: Vec<uuid::Uuid> = order_ids.iter().map(|id| id.as_uuid()).collect();
    sqlx::query!(
        r#"select i.sku from inventory_items i
           where i.sku in (select l.sku from order_items l where l.order_id = any($1))
           order by i.sku
           for no key update of i"#,
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// Reserves every line of an order or none of them.
///
/// [`Error::InsufficientStock`] lists every short line (unknown SKUs count with nothing
/// available) and changes nothing; [`Error::AlreadyReserved`] if this order holds stock already.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn reserve_stock(
    conn: &mut PgConnection,
    order_id: OrderId,
    lines: &[StockLine],
) -> Result<Vec<StockLevel>> {
    let (skus, quantities) = merge_lines(lines)?;
    let locked = sqlx::query!(
        "select sku, available from inventory_items where sku = any($1) order by sku for no key update",
        &skus,
    )
    .fetch_all(&mut *conn)
    .await?;
    let shortages: Vec<Shortage> = skus
        .iter()
        .zip(&quantities)
        .filter_map(|(sku, &wanted)| {
            let available = locked
                .iter()
                .find(|r| &r.sku == sku)
                .map_or(0, |r| r.available);
            (wanted > available).then(|| {
                Sku::parse(sku).map(|sku| Shortage {
                    sku,
                    requested: wanted.unsigned_abs(),
                    available: available.unsigned_abs(),
                })
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    if !shortages.is_empty() {
        return Err(Error::InsufficientStock(shortages));
    }
    // `do nothing` rather than catching the key violation, which would abort the caller's transaction.
    let inserted = sqlx::query_scalar!(
        r#"insert into inventory_reservations (order_id, sku, quantity)
           select $1, w.sku, w.quantity from unnest($2::text[], $3::int4[]) as w(sku, quantity)
           on conflict on constraint inventory_reservations_pk do nothing
           returning sku"#,
        order_id.as_uuid(),
        &skus,
        &quantities,
    )
    .fetch_all(&mut *conn)
    .await?;
    if inserted.len() != skus.len() {
        // Take back what this statement added; the stock counters are untouched so far.
        sqlx::query!(
            "delete from inventory_reservations where order_id = $1 and sku = any($2)",
            order_id.as_uuid(),
            &inserted,
        )
        .execute(&mut *conn)
        .await?;
        return Err(Error::AlreadyReserved(order_id));
    }
    let rows = sqlx::query!(
        r#"update inventory_items i
           set available = i.available - w.quantity, reserved = i.reserved + w.quantity,
               version = i.version + 1, updated_at = now()
           from unnest($1::text[], $2::int4[]) as w(sku, quantity)
           where i.sku = w.sku
           returning i.sku, i.available, i.reserved, i.low_stock_threshold, i.price_amount, i.currency,
                     i.available + w.quantity as "available_before!""#,
        &skus,
        &quantities,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            stock_level(
                &r.sku,
                [
                    r.available,
                    r.reserved,
                    r.low_stock_threshold,
                    r.available_before,
                ],
                r.price_amount,
                &r.currency,
            )
        })
        .collect()
}

/// Gives an order's held stock back. Releasing twice changes nothing the second time.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn release_stock(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<StockLevel>> {
    lock_held_items(conn, order_id).await?;
    let rows = sqlx::query!(
        r#"with released as (
               update inventory_reservations set status = 'released', updated_at = now()
               where order_id = $1 and status = 'held'
               returning sku, quantity)
           update inventory_items i
           set available = i.available + r.quantity, reserved = i.reserved - r.quantity,
               version = i.version + 1, updated_at = now()
           from released r
           where i.sku = r.sku
           returning i.sku, i.available, i.reserved, i.low_stock_threshold, i.price_amount, i.currency,
                     i.available - r.quantity as "available_before!""#,
        order_id.as_uuid(),
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            stock_level(
                &r.sku,
                [
                    r.available,
                    r.reserved,
                    r.low_stock_threshold,
                    r.available_before,
                ],
                r.price_amount,
                &r.currency,
            )
        })
        .collect()
}

/// Held stock of a shipped order leaves the warehouse. Shipping twice changes nothing the second time.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn ship_stock(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<StockLevel>> {
    lock_held_items(conn, order_id).await?;
    let rows = sqlx::query!(
        r#"with shipped as (
               update inventory_reservations set status = 'shipped', updated_at = now()
               where order_id = $1 and status = 'held'
               returning sku, quantity)
           update inventory_items i
           set reserved = i.reserved - s.quantity, shipped = i.shipped + s.quantity,
               version = i.version + 1, updated_at = now()
           from shipped s
           where i.sku = s.sku
           returning i.sku, i.available, i.reserved, i.low_stock_threshold, i.price_amount, i.currency, i.available as "available_before!""#,
        order_id.as_uuid(),
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            stock_level(
                &r.sku,
                [
                    r.available,
                    r.reserved,
                    r.low_stock_threshold,
                    r.available_before,
                ],
                r.price_amount,
                &r.currency,
            )
        })
        .collect()
}

/// Locks, in SKU order, the items an order holds stock of: the same order `reserve_stock` locks
/// in, so a release and a reservation cannot deadlock.
async fn lock_held_items(conn: &mut PgConnection, order_id: OrderId) -> Result<()> {
    sqlx::query!(
        r#"select i.sku from inventory_items i
           where i.sku in (select sku from inventory_reservations where order_id = $1 and status = 'held')
           order by i.sku for no key update"#,
        order_id.as_uuid(),
    )
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// `counts` are available, reserved, threshold and available-before, as stored.
fn stock_level(sku: &str, counts: [i32; 4], price: i64, currency: &str) -> Result<StockLevel> {
    let [available, reserved, threshold, before] = counts;
    let count = |n: i32| {
        u32::try_from(n).map_err(|_| Error::corrupt("inventory_items", "negative counter"))
    };
    Ok(StockLevel {
        sku: Sku::parse(sku)?,
        available: count(available)?,
        reserved: count(reserved)?,
        low_stock_threshold: count(threshold)?,
        price: Money::new(price, Currency::parse(currency)?)?,
        available_before: count(before)?,
    })
}
