//! Domain events leaving a transaction: the outbox (to be published) and the event log (the
//! permanent audit every timeline is read from). Both are written by the caller's transaction,
//! together with the state change the event describes.

use orion_domain::{DomainEvent, OrderId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

use crate::{Error, Result};

/// Where an event came from: carried in the envelope and stored with the event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Shared by every event caused, directly or not, by one request.
    pub correlation_id: Option<Uuid>,
    /// The event or request that caused this one.
    pub causation_id: Option<Uuid>,
    /// W3C trace context of the operation that wrote the event.
    pub traceparent: Option<String>,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub id: Uuid,
    pub event: DomainEvent,
    pub occurred_at: OffsetDateTime,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

/// Writes one event to the outbox and the event log under a new id, which it returns.
pub async fn record_event(
    conn: &mut PgConnection,
    event: &DomainEvent,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<Uuid> {
    let span = tracing::info_span!("record_event", event.type = %event.event_type());
    // Under the caller's span where there is one (a request, a saga step); otherwise (a batch
    // handler, where no one message's span is current) under the span the metadata names, so
    // that the event stays in its message's trace.
    if tracing::Span::current().is_none() {
        orion_telemetry::propagation::set_parent(&span, metadata.traceparent.as_deref());
    }
    // This span becomes the parent of the event's publication: the relay continues the trace
    // from the row, in whichever process it runs. Without trace context (no OpenTelemetry
    // layer) the caller's own value is kept.
    let traced =
        orion_telemetry::propagation::traceparent(&span).map(|traceparent| EventMetadata {
            traceparent: Some(traceparent),
            ..metadata.clone()
        });
    let metadata = traced.as_ref().unwrap_or(metadata);
    let id = Uuid::now_v7();
    async {
        append_outbox(conn, id, event, metadata, now).await?;
        append_event_log(conn, id, event, metadata, now).await
    }
    .instrument(span)
    .await?;
    Ok(id)
}

/// Queues an event for publication.
pub async fn append_outbox(
    conn: &mut PgConnection,
    id: Uuid,
    event: &DomainEvent,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<()> {
    let event_type = event.event_type();
    let headers = serde_json::to_value(metadata).map_err(|e| Error::corrupt("outbox", e))?;
    sqlx::query!(
        r#"insert into outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, created_at)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        id,
        event_type.aggregate_type(),
        event.subject(),
        event_type.as_str(),
        event.data(),
        headers,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends an event to the permanent log.
pub async fn append_event_log(
    conn: &mut PgConnection,
    id: Uuid,
    event: &DomainEvent,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<()> {
    let event_type = event.event_type();
    sqlx::query!(
        r#"insert into event_log
               (id, aggregate_type, aggregate_id, order_id, event_type, data, correlation_id, causation_id, occurred_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        id,
        event_type.aggregate_type(),
        event.subject(),
        event.order_id().map(|o| o.as_uuid()),
        event_type.as_str(),
        event.data(),
        metadata.correlation_id,
        metadata.causation_id,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every logged event of one order, oldest first.
pub async fn order_events(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<LoggedEvent>> {
    let rows = sqlx::query!(
        r#"select id, event_type, data, occurred_at, correlation_id, causation_id
           from event_log where order_id = $1 order by seq"#,
        order_id.as_uuid(),
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(LoggedEvent {
                id: r.id,
                event: DomainEvent::from_parts(&r.event_type, r.data)
                    .map_err(|e| Error::corrupt("event_log", e))?,
                occurred_at: r.occurred_at,
                correlation_id: r.correlation_id,
                causation_id: r.causation_id,
            })
        })
        .collect()
}

/// Events written but not yet confirmed by the broker.
pub async fn unpublished_count(conn: &mut PgConnection) -> Result<i64> {
    let count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from outbox where published_at is null"#
    )
    .fetch_one(conn)
    .await?;
    Ok(count)
}
