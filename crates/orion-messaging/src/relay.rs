//! The outbox relay: publishes events that transactions wrote to the outbox, marking each only
//! after the broker confirmed it. At-least-once, in order per aggregate, safe to run in every
//! process at once. Woken by this process's commits of events and a slow poll; backs off while the
//! database or the broker is down.

use std::future::Future;
use std::time::Duration;

use orion_persistence::Pool;
use orion_persistence::outbox::{self, PendingEvent};
use time::OffsetDateTime;

use crate::{Envelope, Error, Publisher, Result, spans};

/// Tunables of a relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed per round.
    pub batch: i64,
    /// How long a claim holds before another relay may take the rows.
    pub lease: time::Duration,
    /// Poll interval when this process commits no events: how soon rows that another process
    /// wrote and could not relay are taken.
    pub poll: Duration,
    /// Published rows older than this are deleted.
    pub retention: time::Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: time::Duration::seconds(30),
            poll: Duration::from_secs(1),
            retention: time::Duration::hours(24),
        }
    }
}

/// Publishes outbox rows.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: Pool,
    publisher: Publisher,
    source: String,
    settings: RelaySettings,
}

/// A relay running in the background, owned by whoever spawned it.
#[derive(Debug)]
pub struct RunningRelay {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    /// Asks the relay to stop after its current round and waits for it, at most 10 s: rows of a
    /// round cut short stay unpublished and another relay takes them after the lease.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "outbox relay task failed"),
            Err(_) => {
                tracing::warn!("outbox relay did not stop within 10 s; abandoning its round");
                self.task.abort();
            }
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub claimed: usize,
    pub published: usize,
    pub failed: usize,
    /// A later event of a published event's aggregate is waiting (written meanwhile, perhaps
    /// by another process, and held back until this round's events were out).
    pub successors_waiting: bool,
}

impl OutboxRelay {
    /// `source` names the process in every envelope (`orion-api`, `orion-worker`).
    pub fn new(
        pool: Pool,
        publisher: Publisher,
        source: impl Into<String>,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            publisher,
            source: source.into(),
            settings,
        }
    }

    /// Claims one batch and publishes it. A broker that cannot be reached ends the round early
    /// with an error; rows that were not published stay unpublished.
    pub async fn relay_once(&self) -> Result<RoundReport> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(orion_persistence::Error::from)?;
        let batch =
            outbox::claim_outbox_batch(&mut conn, self.settings.batch, self.settings.lease).await?;
        let mut report = RoundReport {
            claimed: batch.len(),
            ..RoundReport::default()
        };
        let mut published = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        let mut unsent: Vec<i64> = Vec::new();
        let mut outcome = Ok(());
        // The whole batch goes out before any confirm is awaited. In order per aggregate, as one
        // channel keeps it; a message the broker refuses (rare: a nack, or no queue bound) is
        // tried again later, after the aggregate's events that followed it. Every consumer reads
        // the state, not the sequence, of an order, so that is harmless.
        let exchange = self.publisher.topology().events_exchange();
        let (envelopes, spans): (Vec<Envelope>, Vec<tracing::Span>) = batch
            .iter()
            .map(|event| self.envelope(&exchange, event))
            .unzip();
        let mut results = self.publisher.publish_all(&envelopes).await;
        if results
            .iter()
            .any(|result| matches!(result, Err(Error::Unroutable(_))))
        {
            // The client may credit a returned message to another confirm of the same pipelined
            // batch; publishing the batch again one message at a time finds exactly which ones
            // no queue takes (a copy of one that went through is a duplicate, which every
            // consumer's inbox drops).
            results = self.publish_one_by_one(&envelopes).await;
        }
        for ((event, result), span) in batch.iter().zip(results).zip(spans) {
            if let Err(error) = &result {
                span.record("error.type", error.kind());
            }
            match result {
                Ok(()) => published.push(event.seq),
                Err(error) if error.is_message_fault() => {
                    // This message is the problem, not the broker: park the row for a while.
                    tracing::warn!(event.id = %event.id, event.type = %event.event_type, %error, "publication failed; will retry");
                    failed.push((event.seq, error.to_string(), backoff(event.attempts)));
                }
                Err(error) => {
                    // The broker is unreachable: give the row back at once, unattempted.
                    unsent.push(event.seq);
                    if outcome.is_ok() {
                        outcome = Err(error);
                    }
                }
            }
        }
        // What the broker confirmed is recorded first, whatever else fails afterwards.
        if !published.is_empty() {
            report.successors_waiting =
                outbox::mark_published(&mut conn, &published, OffsetDateTime::now_utc()).await?;
        }
        report.published = published.len();
        if report.published > 0 {
            metrics::counter!("outbox_published_total").increment(report.published as u64);
        }
        report.failed = failed.len();
        for (seq, error, backoff) in &failed {
            outbox::mark_failed(&mut conn, *seq, error, *backoff).await?;
        }
        if !unsent.is_empty() {
            outbox::release_claims(&mut conn, &unsent).await?;
        }
        outcome.map(|()| report)
    }

    /// Publishes each envelope and waits for its confirm before the next; once the broker is
    /// unreachable, the rest are not tried.
    async fn publish_one_by_one(&self, envelopes: &[Envelope]) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(envelopes.len());
        let mut lost: Option<String> = None;
        for envelope in envelopes {
            if let Some(error) = &lost {
                results.push(Err(Error::ChannelLost(error.clone())));
                continue;
            }
            let result = self.publisher.publish(envelope).await;
            if let Err(error) = &result
                && !error.is_message_fault()
            {
                lost = Some(error.to_string());
            }
            results.push(result);
        }
        results
    }

    /// The envelope of a row and the span of its publication, whose context the envelope
    /// carries (or, without trace context, the row's own).
    fn envelope(&self, exchange: &str, event: &PendingEvent) -> (Envelope, tracing::Span) {
        let mut envelope = Envelope {
            specversion: Envelope::SPEC_VERSION.to_owned(),
            id: event.id,
            kind: event.event_type.clone(),
            source: self.source.clone(),
            time: event.created_at,
            subject: event.aggregate_id.clone(),
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            traceparent: event.metadata.traceparent.clone(),
            datacontenttype: "application/json".to_owned(),
            data: event.payload.clone(),
        };
        let span = spans::publish(exchange, &envelope, event.metadata.traceparent.as_deref());
        if let Some(own) = orion_telemetry::propagation::traceparent(&span) {
            envelope.traceparent = Some(own);
        }
        (envelope, span)
    }

    /// Runs the relay on the runtime until [`RunningRelay::stop`].
    pub fn spawn(self) -> RunningRelay {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        RunningRelay { stop, task }
    }

    /// Relays until `shutdown` completes: drains the outbox whenever woken or polled, backs off
    /// after errors, reports its lag and cleans up old rows.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut committed = outbox::committed();
        let mut failures: u32 = 0;
        let mut last_cleanup = OffsetDateTime::UNIX_EPOCH;
        let mut last_lag_report: Option<std::time::Instant> = None;
        loop {
            // Commits from here on are for the next round to find.
            committed.mark_unchanged();
            let round = self.drain().await;
            // Events arriving faster than one per round: the next wake-up waits a moment for
            // more, so that a round (two commits) carries many events instead of one. A quiet
            // outbox is relayed at once.
            let linger = matches!(round, Ok(claimed) if claimed > 1);
            match round {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "outbox relay round failed; backing off");
                }
            }
            // The lag is a gauge read by scrapes seconds apart: once per poll interval is plenty,
            // and a busy relay wakes far more often than that.
            if last_lag_report.is_none_or(|at| at.elapsed() >= self.settings.poll) {
                last_lag_report = Some(std::time::Instant::now());
                self.report_lag().await;
            }
            if OffsetDateTime::now_utc() - last_cleanup > time::Duration::minutes(10) {
                last_cleanup = OffsetDateTime::now_utc();
                self.clean_up().await;
            }
            let wait = if failures == 0 {
                self.settings.poll
            } else {
                Duration::from_millis(250u64.saturating_mul(1 << failures.min(7))).min(MAX_BACKOFF)
            };
            let woken = async {
                // The sender is a static that is never dropped: `changed` fails never.
                if committed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = woken => {
                    if linger {
                        tokio::time::sleep(BUSY_LINGER).await;
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// Relays rounds until the outbox is empty; returns the rows claimed.
    async fn drain(&self) -> Result<usize> {
        let mut claimed = 0;
        loop {
            let report = self.relay_once().await?;
            claimed += report.claimed;
            let full = report.claimed >= usize::try_from(self.settings.batch).unwrap_or(usize::MAX);
            if !(full || report.successors_waiting) || report.published == 0 {
                return Ok(claimed);
            }
        }
    }

    async fn report_lag(&self) {
        if let Ok(mut conn) = self.pool.acquire().await
            && let Ok(lag) = outbox::outbox_lag_seconds(&mut conn, OffsetDateTime::now_utc()).await
        {
            metrics::gauge!("outbox_lag_seconds").set(lag);
        }
    }

    async fn clean_up(&self) {
        let before = OffsetDateTime::now_utc() - self.settings.retention;
        if let Ok(mut conn) = self.pool.acquire().await {
            match outbox::delete_published_before(&mut conn, before).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "old published outbox rows removed"),
                Err(error) => tracing::warn!(%error, "outbox clean-up failed"),
            }
        }
    }
}

/// The longest wait between rounds while the broker or the database is away. Only this
/// process's commits wake a relay early, so a quiet process's events wait at most this long
/// after the outage ends.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a busy relay waits after a wake-up before its next round: short beside an order's
/// way through the system, long beside the few milliseconds between two commits under load.
const BUSY_LINGER: Duration = Duration::from_millis(5);

/// Delay before a failed event is tried again: 2^attempts seconds, at most 5 minutes.
fn backoff(attempts: i32) -> time::Duration {
    let exponent = u32::try_from(attempts.clamp(0, 8)).unwrap_or(8);
    time::Duration::seconds(2i64.pow(exponent)).min(time::Duration::minutes(5))
}
