//! The delivery loop: leases the deliveries that are due, sends each (signed, at most
//! [`BATCH`] at a time), and records what the receiver said:
//!
//! - 2xx: delivered; the endpoint is healthy again.
//! - `410 Gone`: the endpoint is disabled and the admins are told (a `webhook.disabled` event,
//!   which the email consumer turns into email).
//! - anything else, or no answer: tried again after the schedule's next delay (or the
//!   receiver's `Retry-After` on 429 and 503, capped by the longest delay); when the schedule is
//!   spent the delivery has failed. An endpoint that has failed without a success in between for
//!   longer than the disable-after setting (five days by default) is disabled, and the admins told.
//!
//! A lease outlives an attempt's timeout: a worker killed mid-attempt leaves its deliveries to
//! come due again when their leases end, and they are sent again with the same `webhook-id`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use orion_domain::DomainEvent;
use orion_domain::events::WebhookDisabled;
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::webhooks::{self, AttemptResult, DueDelivery, Outcome};
use orion_persistence::{Pool, outbox};
use orion_webhooks::sender::Verdict;
use orion_webhooks::{AddressPolicy, Attempt, RetrySchedule, Secret, Sender};
use tokio::sync::Notify;

use crate::{Error, Result};

/// Deliveries sent at once.
const BATCH: usize = 16;

/// How often due deliveries are looked for when nothing wakes the loop (a retry coming due, a
/// test or replay queued by the API).
const POLL: Duration = Duration::from_secs(1);

/// Longest wait after the database failed a round.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Margin of a lease over an attempt's timeout, for recording its result.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub policy: AddressPolicy,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after: Duration,
}

/// Sends due deliveries until stopped.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pool: Pool,
    sender: Sender,
    settings: Arc<DeliverySettings>,
    queued: Arc<Notify>,
}

impl WebhookDelivery {
    pub fn new(pool: Pool, settings: DeliverySettings, queued: Arc<Notify>) -> Result<Self> {
        let sender = Sender::new(settings.policy, settings.timeout)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            pool,
            sender,
            settings: Arc::new(settings),
            queued,
        })
    }

    /// Works until `stopping` completes; an attempt under way is finished first.
    pub async fn run(self, stopping: impl Future<Output = ()>) {
        tokio::pin!(stopping);
        let mut backoff = Duration::ZERO;
        loop {
            tokio::select! {
                () = &mut stopping => break,
                () = self.queued.notified() => {}
                () = tokio::time::sleep(POLL.max(backoff)) => {}
            }
            loop {
                match self.round().await {
                    Ok(sent) => {
                        backoff = Duration::ZERO;
                        if sent < BATCH {
                            break;
                        }
                    }
                    Err(error) => {
                        backoff = (backoff * 2).clamp(POLL, MAX_BACKOFF);
                        tracing::warn!(%error, "webhook deliveries not sent; trying again shortly");
                        break;
                    }
                }
            }
        }
    }

    /// Sends one batch of due deliveries; how many it took.
    async fn round(&self) -> Result<usize> {
        let now = crate::now();
        let lease = self.settings.timeout + LEASE_MARGIN;
        let due = {
            let mut conn = self.pool.acquire().await?;
            webhooks::claim_due(
                &mut conn,
                i64::try_from(BATCH).unwrap_or(16),
                now + lease,
                now,
            )
            .await?
        };
        let count = due.len();
        for result in join_all(due.into_iter().map(|d| self.attempt(d))).await {
            result?;
        }
        Ok(count)
    }

    async fn attempt(&self, delivery: DueDelivery) -> Result<()> {
        let secrets = [Some(&delivery.secret), delivery.previous_secret.as_ref()]
            .into_iter()
            .flatten()
            .map(|raw| Secret::parse(raw).map_err(|e| Error::Config(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let attempt = self
            .sender
            .send(
                &delivery.url,
                &delivery.event_id.to_string(),
                &delivery.payload,
                &secrets,
            )
            .await;
        let verdict = attempt.verdict();
        metrics::counter!("webhook_attempts_total", "result" => match verdict {
            Verdict::Delivered => "delivered",
            Verdict::Gone => "gone",
            Verdict::Failed => "failed",
        })
        .increment(1);
        metrics::histogram!("webhook_attempt_seconds").record(attempt.latency.as_secs_f64());
        self.record(&delivery, &attempt, verdict).await
    }

    /// Records an attempt's result (and disables the endpoint when it must) in one transaction.
    async fn record(
        &self,
        delivery: &DueDelivery,
        attempt: &Attempt,
        verdict: Verdict,
    ) -> Result<()> {
        let now = crate::now();
        let mut tx = self.pool.begin().await?;
        let mut disabled_because = None;
        let (outcome, next_attempt_at) = match verdict {
            Verdict::Delivered => {
                webhooks::mark_healthy(&mut tx, delivery.endpoint_id).await?;
                (Outcome::Delivered, None)
            }
            Verdict::Gone => {
                disabled_because = Some("it answered 410 Gone".to_owned());
                (Outcome::Failed, None)
            }
            Verdict::Failed => {
                let failing_since = webhooks::mark_failing(&mut tx, delivery.endpoint_id, now)
                    .await?
                    .unwrap_or(now);
                if now - failing_since >= self.settings.disable_after {
                    let since = failing_since
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_else(|_| failing_since.to_string());
                    disabled_because = Some(format!("every delivery has failed since {since}"));
                }
                match self.next_delay(delivery.attempts, attempt) {
                    Some(delay) => (Outcome::Pending, Some(now + delay)),
                    None => (Outcome::Failed, None),
                }
            }
        };
        webhooks::record_attempt(
            &mut tx,
            delivery.id,
            &AttemptResult {
                status_code: attempt.status.map(i32::from),
                latency_ms: i32::try_from(attempt.latency.as_millis()).unwrap_or(i32::MAX),
                error: attempt.error.as_deref(),
                outcome,
                next_attempt_at,
            },
            now,
        )
        .await?;
        let Some(reason) = disabled_because else {
            tx.commit().await?;
            return Ok(());
        };
        if webhooks::disable_endpoint(&mut tx, delivery.endpoint_id, &reason, now).await? {
            tracing::warn!(webhook.id = %delivery.endpoint_id, %reason, "webhook disabled");
            let event = DomainEvent::WebhookDisabled(WebhookDisabled {
                webhook_id: delivery.endpoint_id,
                url: delivery.url.clone(),
                reason,
            });
            events::record_event(&mut tx, &event, &EventMetadata::default(), now).await?;
        }
        outbox::commit(tx).await?;
        Ok(())
    }

    /// When to try again after `attempts` failed attempts: the receiver's `Retry-After` if it
    /// gave one (no longer than the schedule's longest delay), else the schedule's next delay;
    /// `None` when the schedule is spent.
    fn next_delay(&self, attempts: i32, attempt: &Attempt) -> Option<Duration> {
        let schedule = &self.settings.schedule;
        let planned = schedule.next_delay(u32::try_from(attempts).unwrap_or(u32::MAX))?;
        Some(
            attempt
                .retry_after
                .map_or(planned, |asked| asked.min(schedule.longest())),
        )
    }
}
