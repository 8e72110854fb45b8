//! The HTTP handlers, one module per resource.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod inventory;
pub(crate) mod orders;

use crate::error::ApiError;

/// Acquires a pooled connection, as a problem when the pool is exhausted or the database is down.
pub(crate) async fn connection(
    pool: &orion_persistence::Pool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ApiError> {
    pool.acquire()
        .await
        .map_err(|e| unavailable(orion_persistence::Error::from(e)))
}

/// Begins a transaction, as a problem when the database is unavailable.
pub(crate) async fn begin(
    pool: &orion_persistence::Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    pool.begin()
        .await
        .map_err(|e| unavailable(orion_persistence::Error::from(e)))
}

/// Commits, mapping failure to a problem.
pub(crate) async fn commit(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), ApiError> {
    tx.commit()
        .await
        .map_err(|e| ApiError::from(orion_persistence::Error::from(e)))
}

fn unavailable(error: orion_persistence::Error) -> ApiError {
    tracing::warn!(%error, "database unavailable");
    ApiError::Unavailable("the database is unavailable; retry shortly".into())
}
