//! The relay's side of the outbox: claiming rows to publish, and recording the outcome.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` and a lease (`claimed_until`), so any number of relays can
//! run: none waits on another, and a crashed relay's rows come back when its lease ends. A row is
//! claimable only when no earlier row of the same aggregate is still unpublished, which keeps
//! each aggregate's events in order across relays.
//!
//! A process wakes its own relays when it commits events ([`commit`]); each relay also polls, which
//! covers rows another process wrote and could not relay. `LISTEN/NOTIFY` is not used: each
//! notifying commit takes a database-wide lock at commit, and each listening session spends a
//! transaction of its own reading the notifications.

use std::sync::LazyLock;

use sqlx::{PgConnection, Postgres, Transaction};
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;
use uuid::Uuid;

use crate::Result;
use crate::events::EventMetadata;

/// Counts this process's commits that may have written events; relays watch it.
static COMMITTED: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// Commits a transaction that may have written events, then wakes this process's relays.
pub async fn commit(tx: Transaction<'_, Postgres>) -> Result<()> {
    tx.commit().await?;
    COMMITTED.send_modify(|count| *count = count.wrapping_add(1));
    Ok(())
}

/// What a relay waits on: changes whenever this process committed events since it last looked.
/// Wake-ups coalesce: many commits during a round are one change seen after it.
pub fn committed() -> watch::Receiver<u64> {
    COMMITTED.subscribe()
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub seq: i64,
    pub id: Uuid,
    pub aggregate_id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub created_at: OffsetDateTime,
    pub attempts: i32,
}

/// Claims up to `limit` publishable events for `lease`, oldest first.
///
/// Order per aggregate: a row is a candidate only if no earlier unpublished row of its aggregate
/// is held (by another relay's lease, or backing off after a failure), so the limit is spent on
/// rows that can go now and a blocked aggregate never stalls the others. Of the candidates, a row
/// is claimed only if every earlier unpublished row of its aggregate is claimed with it. So a
/// batch may hold several events of one order, which the caller publishes in `seq` order, but
/// never an event whose predecessor is with another relay. Leases are on the database's clock,
/// which every relay shares, whatever its own host's clock says.
pub async fn claim_outbox_batch(
    conn: &mut PgConnection,
    limit: i64,
    lease: Duration,
) -> Result<Vec<PendingEvent>> {
    let rows = sqlx::query!(
        r#"with picked as materialized (
               select c.seq, c.aggregate_id from outbox c
               where c.published_at is null
                 and (c.claimed_until is null or c.claimed_until < now())
                 and not exists (
                     select 1 from outbox h
                     where h.aggregate_id = c.aggregate_id and h.published_at is null
                       and h.seq < c.seq and h.claimed_until >= now())
               order by c.seq
               limit $1
               for update skip locked
           ),
           eligible as (
               select p.seq from picked p
               where not exists (
                   select 1 from outbox e
                   where e.aggregate_id = p.aggregate_id and e.published_at is null and e.seq < p.seq
                     and e.seq not in (select seq from picked))
           )
           update outbox o
           set claimed_until = now() + $2::float8 * interval '1 millisecond',
               attempts = o.attempts + 1
           from eligible
           where o.seq = eligible.seq
           returning o.seq, o.id, o.aggregate_id, o.event_type, o.payload, o.headers, o.created_at, o.attempts"#,
        limit,
        lease.as_seconds_f64() * 1000.0,
    )
    .fetch_all(conn)
    .await?;
    let mut events: Vec<PendingEvent> = rows
        .into_iter()
        .map(|r| PendingEvent {
            seq: r.seq,
            id: r.id,
            aggregate_id: r.aggregate_id,
            event_type: r.event_type,
            payload: r.payload,
            metadata: serde_json::from_value(r.headers).unwrap_or_default(),
            created_at: r.created_at,
            attempts: r.attempts,
        })
        .collect();
    events.sort_by_key(|e| e.seq);
    Ok(events)
}

/// Marks events published: only ever after the broker confirmed them. Returns whether a later
/// event of one of their aggregates is waiting: it could not be claimed while these were held, and
/// it may have been written by another process, whose relay is not woken when these are marked.
pub async fn mark_published(
    conn: &mut PgConnection,
    seqs: &[i64],
    now: OffsetDateTime,
) -> Result<bool> {
    // The outer query sees the rows as they were before this statement's update, so the rows
    // being marked are left out by their `seq`.
    let waiting = sqlx::query_scalar!(
        r#"with marked as (
               update outbox set published_at = $2, claimed_until = null, last_error = null
               where seq = any($1)
               returning aggregate_id, seq
           )
           select exists (
               select 1 from marked m
               join outbox e on e.aggregate_id = m.aggregate_id
               where e.published_at is null and e.seq > m.seq and e.seq <> all($1)
           ) as "waiting!""#,
        seqs,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(waiting)
}

/// Records a failed publication and keeps the row away for `backoff` (on the database's clock),
/// so a poison row is retried with backoff instead of spinning.
pub async fn mark_failed(
    conn: &mut PgConnection,
    seq: i64,
    error: &str,
    backoff: Duration,
) -> Result<()> {
    sqlx::query!(
        "update outbox set last_error = $2, claimed_until = now() + $3::float8 * interval '1 millisecond' where seq = $1",
        seq,
        error,
        backoff.as_seconds_f64() * 1000.0,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Age of the oldest unpublished event, in seconds (0 when there is none): the relay's lag.
pub async fn outbox_lag_seconds(conn: &mut PgConnection, now: OffsetDateTime) -> Result<f64> {
    let oldest =
        sqlx::query_scalar!("select min(created_at) from outbox where published_at is null")
            .fetch_one(conn)
            .await?;
    Ok(oldest.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0)))
}

/// Deletes events published before `before`; returns how many.
pub async fn delete_published_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> Result<u64> {
    let done = sqlx::query!("delete from outbox where published_at < $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Gives claimed rows back at once, unattempted (the broker went away mid-batch, or the round ran
/// out of time), so an outage does not count against the rows' backoff.
pub async fn release_claims(conn: &mut PgConnection, seqs: &[i64]) -> Result<()> {
    sqlx::query!(
        "update outbox set claimed_until = null, attempts = greatest(attempts - 1, 0) \
         where seq = any($1) and published_at is null",
        seqs
    )
    .execute(conn)
    .await?;
    Ok(())
}
