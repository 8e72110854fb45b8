//! The HTTP handlers, one module per resource.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod health;
mod idempotent;
pub(crate) mod inventory;
pub(crate) mod orders;
mod pagination;
pub(crate) mod webhooks;

use crate::error::ApiError;

/// Acquires a pooled connection, as a problem when the pool is exhausted or the database is down.
pub(crate) async fn connection(
    pool: &orion_persistence::Pool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ApiError> {
    pool.acquire()
        .await
        .map_err(|e| ApiError::database_unavailable(orion_persistence::Error::from(e)))
}

/// Begins a transaction, as a problem when the database is unavailable.
pub(crate) async fn begin(
    pool: &orion_persistence::Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    pool.begin()
        .await
        .map_err(|e| ApiError::database_unavailable(orion_persistence::Error::from(e)))
}

/// Commits, mapping failure to a problem. Most commands write events, so every commit wakes this
/// replica's relay.
pub(crate) async fn commit(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), ApiError> {
    orion_persistence::outbox::commit(tx)
        .await
        .map_err(ApiError::from)
}

/// A trimmed display name of 1 to 200 characters without control characters (PostgreSQL refuses
/// NUL in text, and the others have no business in a name).
pub(crate) fn display_name<'a>(field: &str, raw: &'a str) -> Result<&'a str, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must be 1 to 200 characters, without control characters",
        ));
    }
    Ok(name)
}
