//! Remembered responses for requests sent with an `Idempotency-Key`.
//!
//! A request takes a transaction-scoped advisory lock on (principal, key) before looking, so
//! concurrent requests with one key run one after the other: the first does the work and stores
//! its response in its own transaction; the rest find it and replay it.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// A stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: i16,
    pub body: serde_json::Value,
    pub resource_id: Option<Uuid>,
}

/// Locks (principal, key) until the transaction ends and returns the stored response, if any.
pub async fn lock_and_find(
    conn: &mut PgConnection,
    principal: &str,
    key: &str,
) -> Result<Option<StoredResponse>> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0))",
        principal,
        key
    )
    .execute(&mut *conn)
    .await?;
    let stored = sqlx::query_as!(
        StoredResponse,
        r#"select request_hash, response_status as status, response_body as body, resource_id
           from idempotency_keys where principal = $1 and key = $2"#,
        principal,
        key,
    )
    .fetch_optional(conn)
    .await?;
    Ok(stored)
}

pub async fn store(
    conn: &mut PgConnection,
    principal: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<()> {
    sqlx::query!(
        r#"insert into idempotency_keys (principal, key, request_hash, response_status, response_body, resource_id)
           values ($1, $2, $3, $4, $5, $6)"#,
        principal,
        key,
        response.request_hash,
        response.status,
        response.body,
        response.resource_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}
