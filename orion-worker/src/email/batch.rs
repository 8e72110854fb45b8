//! Email for several messages at once: the same three steps as one message takes (claim and
//! mark `sending`, talk to the SMTP server, record the outcome), but each step for the whole
//! batch: one transaction to claim, the sends side by side, one transaction to record. The
//! worker runs one email batch at a time of at most `ORION_WORKER_CONCURRENCY` messages, so no
//! more emails are in an SMTP conversation at once than when each message had its own task: a
//! killed worker interrupts no more sends than before.
//!
//! Whatever is not plain sailing takes the single path: a message with a delivery found
//! `sending` (another worker's, or a dead one's) is handled alone after the batch, and a batch
//! whose claim or record does not commit is handed back to the consumer, which gives each message
//! to the single path; that path finds in the database, and in this process's memory of sends it
//! could not record, how far the batch got.

use orion_domain::DomainEvent;
use orion_messaging::{Envelope, HandlerError};
use orion_persistence::emails::{self, DeliveryStatus, NewDelivery};
use orion_persistence::events::EventMetadata;
use orion_persistence::{PgConnection, inbox, outbox};
use uuid::Uuid;

use super::{
    CONSUMER, EmailHandler, EmailKind, Letter, Outcome, RECORD_WINDOW, Rendered, SEND_LEASE,
    message_id, write_failed, write_sent,
};
use crate::{Error, Result};

/// One message of the batch that asks for email.
struct Message {
    /// Its place in the batch.
    index: usize,
    id: Uuid,
    kind: EmailKind,
    event: DomainEvent,
    metadata: EventMetadata,
}

/// One email the batch sends.
struct Send {
    /// The message it belongs to (its place in the batch).
    index: usize,
    recipient: String,
    message_id: String,
    rendered: Rendered,
    outcome: Outcome,
}

/// What the claim left to do.
#[derive(Default)]
struct Claimed {
    sends: Vec<Send>,
    /// Messages with every delivery pending now, whose inbox row waits for the record.
    pending_messages: Vec<(usize, Uuid)>,
    /// Messages to hand to the single path (places in the batch).
    alone: Vec<usize>,
}

impl EmailHandler {
    /// Handles a batch of the `orion.email` queue; `None` when it did not get through as a whole.
    pub async fn handle_many(
        &self,
        envelopes: Vec<Envelope>,
    ) -> Option<Vec<Result<(), HandlerError>>> {
        let mut outcomes: Vec<Result<(), HandlerError>> =
            envelopes.iter().map(|_| Ok(())).collect();
        let mut messages = Vec::new();
        for (index, envelope) in envelopes.iter().enumerate() {
            let Some(kind) = super::templates::email_for(&envelope.kind) else {
                continue;
            };
            match DomainEvent::from_parts(&envelope.kind, envelope.data.clone()) {
                Ok(event) => messages.push(Message {
                    index,
                    id: envelope.id,
                    kind,
                    event,
                    metadata: EventMetadata {
                        correlation_id: envelope.correlation_id,
                        causation_id: Some(envelope.id),
                        traceparent: envelope.traceparent.clone(),
                    },
                }),
                Err(error) => {
                    outcomes[index] =
                        Err(Error::Undecodable(error.to_string()).into_handler_error());
                }
            }
        }
        if messages.is_empty() {
            return Some(outcomes);
        }
        let claimed = match self.claim_all(&messages).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::debug!(%error, "email batch not claimed; one by one");
                return None;
            }
        };
        // Every delivery marked `sending` is in an SMTP conversation from now on, none waits its
        // turn: a worker killed now leaves `sending` only what it was really sending.
        let sent: Vec<Result<()>> =
            futures_util::future::join_all(claimed.sends.iter().map(|send| {
                self.mailer.send(
                    &send.recipient,
                    &send.message_id,
                    &send.rendered,
                    envelopes[send.index].traceparent.as_deref(),
                )
            }))
            .await;
        let failed = match self.record_all(&messages, &claimed, &sent).await {
            Ok(failed) => failed,
            Err(error) => {
                // What went out must be recorded as sent, and what did not must be sent again,
                // when the single path meets these deliveries `sending`.
                for (send, result) in claimed.sends.iter().zip(&sent) {
                    let id = send.outcome.delivery_id;
                    if result.is_ok() {
                        self.sent_unrecorded().insert(id);
                    } else {
                        self.unsent_unrecorded().insert(id);
                    }
                }
                tracing::warn!(%error, "outcomes of an email batch not recorded; one by one");
                return None;
            }
        };
        for (index, error) in failed {
            outcomes[index] = Err(error.into_handler_error());
        }
        for index in claimed.alone {
            outcomes[index] = self
                .deliver_all(envelopes[index].clone())
                .await
                .map_err(Error::into_handler_error);
        }
        Some(outcomes)
    }

    /// One transaction: skips the messages handled before, composes the others' letters, claims
    /// their deliveries and marks the pending ones `sending`.
    async fn claim_all(&self, messages: &[Message]) -> Result<Claimed> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
        let handled = inbox::handled_of(&mut tx, CONSUMER, &ids).await?;
        let now = crate::now();
        let mut claimed = Claimed::default();
        let mut done = Vec::new();
        // Every letter of the batch first, then the deliveries claimed (and locked) in one order,
        // dedupe key by dedupe key: copies of one event in two batches cannot deadlock.
        let mut letters: Vec<(&Message, Letter)> = Vec::new();
        for message in messages.iter().filter(|m| !handled.contains(&m.id)) {
            let composed = self
                .compose(&mut tx, message.kind, &message.event, message.id)
                .await?;
            if composed.is_empty() {
                done.push(message.id);
            }
            letters.extend(composed.into_iter().map(|letter| (message, letter)));
        }
        letters.sort_by(|a, b| a.1.dedupe_key.cmp(&b.1.dedupe_key));
        // One letter per dedupe key: a message delivered twice into one batch, or two events that
        // owe the same email, must not have it sent twice. A message whose letter another one
        // carries is settled once that one is out: by the inbox when it is the same message,
        // by the single path (which finds the delivery done) when it is another.
        let mut unique: Vec<(&Message, Letter)> = Vec::with_capacity(letters.len());
        let mut after_batch: Vec<usize> = Vec::new();
        for (message, letter) in letters {
            if let Some((kept, _)) = unique
                .last()
                .filter(|(_, kept)| kept.dedupe_key == letter.dedupe_key)
            {
                if kept.id != message.id {
                    after_batch.push(message.index);
                }
                continue;
            }
            unique.push((message, letter));
        }
        let letters = unique;
        after_batch.retain(|index| !letters.iter().any(|(m, _)| m.index == *index));
        after_batch.dedup();
        let mut deliveries = Vec::with_capacity(letters.len());
        for (message, letter) in &letters {
            let delivery = emails::claim_delivery(
                &mut tx,
                &NewDelivery {
                    dedupe_key: &letter.dedupe_key,
                    order_id: letter.order_id,
                    kind: message.kind.as_str(),
                    recipient: &letter.recipient,
                },
            )
            .await?;
            deliveries.push(delivery);
        }
        // A message with a delivery someone is sending (or was, and died) takes the single path,
        // which knows how to wait for it; none of its deliveries is touched here.
        let mut alone: Vec<usize> = letters
            .iter()
            .zip(&deliveries)
            .filter(|(_, delivery)| delivery.status == DeliveryStatus::Sending)
            .map(|((message, _), _)| message.index)
            .collect();
        alone.dedup();
        let mut pending: Vec<usize> = Vec::new();
        for ((message, letter), delivery) in letters.iter().zip(&deliveries) {
            if alone.contains(&message.index) || delivery.status != DeliveryStatus::Pending {
                continue;
            }
            let rendered = self.templates.render(message.kind, &letter.values)?;
            emails::mark_sending(&mut tx, delivery.id, now + SEND_LEASE, now).await?;
            claimed.sends.push(Send {
                index: message.index,
                message_id: message_id(letter),
                recipient: letter.recipient.clone(),
                rendered,
                outcome: Outcome {
                    delivery_id: delivery.id,
                    order_id: letter.order_id,
                    kind: message.kind,
                    attempts: u32::try_from(delivery.attempts).unwrap_or(0) + 1,
                    inbox_id: None,
                },
            });
            pending.push(message.index);
        }
        // Each message with letters: alone, waiting for its sends' record, or done already.
        let mut seen: Vec<usize> = Vec::new();
        for (message, _) in &letters {
            if seen.contains(&message.index) {
                continue;
            }
            seen.push(message.index);
            if alone.contains(&message.index) {
                claimed.alone.push(message.index);
            } else if pending.contains(&message.index) {
                claimed.pending_messages.push((message.index, message.id));
            } else {
                done.push(message.id);
            }
        }
        claimed.alone.extend(after_batch);
        inbox::record_messages(&mut tx, CONSUMER, &done).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// One transaction records every send's outcome and the inbox rows of the messages that are
    /// done, tried again in place while the database is away (the sends are out, as in
    /// [`EmailHandler::record_sent`]). Returns the messages with a send to try again.
    async fn record_all(
        &self,
        messages: &[Message],
        claimed: &Claimed,
        sent: &[Result<()>],
    ) -> Result<Vec<(usize, Error)>> {
        let give_up_at = tokio::time::Instant::now() + RECORD_WINDOW;
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            let attempt = async {
                let mut tx = self.pool.begin().await?;
                let retried = self.write_all(&mut tx, messages, claimed, sent).await?;
                outbox::commit(tx).await?;
                Ok::<_, Error>(retried)
            }
            .await;
            match attempt {
                Ok(retried) => {
                    self.observe(claimed, sent);
                    return Ok(retried);
                }
                Err(error)
                    if error.is_unavailable() && tokio::time::Instant::now() < give_up_at =>
                {
                    tracing::warn!(%error, "emails of a batch sent but the database is away; recording them again shortly");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn write_all(
        &self,
        tx: &mut PgConnection,
        messages: &[Message],
        claimed: &Claimed,
        sent: &[Result<()>],
    ) -> Result<Vec<(usize, Error)>> {
        let now = crate::now();
        let metadata = |index: usize| {
            messages
                .iter()
                .find(|m| m.index == index)
                .map(|m| &m.metadata)
        };
        let mut retried: Vec<(usize, Error)> = Vec::new();
        for (send, result) in claimed.sends.iter().zip(sent) {
            let Some(metadata) = metadata(send.index) else {
                continue;
            };
            match result {
                Ok(()) => write_sent(tx, &send.outcome, &send.message_id, metadata, now).await?,
                Err(error)
                    if send.outcome.attempts < self.settings.max_attempts
                        && error.is_transient() =>
                {
                    let retry_at = now + time::Duration::seconds(5);
                    emails::mark_attempt_failed(
                        &mut *tx,
                        send.outcome.delivery_id,
                        &error.to_string(),
                        Some(retry_at),
                        now,
                    )
                    .await?;
                    if !retried.iter().any(|(index, _)| *index == send.index) {
                        retried.push((send.index, Error::Mail(error.to_string())));
                    }
                }
                Err(error) => {
                    write_failed(tx, &send.outcome, &error.to_string(), metadata, now).await?;
                }
            }
        }
        // Without the inbox row, a message with a send to try again finds itself unhandled.
        let done: Vec<Uuid> = claimed
            .pending_messages
            .iter()
            .filter(|(index, _)| !retried.iter().any(|(r, _)| r == index))
            .map(|(_, id)| *id)
            .collect();
        inbox::record_messages(tx, CONSUMER, &done).await?;
        Ok(retried)
    }

    fn observe(&self, claimed: &Claimed, sent: &[Result<()>]) {
        for (send, result) in claimed.sends.iter().zip(sent) {
            match result {
                Ok(()) => send.outcome.observe_sent(),
                Err(error)
                    if send.outcome.attempts < self.settings.max_attempts
                        && error.is_transient() =>
                {
                    metrics::counter!("emails_total", "kind" => send.outcome.kind.as_str(), "outcome" => "retried")
                        .increment(1);
                }
                Err(error) => send.outcome.observe_failed(&error.to_string()),
            }
        }
    }
}
