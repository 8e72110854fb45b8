//! Webhook endpoints and their deliveries. A delivery row is the durable queue of one event for
//! one endpoint: created when the worker fans the event out (at most once per endpoint and
//! event), leased while an attempt runs, and moved on by each attempt's result. A worker killed
//! mid-attempt leaves the lease to run out, and the delivery is tried again with the same
//! `webhook-id`.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result};

/// A registered endpoint, secrets included (the API never shows them after creation, and its
/// `Debug` leaves them out, so a log line cannot carry them).
#[derive(Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .finish_non_exhaustive()
    }
}

/// A new endpoint (its `Debug` leaves the secret out).
#[derive(Clone)]
pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub url: &'a str,
    pub events: &'a [String],
    pub description: Option<&'a str>,
    pub secret: &'a str,
}

impl std::fmt::Debug for NewEndpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// What a `PATCH` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

pub async fn insert_endpoint(
    conn: &mut PgConnection,
    new: &NewEndpoint<'_>,
    now: OffsetDateTime,
) -> Result<Endpoint> {
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"insert into webhook_endpoints (id, url, events, description, secret, created_at, updated_at)
           values ($1, $2, $3, $4, $5, $6, $6)
           returning id, url, events, description, enabled, disabled_reason, secret,
                     previous_secret, previous_secret_expires_at, failing_since, created_at,
                     updated_at"#,
        new.id,
        new.url,
        new.events,
        new.description,
        new.secret,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(endpoint)
}

/// Every endpoint, oldest first (a shop has a handful).
pub async fn list_endpoints(conn: &mut PgConnection) -> Result<Vec<Endpoint>> {
    let endpoints = sqlx::query_as!(
        Endpoint,
        r#"select id, url, events, description, enabled, disabled_reason, secret,
                  previous_secret, previous_secret_expires_at, failing_since, created_at, updated_at
           from webhook_endpoints order by created_at, id"#
    )
    .fetch_all(conn)
    .await?;
    Ok(endpoints)
}

pub async fn find_endpoint(conn: &mut PgConnection, id: Uuid) -> Result<Option<Endpoint>> {
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"select id, url, events, description, enabled, disabled_reason, secret,
                  previous_secret, previous_secret_expires_at, failing_since, created_at, updated_at
           from webhook_endpoints where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(endpoint)
}

/// Applies a change; enabling a disabled endpoint forgets why it was disabled and how long it
/// failed.
pub async fn update_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    change: &EndpointChange,
    now: OffsetDateTime,
) -> Result<Option<Endpoint>> {
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"update webhook_endpoints
           set url = coalesce($2, url),
               events = coalesce($3, events),
               description = case when $4 then $5 else description end,
               enabled = coalesce($6, enabled),
               -- Only a real change moves the state: disabling an endpoint Orion disabled
               -- keeps Orion's reason, enabling an enabled one keeps its failure record.
               disabled_reason = case when $6 and not enabled then null
                                      when $6 = false and enabled then 'disabled by an admin'
                                      else disabled_reason end,
               failing_since = case when $6 and not enabled then null else failing_since end,
               last_failed_at = case when $6 and not enabled then null else last_failed_at end,
               updated_at = $7
           where id = $1
           returning id, url, events, description, enabled, disabled_reason, secret,
                     previous_secret, previous_secret_expires_at, failing_since, created_at,
                     updated_at"#,
        id,
        change.url,
        change.events.as_deref(),
        change.description.is_some(),
        change.description.clone().flatten(),
        change.enabled,
        now,
    )
    .fetch_optional(conn)
    .await?;
    Ok(endpoint)
}

/// Deletes an endpoint and its deliveries; whether there was one.
pub async fn delete_endpoint(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let deleted = sqlx::query!("delete from webhook_endpoints where id = $1", id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Makes `secret` the signing secret; the current one keeps signing beside it until `until`.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
    until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<Endpoint>> {
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"update webhook_endpoints
           set previous_secret = secret, previous_secret_expires_at = $3, secret = $2,
               updated_at = $4
           where id = $1
           returning id, url, events, description, enabled, disabled_reason, secret,
                     previous_secret, previous_secret_expires_at, failing_since, created_at,
                     updated_at"#,
        id,
        secret,
        until,
        now,
    )
    .fetch_optional(conn)
    .await?;
    Ok(endpoint)
}

/// The enabled endpoints that want events of `event_type`.
pub async fn subscribers(conn: &mut PgConnection, event_type: &str) -> Result<Vec<Uuid>> {
    let ids = sqlx::query_scalar!(
        r#"select id from webhook_endpoints
           where enabled and (events @> array[$1]::text[] or events @> array['*']::text[])"#,
        event_type
    )
    .fetch_all(conn)
    .await?;
    Ok(ids)
}

/// Disables an enabled endpoint; whether it was enabled (so that only the first caller tells
/// the admins).
pub async fn disable_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let done = sqlx::query!(
        r#"update webhook_endpoints set enabled = false, disabled_reason = $2, updated_at = $3
           where id = $1 and enabled"#,
        id,
        reason,
        now,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Notes a failed attempt; returns since when the endpoint has been failing, and the
/// database's time now. A failure after `quiet` without any (a receiver fixed, then a long
/// pause in traffic) starts a new run rather than continuing an old one.
pub async fn mark_failing(
    conn: &mut PgConnection,
    id: Uuid,
    quiet: std::time::Duration,
) -> Result<Option<(OffsetDateTime, OffsetDateTime)>> {
    let row = sqlx::query!(
        r#"update webhook_endpoints
           set failing_since = case
                   when failing_since is null
                     or last_failed_at < now() - $2::float8 * interval '1 second' then now()
                   else failing_since end,
               last_failed_at = now()
           where id = $1
           returning failing_since as "failing_since!", now() as "now!""#,
        id,
        quiet.as_secs_f64(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.failing_since, r.now)))
}

/// Notes a delivered attempt: the endpoint is healthy again.
pub async fn mark_healthy(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query!(
        r#"update webhook_endpoints set failing_since = null, last_failed_at = null
           where id = $1 and failing_since is not null"#,
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for its next attempt (or in one).
    Pending,
    Delivered,
    /// Gave up: the schedule ran out, or the endpoint answered `410 Gone`.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == raw)
            .ok_or_else(|| Error::corrupt("webhook_deliveries", format!("outcome {raw:?}")))
    }
}

/// A delivery as the admins see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub outcome: Outcome,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

struct DeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_latency_ms: Option<i32>,
    last_error: Option<String>,
    outcome: String,
    next_attempt_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            outcome: Outcome::parse(&row.outcome)?,
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type: row.event_type,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_latency_ms: row.last_latency_ms,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// One event to deliver to some endpoints.
#[derive(Debug, Clone)]
pub struct NewDeliveries<'a> {
    /// (delivery id, endpoint id) pairs.
    pub targets: &'a [(Uuid, Uuid)],
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub payload: &'a str,
}

/// Queues an event for its endpoints, due at once; an endpoint that already has this event
/// (a redelivered message) keeps its delivery. Returns how many were queued.
pub async fn insert_deliveries(
    conn: &mut PgConnection,
    new: &NewDeliveries<'_>,
    now: OffsetDateTime,
) -> Result<u64> {
    let (ids, endpoints): (Vec<Uuid>, Vec<Uuid>) = new.targets.iter().copied().unzip();
    let inserted = sqlx::query!(
        r#"insert into webhook_deliveries
               (id, endpoint_id, event_id, event_type, payload, next_attempt_at, created_at, updated_at)
           select t.id, t.endpoint_id, $3, $4, $5, $6, $6, $6
           from unnest($1::uuid[], $2::uuid[]) as t(id, endpoint_id)
           on conflict (endpoint_id, event_id) do nothing"#,
        &ids,
        &endpoints,
        new.event_id,
        new.event_type,
        new.payload,
        now,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected())
}

/// A delivery whose attempt is due, with what sending it needs (its `Debug` leaves the secrets
/// out).
#[derive(Clone)]
pub struct DueDelivery {
    pub id: Uuid,
    /// This claim's: only it can record the attempt's result.
    pub lease: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub payload: String,
    /// Attempts made, this one included.
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    /// Still signing beside `secret` (until its rotation's grace ends).
    pub previous_secret: Option<String>,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("event_id", &self.event_id)
            .field("attempts", &self.attempts)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Leases up to `limit` due deliveries of enabled endpoints for `lease` (on the database's
/// clock), counting the attempt, with at most `per_endpoint` of one endpoint's in flight at once
/// (so a receiver that hangs holds back only its own deliveries). Two workers never take the same
/// delivery; a lease that runs out (a worker killed mid-attempt) makes its delivery due again.
pub async fn claim_due(
    conn: &mut PgConnection,
    limit: i64,
    per_endpoint: i64,
    lease: std::time::Duration,
) -> Result<Vec<DueDelivery>> {
    let due = sqlx::query_as!(
        DueDelivery,
        r#"with in_flight as (
               select endpoint_id, count(*) as n from webhook_deliveries
               where outcome = 'pending' and lease is not null and next_attempt_at > now()
               group by endpoint_id),
           candidates as (
               select d.id,
                      row_number() over (partition by d.endpoint_id
                                         order by d.next_attempt_at, d.id)
                          + coalesce(f.n, 0) as place
               from webhook_deliveries d
               join webhook_endpoints e on e.id = d.endpoint_id
               left join in_flight f on f.endpoint_id = d.endpoint_id
               where d.outcome = 'pending' and d.next_attempt_at <= now() and e.enabled),
           due as (
               select d.id from webhook_deliveries d
               where d.id in (select id from candidates where place <= $2)
                 -- Re-checked on the locked row: one another worker claimed or recorded
                 -- meanwhile is no longer due.
                 and d.outcome = 'pending' and d.next_attempt_at <= now()
               order by d.next_attempt_at
               limit $1
               for update of d skip locked)
           update webhook_deliveries d
           set attempts = d.attempts + 1, lease = gen_random_uuid(),
               next_attempt_at = now() + $3::float8 * interval '1 second', updated_at = now()
           from due, webhook_endpoints e
           where d.id = due.id and e.id = d.endpoint_id
           returning d.id, d.lease as "lease!", d.endpoint_id, d.event_id, d.payload, d.attempts,
                     e.url, e.secret,
                     case when e.previous_secret_expires_at > now() then e.previous_secret end
                         as previous_secret"#,
        limit,
        per_endpoint,
        lease.as_secs_f64(),
    )
    .fetch_all(conn)
    .await?;
    Ok(due)
}

/// The result of an attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult<'a> {
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<&'a str>,
    pub outcome: Outcome,
    /// How long until a pending delivery is tried again.
    pub retry_in: Option<std::time::Duration>,
}

/// Records an attempt's result on a delivery, if the attempt still holds its lease; whether it
/// did. One that does not (its lease ran out and another attempt took over, or an admin replayed
/// the delivery meanwhile) records nothing: the newer attempt's word stands.
pub async fn record_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    lease: Uuid,
    result: &AttemptResult<'_>,
) -> Result<bool> {
    let done = sqlx::query!(
        r#"update webhook_deliveries
           set last_status_code = $3, last_latency_ms = $4, last_error = $5, outcome = $6,
               next_attempt_at = now() + $7::float8 * interval '1 second', lease = null,
               updated_at = now()
           where id = $1 and lease = $2"#,
        id,
        lease,
        result.status_code,
        result.latency_ms,
        result.error,
        result.outcome.as_str(),
        result.retry_in.map(|d| d.as_secs_f64()),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes finished deliveries (delivered or failed) last changed before `before`; how many.
pub async fn delete_finished_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> Result<u64> {
    let done = sqlx::query!(
        "delete from webhook_deliveries where outcome <> 'pending' and updated_at < $1",
        before
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// An endpoint's deliveries, newest first, after the (created_at, id) of the previous page.
pub async fn list_deliveries(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let (after_time, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"select id, endpoint_id, event_id, event_type, attempts, last_status_code,
                  last_latency_ms, last_error, outcome, next_attempt_at, created_at, updated_at
           from webhook_deliveries
           where endpoint_id = $1
             and ($2::timestamptz is null or (created_at, id) < ($2, $3))
           order by created_at desc, id desc
           limit $4"#,
        endpoint_id,
        after_time,
        after_id,
        limit,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// Sends a delivery again, at once and with a fresh schedule (an admin's replay); `None` when
/// the endpoint has no such delivery. An attempt in flight loses its lease: its result is not
/// recorded over the replay's.
pub async fn replay_delivery(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<Delivery>> {
    let row = sqlx::query_as!(
        DeliveryRow,
        r#"update webhook_deliveries
           set outcome = 'pending', attempts = 0, next_attempt_at = $3, lease = null,
               updated_at = $3
           where id = $2 and endpoint_id = $1
           returning id, endpoint_id, event_id, event_type, attempts, last_status_code,
                     last_latency_ms, last_error, outcome, next_attempt_at, created_at, updated_at"#,
        endpoint_id,
        id,
        now,
    )
    .fetch_optional(conn)
    .await?;
    row.map(Delivery::try_from).transpose()
}
