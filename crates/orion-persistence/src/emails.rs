//! Email deliveries: one row per email Orion means to send, keyed by a dedupe key (for example
//! `order:<id>:order_confirmed`) so that at most one email of a kind goes out per order, however
//! often the event that asks for it is delivered.

use orion_domain::OrderId;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not sent yet, or waiting for another attempt.
    Pending,
    /// An SMTP conversation is under way (until `next_attempt_at`).
    Sending,
    Sent,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [Self::Pending, Self::Sending, Self::Sent, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Every kind of email Orion sends, as stored in `email_deliveries.kind` (whose check lists the
/// same; a test holds the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    OrderReceived,
    OrderConfirmed,
    OrderFailed,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
    LowStockAlert,
    AccountExists,
    WebhookDisabled,
}

impl EmailKind {
    pub const ALL: [EmailKind; 9] = [
        Self::OrderReceived,
        Self::OrderConfirmed,
        Self::OrderFailed,
        Self::OrderCancelled,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::LowStockAlert,
        Self::AccountExists,
        Self::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderReceived => "order_received",
            Self::OrderConfirmed => "order_confirmed",
            Self::OrderFailed => "order_failed",
            Self::OrderCancelled => "order_cancelled",
            Self::OrderShipped => "order_shipped",
            Self::OrderDelivered => "order_delivered",
            Self::LowStockAlert => "low_stock_alert",
            Self::AccountExists => "account_exists",
            Self::WebhookDisabled => "webhook_disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// An email to send.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub dedupe_key: &'a str,
    pub order_id: Option<OrderId>,
    pub kind: &'a str,
    pub recipient: &'a str,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub dedupe_key: String,
    pub order_id: Option<OrderId>,
    pub kind: String,
    pub recipient: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub provider_message_id: Option<String>,
    /// When a pending delivery may be tried again, or when a sending one's lease ends.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

struct DeliveryRow {
    id: Uuid,
    dedupe_key: String,
    order_id: Option<Uuid>,
    kind: String,
    recipient: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    provider_message_id: Option<String>,
    next_attempt_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            status: DeliveryStatus::parse(&row.status).ok_or_else(|| {
                Error::corrupt("email_deliveries", format!("status {:?}", row.status))
            })?,
            id: row.id,
            dedupe_key: row.dedupe_key,
            order_id: row.order_id.map(OrderId::from_uuid),
            kind: row.kind,
            recipient: row.recipient,
            attempts: row.attempts,
            last_error: row.last_error,
            provider_message_id: row.provider_message_id,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            sent_at: row.sent_at,
        })
    }
}

/// Finds the delivery with this dedupe key, creating it `pending` if there is none, and locks it
/// until the transaction ends so that two copies of one event cannot both send.
pub async fn claim_delivery(conn: &mut PgConnection, new: &NewDelivery<'_>) -> Result<Delivery> {
    sqlx::query!(
        r#"insert into email_deliveries (id, dedupe_key, order_id, kind, recipient)
           values ($1, $2, $3, $4, $5)
           on conflict on constraint email_deliveries_dedupe_uq do nothing"#,
        Uuid::now_v7(),
        new.dedupe_key,
        new.order_id.map(|id| id.as_uuid()),
        new.kind,
        new.recipient,
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query_as!(
        DeliveryRow,
        r#"select id, dedupe_key, order_id, kind, recipient, status, attempts, last_error,
                  provider_message_id, next_attempt_at, created_at, updated_at, sent_at
           from email_deliveries where dedupe_key = $1 for update"#,
        new.dedupe_key,
    )
    .fetch_one(conn)
    .await?;
    row.try_into()
}

/// An SMTP conversation starts now and may last until `lease_until`; committed before the
/// conversation, so a worker that dies during it leaves the delivery `sending`.
pub async fn mark_sending(
    conn: &mut PgConnection,
    id: Uuid,
    lease_until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<()> {
    sqlx::query!(
        r#"update email_deliveries
           set status = 'sending', next_attempt_at = $2, updated_at = $3
           where id = $1"#,
        id,
        lease_until,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The SMTP server accepted the message.
pub async fn mark_sent(
    conn: &mut PgConnection,
    id: Uuid,
    provider_message_id: &str,
    now: OffsetDateTime,
) -> Result<()> {
    sqlx::query!(
        r#"update email_deliveries
           set status = 'sent', attempts = attempts + 1, last_error = null,
               provider_message_id = $2, sent_at = $3, next_attempt_at = null, updated_at = $3
           where id = $1"#,
        id,
        provider_message_id,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A send failed; the delivery stays `pending` for another attempt at `next_attempt_at`, or is
/// `failed` for good when that is `None`. Returns the attempts made so far.
pub async fn mark_attempt_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    next_attempt_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<i32> {
    let status = if next_attempt_at.is_some() {
        DeliveryStatus::Pending
    } else {
        DeliveryStatus::Failed
    };
    let attempts = sqlx::query_scalar!(
        r#"update email_deliveries
           set status = $2, attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
               updated_at = $5
           where id = $1
           returning attempts"#,
        id,
        status.as_str(),
        error,
        next_attempt_at,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(attempts)
}

/// Deliveries, newest first, optionally of one status, at most `limit`, after the (created_at,
/// id) of the previous page.
pub async fn list_deliveries(
    conn: &mut PgConnection,
    status: Option<DeliveryStatus>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let (after_time, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"select id, dedupe_key, order_id, kind, recipient, status, attempts, last_error,
                  provider_message_id, next_attempt_at, created_at, updated_at, sent_at
           from email_deliveries
           where ($1::text is null or status = $1)
             and ($2::timestamptz is null or (created_at, id) < ($2, $3))
           order by created_at desc, id desc
           limit $4"#,
        status.map(DeliveryStatus::as_str),
        after_time,
        after_id,
        limit,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// Every delivery of one order, oldest first.
pub async fn order_deliveries(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<Delivery>> {
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"select id, dedupe_key, order_id, kind, recipient, status, attempts, last_error,
                  provider_message_id, next_attempt_at, created_at, updated_at, sent_at
           from email_deliveries where order_id = $1
           order by created_at, id"#,
        order_id.as_uuid(),
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Delivery::try_from).collect()
}
