//! Parked messages, copied out of `orion.dead` so that admins can read and replay them.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A parked message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: Uuid,
    pub message_id: Option<String>,
    pub event_type: Option<String>,
    pub origin_queue: String,
    pub error: String,
    pub attempts: i32,
    pub content_type: Option<String>,
    /// The AMQP headers, as JSON.
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub parked_at: OffsetDateTime,
    pub replayed_at: Option<OffsetDateTime>,
    pub replay_count: i32,
}

/// Stores a parked message.
pub async fn insert_dead_letter(conn: &mut PgConnection, letter: &DeadLetter) -> Result<()> {
    sqlx::query!(
        r#"insert into dead_letters
               (id, message_id, event_type, origin_queue, error, attempts, content_type, headers, body, parked_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        letter.id,
        letter.message_id,
        letter.event_type,
        letter.origin_queue,
        letter.error,
        letter.attempts,
        letter.content_type,
        letter.headers,
        letter.body,
        letter.parked_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Parked messages, newest first, after the `(parked_at, id)` cursor, at most `limit`.
pub async fn list_dead_letters(
    conn: &mut PgConnection,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<DeadLetter>> {
    let (after_time, after_id) = after.unzip();
    let letters = sqlx::query_as!(
        DeadLetter,
        r#"select id, message_id, event_type, origin_queue, error, attempts, content_type, headers,
                  body, parked_at, replayed_at, replay_count
           from dead_letters
           where ($1::timestamptz is null or (parked_at, id) < ($1, $2::uuid))
           order by parked_at desc, id desc
           limit $3"#,
        after_time,
        after_id,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(letters)
}

/// One parked message, locked until the transaction ends so two replays of it are serialized.
pub async fn lock_dead_letter(conn: &mut PgConnection, id: Uuid) -> Result<Option<DeadLetter>> {
    let letter = sqlx::query_as!(
        DeadLetter,
        r#"select id, message_id, event_type, origin_queue, error, attempts, content_type, headers,
                  body, parked_at, replayed_at, replay_count
           from dead_letters where id = $1 for update"#,
        id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(letter)
}

/// Records that a parked message was sent back to its queue.
pub async fn mark_replayed(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<DeadLetter> {
    let letter = sqlx::query_as!(
        DeadLetter,
        r#"update dead_letters set replayed_at = $2, replay_count = replay_count + 1
           where id = $1
           returning id, message_id, event_type, origin_queue, error, attempts, content_type,
                     headers, body, parked_at, replayed_at, replay_count"#,
        id,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(letter)
}
