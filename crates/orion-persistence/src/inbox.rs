//! The consumers' inbox: which messages each consumer has handled.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// Records that `consumer` handled `message_id`, in the caller's transaction. Returns false when
/// it was recorded before: the message is a redelivery or a duplicate, and the handler must do
/// nothing.
pub async fn record_message(
    conn: &mut PgConnection,
    consumer: &str,
    message_id: Uuid,
) -> Result<bool> {
    let inserted = sqlx::query!(
        "insert into inbox (consumer, message_id) values ($1, $2) on conflict on constraint inbox_consumer_message_uq do nothing",
        consumer,
        message_id,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Records that `consumer` handled each of `message_ids`, in the caller's transaction, in one
/// statement. Returns those recorded now; the others were handled before.
pub async fn record_messages(
    conn: &mut PgConnection,
    consumer: &str,
    message_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>> {
    let inserted = sqlx::query_scalar!(
        r#"insert into inbox (consumer, message_id)
           select $1, id from unnest($2::uuid[]) as m(id)
           on conflict on constraint inbox_consumer_message_uq do nothing
           returning message_id"#,
        consumer,
        message_ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Which of `message_ids` `consumer` has handled already, in one statement.
pub async fn handled_of(
    conn: &mut PgConnection,
    consumer: &str,
    message_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>> {
    let found = sqlx::query_scalar!(
        "select message_id from inbox where consumer = $1 and message_id = any($2)",
        consumer,
        message_ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(found.into_iter().collect())
}

/// Whether `consumer` has handled `message_id` already: a cheap early exit before work that the
/// handler's own transaction will guard anyway.
pub async fn contains(conn: &mut PgConnection, consumer: &str, message_id: Uuid) -> Result<bool> {
    let found = sqlx::query_scalar!(
        "select exists (select 1 from inbox where consumer = $1 and message_id = $2)",
        consumer,
        message_id,
    )
    .fetch_one(conn)
    .await?;
    Ok(found.unwrap_or(false))
}

/// Forgets messages handled before `before` (longer ago than any retry path), returning how many.
pub async fn delete_handled_before(conn: &mut PgConnection, before: OffsetDateTime) -> Result<u64> {
    let done = sqlx::query!("delete from inbox where processed_at < $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
