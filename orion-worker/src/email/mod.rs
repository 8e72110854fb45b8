//! Lifecycle email: the `orion.email` consumer turns order events and low-stock alerts into
//! emails, at most one per order and kind (the delivery's dedupe key), retried with the queue's
//! backoff and finally marked failed, each outcome an `email.sent` or `email.failed` event.
//!
//! The delivery row stays locked while the SMTP server is talking, so two copies of one event
//! never both send. A crash after the server accepted a message but before the commit would send
//! it again; the Message-ID is derived from the dedupe key so the resend is recognisable.

mod batch;
mod mailer;
mod templates;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use orion_domain::events::EmailDelivery;
use orion_domain::{DomainEvent, Money, OrderId};
use orion_messaging::{Envelope, Handler, HandlerError};
use orion_persistence::emails::{self, DeliveryStatus, NewDelivery};
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::{PgConnection, Pool, inbox, inventory, orders, outbox, users};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use mailer::Mailer;
pub use templates::{EmailKind, Rendered, Templates};

use crate::{Error, Result};

/// The inbox name of the email consumer.
pub const CONSUMER: &str = "email";

/// Tunables of the email consumer.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// Base URL of the shop, for links in emails.
    pub public_url: String,
    /// Sends tried for one email before it is marked failed.
    pub max_attempts: u32,
}

/// One email to one recipient.
#[derive(Debug, Clone)]
struct Letter {
    recipient: String,
    dedupe_key: String,
    order_id: Option<OrderId>,
    values: Value,
}

/// Handles the `orion.email` queue.
#[derive(Debug, Clone)]
pub struct EmailHandler {
    pool: Pool,
    mailer: Mailer,
    templates: Arc<Templates>,
    settings: EmailSettings,
    /// Deliveries this process sent whose record could not be written yet (the database was
    /// away): when their message comes back, they are recorded sent, not taken for deliveries
    /// a dead worker left behind.
    sent_unrecorded: Arc<std::sync::Mutex<HashSet<uuid::Uuid>>>,
    /// Deliveries whose send this process saw fail and whose failure could not be recorded: left
    /// `sending`, they are tried again, not taken for a dead worker's.
    unsent_unrecorded: Arc<std::sync::Mutex<HashSet<uuid::Uuid>>>,
}

impl EmailHandler {
    pub fn new(
        pool: Pool,
        mailer: Mailer,
        templates: Arc<Templates>,
        settings: EmailSettings,
    ) -> Self {
        Self {
            pool,
            mailer,
            templates,
            settings,
            sent_unrecorded: Arc::default(),
            unsent_unrecorded: Arc::default(),
        }
    }

    fn sent_unrecorded(&self) -> std::sync::MutexGuard<'_, HashSet<uuid::Uuid>> {
        // A panic elsewhere cannot leave the set half-changed: recover it.
        self.sent_unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unsent_unrecorded(&self) -> std::sync::MutexGuard<'_, HashSet<uuid::Uuid>> {
        self.unsent_unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn handle_one(&self, envelope: Envelope) -> Result<(), HandlerError> {
        self.deliver_all(envelope)
            .await
            .map_err(Error::into_handler_error)
    }

    async fn deliver_all(&self, envelope: Envelope) -> Result<()> {
        let Some(kind) = templates::email_for(&envelope.kind) else {
            return Ok(());
        };
        // The reads in one transaction: one commit instead of one per statement.
        let mut tx = self.pool.begin().await?;
        if inbox::contains(&mut tx, CONSUMER, envelope.id).await? {
            return Ok(());
        }
        let event = DomainEvent::from_parts(&envelope.kind, envelope.data.clone())
            .map_err(|e| Error::Undecodable(e.to_string()))?;
        let letters = self.compose(&mut tx, kind, &event, envelope.id).await?;
        tx.commit().await?;
        let metadata = EventMetadata {
            correlation_id: envelope.correlation_id,
            causation_id: Some(envelope.id),
            traceparent: envelope.traceparent.clone(),
        };
        let count = letters.len();
        if count == 0 {
            let mut conn = self.pool.acquire().await?;
            inbox::record_message(&mut conn, CONSUMER, envelope.id).await?;
        }
        for (index, letter) in letters.into_iter().enumerate() {
            let inbox_id = (index + 1 == count).then_some(envelope.id);
            self.deliver(kind, letter, inbox_id, &metadata).await?;
        }
        Ok(())
    }

    /// Who gets what: the customer for order events, every admin for low-stock alerts and disabled
    /// webhooks, an
    /// account's owner when someone tries to register with their address.
    async fn compose(
        &self,
        conn: &mut PgConnection,
        kind: EmailKind,
        event: &DomainEvent,
        event_id: uuid::Uuid,
    ) -> Result<Vec<Letter>> {
        let base = self.settings.public_url.trim_end_matches('/');
        if let DomainEvent::InventoryLowStock(low) = event {
            let item_name = inventory::find_item(&mut *conn, &low.sku)
                .await?
                .map_or_else(|| low.sku.to_string(), |item| item.value.name().to_owned());
            let admins = users::admin_contacts(&mut *conn).await?;
            return Ok(admins
                .into_iter()
                .map(|(email, name)| Letter {
                    dedupe_key: format!("low_stock:{}:{event_id}:{email}", low.sku),
                    recipient: email,
                    order_id: None,
                    values: json!({
                        "name": name,
                        "sku": low.sku.as_str(),
                        "item_name": item_name,
                        "available": low.available,
                        "threshold": low.low_stock_threshold,
                        "admin_url": format!("{base}/admin"),
                    }),
                })
                .collect());
        }
        if let DomainEvent::WebhookDisabled(disabled) = event {
            let admins = users::admin_contacts(&mut *conn).await?;
            return Ok(admins
                .into_iter()
                .map(|(email, name)| Letter {
                    dedupe_key: format!(
                        "webhook_disabled:{}:{event_id}:{email}",
                        disabled.webhook_id
                    ),
                    recipient: email,
                    order_id: None,
                    values: json!({
                        "name": name,
                        "url": disabled.url,
                        "reason": disabled.reason,
                        "admin_url": format!("{base}/admin"),
                    }),
                })
                .collect());
        }
        if let DomainEvent::AccountRegistrationAttempted(attempt) = event {
            let Some(owner) = users::find_user(&mut *conn, attempt.user_id).await? else {
                return Ok(Vec::new());
            };
            // One such email a day at most, however often someone tries the address.
            let day = crate::now().date();
            return Ok(vec![Letter {
                dedupe_key: format!("account_exists:{}:{day}", attempt.user_id),
                recipient: owner.email,
                order_id: None,
                values: json!({
                    "name": owner.name,
                    "sign_in_url": format!("{base}/admin"),
                }),
            }]);
        }
        let Some(order_id) = event.order_id() else {
            return Ok(Vec::new());
        };
        let order = orders::find_order(&mut *conn, order_id)
            .await?
            .ok_or(Error::UnknownOrder(order_id))?;
        let Some(customer) = users::find_user(&mut *conn, order.customer_id().as_uuid()).await?
        else {
            tracing::warn!(order.id = %order_id, "the order's customer has no account; no email");
            return Ok(Vec::new());
        };
        let lines: Vec<Value> = order
            .lines()
            .iter()
            .map(|line| {
                let subtotal = Money::new(
                    line.unit_price
                        .amount()
                        .saturating_mul(i64::from(line.quantity.get())),
                    line.unit_price.currency(),
                )
                .map_or_else(|_| line.unit_price.to_string(), |m| m.to_string());
                json!({
                    "quantity": line.quantity.get(),
                    "name": line.name,
                    "sku": line.sku.as_str(),
                    "subtotal": subtotal,
                })
            })
            .collect();
        let reason = order
            .status()
            .failure_reason()
            .map_or("", |reason| reason.describe());
        let id = order_id.to_string();
        Ok(vec![Letter {
            dedupe_key: format!("order:{id}:{}", kind.as_str()),
            recipient: customer.email,
            order_id: Some(order_id),
            values: json!({
                "name": customer.name,
                "order_id": id,
                "reference": order_id.reference(),
                "order_url": format!("{base}/orders/{id}"),
                "reason": reason,
                "total": order.total().to_string(),
                "lines": lines,
            }),
        }])
    }

    /// Sends one email unless it went out (or failed for good) before.
    ///
    /// Three steps: claim the delivery and mark it `sending` (committed), talk to the SMTP
    /// server, record the outcome. A delivery found `sending` after its lease belongs to a worker
    /// that died mid-conversation; it is marked failed rather than sent again, because whether the
    /// server took it is unknown and a customer would rather miss a notice than get it twice.
    async fn deliver(
        &self,
        kind: EmailKind,
        letter: Letter,
        inbox_id: Option<uuid::Uuid>,
        metadata: &EventMetadata,
    ) -> Result<()> {
        let (mut tx, delivery, now) = loop {
            let now = crate::now();
            let mut tx = self.pool.begin().await?;
            let delivery = emails::claim_delivery(
                &mut tx,
                &NewDelivery {
                    dedupe_key: &letter.dedupe_key,
                    order_id: letter.order_id,
                    kind: kind.as_str(),
                    recipient: &letter.recipient,
                },
            )
            .await?;
            // Another worker is talking to the SMTP server about it (or was, and died): look
            // again shortly, until it is done or its lease ends. One this process sent itself
            // only waits for its record.
            let ours = self.sent_unrecorded().contains(&delivery.id)
                || self.unsent_unrecorded().contains(&delivery.id);
            match delivery.next_attempt_at {
                Some(lease)
                    if delivery.status == DeliveryStatus::Sending && lease > now && !ours =>
                {
                    drop(tx);
                    let wait = (lease - now)
                        .unsigned_abs()
                        .min(std::time::Duration::from_millis(200));
                    tokio::time::sleep(wait).await;
                }
                _ => break (tx, delivery, now),
            }
        };
        let outcome = Outcome {
            delivery_id: delivery.id,
            order_id: letter.order_id,
            kind,
            attempts: u32::try_from(delivery.attempts).unwrap_or(0) + 1,
            inbox_id,
        };
        let message_id = message_id(&letter);
        match delivery.status {
            DeliveryStatus::Sending if self.sent_unrecorded().contains(&delivery.id) => {
                drop(tx);
                return self.record_sent(&outcome, &message_id, metadata).await;
            }
            // This process saw its send fail: send it again, as a pending one.
            DeliveryStatus::Sending if self.unsent_unrecorded().remove(&delivery.id) => {}
            DeliveryStatus::Sent | DeliveryStatus::Failed => {
                if let Some(id) = inbox_id {
                    inbox::record_message(&mut tx, CONSUMER, id).await?;
                }
                tx.commit().await?;
                return Ok(());
            }
            DeliveryStatus::Sending => {
                let error = "the worker stopped while sending; the SMTP server may or may not have taken the message, so it is not sent again";
                return self.give_up(tx, &outcome, error, metadata, now).await;
            }
            DeliveryStatus::Pending => {}
        }
        let rendered = self.templates.render(kind, &letter.values)?;
        emails::mark_sending(&mut tx, delivery.id, now + SEND_LEASE, now).await?;
        tx.commit().await?;

        let sent = self
            .mailer
            .send(
                &letter.recipient,
                &message_id,
                &rendered,
                metadata.traceparent.as_deref(),
            )
            .await;

        if sent.is_ok() {
            self.record_sent(&outcome, &message_id, metadata).await?;
            outcome.observe_sent();
            return Ok(());
        }
        let now = crate::now();
        let mut tx = self.pool.begin().await?;
        match sent {
            Ok(()) => Ok(()),
            Err(error) if outcome.attempts < self.settings.max_attempts && error.is_transient() => {
                let retry_at = now + time::Duration::seconds(5);
                emails::mark_attempt_failed(
                    &mut tx,
                    delivery.id,
                    &error.to_string(),
                    Some(retry_at),
                    now,
                )
                .await?;
                // Without the inbox row: the retry must find this message unhandled.
                tx.commit().await?;
                metrics::counter!("emails_total", "kind" => kind.as_str(), "outcome" => "retried")
                    .increment(1);
                Err(error)
            }
            Err(error) => {
                self.give_up(tx, &outcome, &error.to_string(), metadata, now)
                    .await
            }
        }
    }

    /// Records that the SMTP server took the message. The email is out: a database that is away
    /// right now must not turn it into a failed (or, worse, a resent) one, so the record is tried
    /// again until the database answers, within the send lease that keeps other workers off it.
    async fn record_sent(
        &self,
        outcome: &Outcome,
        message_id: &str,
        metadata: &EventMetadata,
    ) -> Result<()> {
        let give_up_at = tokio::time::Instant::now() + RECORD_WINDOW;
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            let recorded = async {
                let mut tx = self.pool.begin().await?;
                write_sent(&mut tx, outcome, message_id, metadata, crate::now()).await?;
                outbox::commit(tx).await?;
                Ok::<(), Error>(())
            }
            .await;
            match recorded {
                Err(error)
                    if error.is_unavailable() && tokio::time::Instant::now() < give_up_at =>
                {
                    tracing::warn!(delivery.id = %outcome.delivery_id, %error, "email sent but the database is away; recording it again shortly");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(error) => {
                    // Still away: the message goes back to the queue, and its next delivery
                    // here records the send instead of doubting it.
                    self.sent_unrecorded().insert(outcome.delivery_id);
                    return Err(error);
                }
                Ok(()) => {
                    self.sent_unrecorded().remove(&outcome.delivery_id);
                    return Ok(());
                }
            }
        }
    }

    /// Marks a delivery failed for good, with its `email.failed` event.
    async fn give_up(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        outcome: &Outcome,
        error: &str,
        metadata: &EventMetadata,
        now: OffsetDateTime,
    ) -> Result<()> {
        write_failed(&mut tx, outcome, error, metadata, now).await?;
        outbox::commit(tx).await?;
        outcome.observe_failed(error);
        Ok(())
    }
}

impl Handler for EmailHandler {
    const BATCHES: bool = true;

    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self.handle_one(envelope)
    }

    fn handle_batch(
        &self,
        envelopes: Vec<Envelope>,
    ) -> impl Future<Output = Option<Vec<Result<(), HandlerError>>>> + Send {
        self.handle_many(envelopes)
    }
}

/// The Message-ID of a letter: derived from its dedupe key, so a resend is recognisable.
fn message_id(letter: &Letter) -> String {
    format!("{}@orion", letter.dedupe_key.replace([':', '@'], "."))
}

/// Records, in the caller's transaction, that the SMTP server took a delivery's message.
async fn write_sent(
    tx: &mut PgConnection,
    outcome: &Outcome,
    message_id: &str,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<()> {
    emails::mark_sent(&mut *tx, outcome.delivery_id, message_id, now).await?;
    let event = DomainEvent::EmailSent(outcome.report(None));
    events::record_event(&mut *tx, &event, metadata, now).await?;
    if let Some(id) = outcome.inbox_id {
        inbox::record_message(tx, CONSUMER, id).await?;
    }
    Ok(())
}

/// Records, in the caller's transaction, that a delivery failed for good, with its
/// `email.failed` event.
async fn write_failed(
    tx: &mut PgConnection,
    outcome: &Outcome,
    error: &str,
    metadata: &EventMetadata,
    now: OffsetDateTime,
) -> Result<()> {
    emails::mark_attempt_failed(&mut *tx, outcome.delivery_id, error, None, now).await?;
    let event = DomainEvent::EmailFailed(outcome.report(Some(error.to_owned())));
    events::record_event(&mut *tx, &event, metadata, now).await?;
    if let Some(id) = outcome.inbox_id {
        inbox::record_message(tx, CONSUMER, id).await?;
    }
    Ok(())
}

/// What the outcome of one delivery attempt is recorded with.
#[derive(Debug)]
struct Outcome {
    delivery_id: uuid::Uuid,
    order_id: Option<OrderId>,
    kind: EmailKind,
    attempts: u32,
    inbox_id: Option<uuid::Uuid>,
}

impl Outcome {
    fn observe_sent(&self) {
        metrics::counter!("emails_total", "kind" => self.kind.as_str(), "outcome" => "sent")
            .increment(1);
        tracing::info!(email.kind = self.kind.as_str(), delivery.id = %self.delivery_id, "email sent");
    }

    fn observe_failed(&self, error: &str) {
        metrics::counter!("emails_total", "kind" => self.kind.as_str(), "outcome" => "failed")
            .increment(1);
        tracing::warn!(email.kind = self.kind.as_str(), delivery.id = %self.delivery_id, %error, attempts = self.attempts, "email failed for good");
    }

    fn report(&self, error: Option<String>) -> EmailDelivery {
        EmailDelivery {
            delivery_id: self.delivery_id,
            order_id: self.order_id,
            kind: self.kind.as_str().to_owned(),
            attempts: self.attempts,
            error,
        }
    }
}

/// How long a sent email's record is retried in place while the database is away. The message
/// stays unacknowledged with this worker meanwhile, so no other worker can take it for one a dead
/// worker left `sending`; only an outage longer than this hands it back (and this process still
/// records the send if the message comes back to it).
const RECORD_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// The email consumer's handler timeout: a send and the record of its outcome through an outage.
pub const HANDLER_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(mailer::SEND_TIMEOUT.as_secs() + RECORD_WINDOW.as_secs() + 30);

/// Longest another worker keeps off a delivery that is `sending`: the whole SMTP conversation
/// (bounded by the mailer) and a margin. While the database is away nobody can look at the
/// delivery anyway; when it is back, the sender records at once. So a delivery found `sending`
/// past its lease belongs to a worker that died.
const SEND_LEASE: time::Duration =
    time::Duration::seconds(mailer::SEND_TIMEOUT.as_secs() as i64 + 10);
