//! The saga of each order (`order_sagas`): the whole serialized `OrderSaga` plus its queryable
//! step and deadline. Every change happens with the row locked, so one order's saga is driven by
//! one transaction at a time, whichever worker holds the message.

use orion_domain::{OrderId, OrderSaga};
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

use crate::{Error, Result, Versioned};

fn to_json(saga: &OrderSaga) -> Result<serde_json::Value> {
    serde_json::to_value(saga).map_err(|e| Error::corrupt("order_sagas", e))
}

fn from_json(state: serde_json::Value) -> Result<OrderSaga> {
    serde_json::from_value(state).map_err(|e| Error::corrupt("order_sagas", e))
}

/// Stores a new saga; [`Error::Constraint`] `order_sagas_pk` if the order has one already.
pub async fn insert_saga(conn: &mut PgConnection, saga: &OrderSaga) -> Result<()> {
    sqlx::query!(
        r#"insert into order_sagas (order_id, step, deadline_at, state)
           values ($1, $2, $3, $4)"#,
        saga.order_id().as_uuid(),
        saga.step().as_str(),
        saga.deadline(),
        to_json(saga)?,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Loads an order's saga and locks it until the transaction ends.
pub async fn lock_saga(
    conn: &mut PgConnection,
    order_id: OrderId,
) -> Result<Option<Versioned<OrderSaga>>> {
    let row = sqlx::query!(
        "select state, version from order_sagas where order_id = $1 for update",
        order_id.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Versioned {
            value: from_json(r.state)?,
            version: r.version,
        })
    })
    .transpose()
}

/// Locks the sagas of several orders, in order id order: a transaction that advances several
/// sagas takes their locks up front, in the same order as every other such transaction.
pub async fn lock_sagas(conn: &mut PgConnection, order_ids: &[OrderId]) -> Result<()> {
    let ids: Vec<uuid::Uuid> = order_ids.iter().map(|id| id.as_uuid()).collect();
    sqlx::query!(
        "select order_id from order_sagas where order_id = any($1) order by order_id for update",
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// Reads an order's saga without locking it (the timeline).
pub async fn find_saga(conn: &mut PgConnection, order_id: OrderId) -> Result<Option<OrderSaga>> {
    let state = sqlx::query_scalar!(
        "select state from order_sagas where order_id = $1",
        order_id.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    state.map(from_json).transpose()
}

/// Saves a saga loaded at `version`.
pub async fn save_saga(conn: &mut PgConnection, saga: &OrderSaga, version: i64) -> Result<()> {
    let saved = sqlx::query!(
        r#"update order_sagas
           set step = $2, deadline_at = $3, state = $4, version = version + 1, updated_at = now()
           where order_id = $1 and version = $5"#,
        saga.order_id().as_uuid(),
        saga.step().as_str(),
        saga.deadline(),
        to_json(saga)?,
        version,
    )
    .execute(conn)
    .await?;
    if saved.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            aggregate: "order_saga",
            id: saga.order_id().to_string(),
        })
    }
}

/// Locks up to `limit` sagas whose step is overdue at `now`, oldest deadline first, skipping
/// those another worker holds: several sweepers never take the same saga.
pub async fn lock_overdue(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<OrderId>> {
    let ids = sqlx::query_scalar!(
        r#"select order_id from order_sagas
           where deadline_at is not null and deadline_at <= $1
           order by deadline_at
           limit $2
           for update skip locked"#,
        now,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(OrderId::from_uuid).collect())
}

/// Moves a saga's deadline `delay` past now (the database's clock): the sweeper could not resume
/// it and will look again then.
pub async fn postpone(conn: &mut PgConnection, order_id: OrderId, delay: Duration) -> Result<()> {
    sqlx::query!(
        "update order_sagas set deadline_at = now() + $2::float8 * interval '1 second' where order_id = $1 and deadline_at is not null",
        order_id.as_uuid(),
        delay.as_seconds_f64(),
    )
    .execute(conn)
    .await?;
    Ok(())
}
