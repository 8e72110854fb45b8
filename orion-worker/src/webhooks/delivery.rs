//! The delivery loop: leases the deliveries that are due, sends each (signed, up to
//! [`IN_FLIGHT`] at once and [`PER_ENDPOINT`] to one endpoint, claiming more as attempts end),
//! and records what the receiver said:
//!
//! - 2xx: delivered; the endpoint is healthy again.
//! - `410 Gone`: the endpoint is disabled and the admins are told (a `webhook.disabled` event,
//!   which the email consumer turns into email).
//! - anything else, or no answer: tried again after the schedule's next delay, or later if the
//!   receiver's `Retry-After` (on 429 and 503) asks for more; when the schedule is spent the
//!   delivery has failed. An endpoint that has failed without a success in between for longer
//!   than the disable-after setting (five days by default) is disabled, and the admins told.
//!
//! A lease outlives an attempt's timeout and is on the database's clock: a worker killed
//! mid-attempt leaves its deliveries to come due again when their leases end, and they are sent
//! again with the same `webhook-id`. Only the attempt holding a delivery's lease records its
//! result, so a late attempt never overwrites a newer one (or an admin's replay).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orion_domain::DomainEvent;
use orion_domain::events::WebhookDisabled;
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::webhooks::{self, AttemptResult, DueDelivery, Outcome};
use orion_persistence::{Pool, outbox};
use orion_webhooks::sender::Verdict;
use orion_webhooks::{AddressPolicy, Attempt, RetrySchedule, Secret, Sender};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::{Error, Result};

/// Attempts in flight at once. They wait on receivers, not on this process.
const IN_FLIGHT: usize = 16;

/// Attempts in flight to one endpoint at once: a receiver that hangs holds back only its own.
const PER_ENDPOINT: i64 = 4;

/// Results recorded at once: each holds a database connection for its transaction (the pool
/// budgets [`CONNECTIONS`]: these and the claim).
const RECORDING: usize = 2;

/// Database connections the deliveries use at most.
pub const CONNECTIONS: u32 = 3;

/// How often due deliveries are looked for when nothing wakes the loop (a retry coming due, a
/// test or replay queued by the API).
const POLL: Duration = Duration::from_secs(1);

/// Longest wait after the database failed a claim.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Margin of a lease over an attempt's timeout, for recording its result.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Added to the longest retry delay to tell a run of failures from failures apart.
const QUIET_MARGIN: Duration = Duration::from_secs(60);

/// Longest `Retry-After` honoured: a receiver may push one attempt back by a day at most.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

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
    recording: Arc<Semaphore>,
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
            recording: Arc::new(Semaphore::new(RECORDING)),
        })
    }

    /// Works until `stopping` completes. Attempts under way then are finished (within the
    /// worker's drain time; one cut short is sent again when its lease ends).
    pub async fn run(self, stopping: impl Future<Output = ()>) {
        tokio::pin!(stopping);
        let mut attempts: JoinSet<()> = JoinSet::new();
        let mut backoff = Duration::ZERO;
        loop {
            let free = IN_FLIGHT.saturating_sub(attempts.len());
            if free > 0 {
                match self.claim(free).await {
                    Ok(due) => {
                        backoff = Duration::ZERO;
                        let claimed_all = due.len() == free;
                        for delivery in due {
                            let this = self.clone();
                            attempts.spawn(async move { this.attempt(delivery).await });
                        }
                        // More may be due at once: claim again as soon as slots free up.
                        if claimed_all {
                            tokio::select! {
                                () = &mut stopping => break,
                                Some(_) = attempts.join_next() => continue,
                            }
                        }
                    }
                    Err(error) => {
                        backoff = (backoff * 2).clamp(POLL, MAX_BACKOFF);
                        tracing::warn!(%error, "webhook deliveries not claimed; trying again shortly");
                    }
                }
            }
            tokio::select! {
                () = &mut stopping => break,
                () = self.queued.notified() => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                () = tokio::time::sleep(POLL.max(backoff)) => {}
            }
        }
        while attempts.join_next().await.is_some() {}
    }

    async fn claim(&self, free: usize) -> Result<Vec<DueDelivery>> {
        let mut conn = self.pool.acquire().await?;
        Ok(webhooks::claim_due(
            &mut conn,
            i64::try_from(free).unwrap_or(1),
            PER_ENDPOINT,
            self.settings.timeout + LEASE_MARGIN,
        )
        .await?)
    }

    async fn attempt(&self, delivery: DueDelivery) {
        let secrets: Result<Vec<Secret>> =
            [Some(&delivery.secret), delivery.previous_secret.as_ref()]
                .into_iter()
                .flatten()
                .map(|raw| Secret::parse(raw).map_err(|e| Error::Config(e.to_string())))
                .collect();
        let attempt = match secrets {
            Ok(secrets) => {
                self.sender
                    .send(
                        &delivery.url,
                        &delivery.event_id.to_string(),
                        &delivery.payload,
                        &secrets,
                    )
                    .await
            }
            // A stored secret Orion cannot read: nothing can be signed, so nothing is sent.
            Err(error) => Attempt {
                status: None,
                latency: Duration::ZERO,
                retry_after: None,
                error: Some(error.to_string()),
            },
        };
        let verdict = attempt.verdict();
        metrics::counter!("webhook_attempts_total", "result" => match verdict {
            Verdict::Delivered => "delivered",
            Verdict::Gone => "gone",
            Verdict::Failed => "failed",
        })
        .increment(1);
        metrics::histogram!("webhook_attempt_seconds").record(attempt.latency.as_secs_f64());
        // The permit keeps the recording transactions within the pool's budget.
        let Ok(_permit) = self.recording.acquire().await else {
            return;
        };
        if let Err(error) = self.record(&delivery, &attempt, verdict).await {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(%error, webhook.delivery = %delivery.id,
                "a webhook attempt's result was not recorded; it will be sent again");
        }
    }

    /// Records an attempt's result (and disables the endpoint when it must) in one transaction,
    /// taking the endpoint's row before the delivery's, as every other path does.
    async fn record(
        &self,
        delivery: &DueDelivery,
        attempt: &Attempt,
        verdict: Verdict,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut disabled_because = None;
        let (outcome, retry_in) = match verdict {
            Verdict::Delivered => {
                webhooks::mark_healthy(&mut tx, delivery.endpoint_id).await?;
                (Outcome::Delivered, None)
            }
            Verdict::Gone => {
                disabled_because = Some("it answered 410 Gone".to_owned());
                (Outcome::Failed, None)
            }
            Verdict::Failed => {
                // Failures further apart than the longest wait between attempts (a retry delay
                // or a Retry-After; twice, for jitter, and a minute for the loop's polling) are
                // not one run of failures.
                let quiet =
                    self.settings.schedule.longest().max(MAX_RETRY_AFTER) * 2 + QUIET_MARGIN;
                if let Some((since, now)) =
                    webhooks::mark_failing(&mut tx, delivery.endpoint_id, quiet).await?
                    && now - since >= self.settings.disable_after
                {
                    let since = since
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_else(|_| since.to_string());
                    disabled_because = Some(format!("every delivery has failed since {since}"));
                }
                match self.next_delay(delivery.attempts, attempt) {
                    Some(delay) => (Outcome::Pending, Some(delay)),
                    None => (Outcome::Failed, None),
                }
            }
        };
        let mut disabled = false;
        if let Some(reason) = &disabled_because {
            disabled =
                webhooks::disable_endpoint(&mut tx, delivery.endpoint_id, reason, crate::now())
                    .await?;
        }
        let recorded = webhooks::record_attempt(
            &mut tx,
            delivery.id,
            delivery.lease,
            &AttemptResult {
                status_code: attempt.status.map(i32::from),
                latency_ms: i32::try_from(attempt.latency.as_millis()).unwrap_or(i32::MAX),
                error: attempt.error.as_deref(),
                outcome,
                retry_in,
            },
        )
        .await?;
        if !recorded {
            // Overtaken (a replay, or the lease ran out and another attempt took over): that
            // attempt's word stands, and this one changes nothing.
            tx.rollback().await?;
            return Ok(());
        }
        let (Some(reason), true) = (disabled_because, disabled) else {
            tx.commit().await?;
            return Ok(());
        };
        tracing::warn!(webhook.id = %delivery.endpoint_id, %reason, "webhook disabled");
        let event = DomainEvent::WebhookDisabled(WebhookDisabled {
            webhook_id: delivery.endpoint_id,
            url: delivery.url.clone(),
            reason,
        });
        events::record_event(&mut tx, &event, &EventMetadata::default(), crate::now()).await?;
        outbox::commit(tx).await?;
        Ok(())
    }

    /// When to try again after `attempts` failed attempts: the schedule's next delay, or the
    /// receiver's `Retry-After` if it asks for longer (at most a day); `None` when the schedule
    /// is spent. A `Retry-After` never shortens the wait, so a receiver answering "retry after
    /// 1 s" cannot spend the whole schedule in seconds.
    fn next_delay(&self, attempts: i32, attempt: &Attempt) -> Option<Duration> {
        let planned = self
            .settings
            .schedule
            .next_delay(u32::try_from(attempts).unwrap_or(u32::MAX))?;
        Some(
            attempt
                .retry_after
                .map_or(planned, |asked| planned.max(asked.min(MAX_RETRY_AFTER))),
        )
    }
}
