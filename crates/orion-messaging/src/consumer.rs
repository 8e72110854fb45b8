//! Consuming a work queue: manual acks, bounded prefetch and concurrency, retries through the
//! retry queues, parking in `orion.dead`, reconnection after a broker loss, and a graceful stop
//! (stop taking messages, finish and ack what is in flight, return).
//!
//! A message is acked only after its outcome is settled: handled, re-published to a retry queue,
//! or parked (each re-publication confirmed first). A crash in between redelivers it, which the
//! handlers' inbox makes harmless.
//!
//! An outage is not the message's fault. When a handler fails because the database is away (it
//! says so, or a failed handler finds the database unreachable), the message goes back to the
//! queue with its attempt count unchanged, the consumer stops taking deliveries and hands back
//! the ones it holds, and it resumes only once the database answers again. Attempts, and so
//! parking, count only failures of the message itself.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Semaphore;

use crate::dependencies::Database;
use crate::faults::InjectedFault;
use crate::{Broker, Envelope, Error, RETRY_DELAYS_MS, Result, Topology, WorkQueue, spans};
use tracing::Instrument;

/// Longest wait for the broker to set up a consuming session.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the broker's confirm of a re-published message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// The quorum queue's count of earlier deliveries of a message that were not acked.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Headers the broker sets on a delivery, which a re-published copy must not carry over.
pub(crate) const BROKER_HEADERS: [&str; 8] = [
    DELIVERY_COUNT_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// Deliveries without a settlement after which a message is parked unhandled, with this reason
/// recorded. Generous, since a message also goes back unsettled when its consumer pauses for an
/// outage or loses the broker, but below the work queues' delivery limit
/// ([`crate::WORK_DELIVERY_LIMIT`]), at which the broker parks it itself.
const UNSETTLED_DELIVERY_LIMIT: u32 = 10;

/// Header counting how many times a message has failed.
pub const ATTEMPTS_HEADER: &str = "x-orion-attempts";
/// Header with the last error of a parked or retried message.
pub const ERROR_HEADER: &str = "x-orion-error";
/// Header naming the queue a parked message came from.
pub const ORIGIN_HEADER: &str = "x-orion-origin-queue";

/// Why a handler did not handle a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again later (a database or provider hiccup).
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed (an event this handler cannot make sense of): parked at once.
    #[error("{0}")]
    Permanent(String),
    /// A dependency (the database) is away: the message was not at fault. It goes back to the
    /// queue without spending an attempt, and the consumer pauses until the dependency is back.
    #[error("{0}")]
    Unavailable(String),
}

/// What a consumer feeds its messages to.
///
/// A closure `Fn(Envelope) -> Future` is a handler of one message at a time. A handler that
/// can do better with several messages at once (one transaction for all of them) says so with
/// [`Handler::BATCHES`] and implements [`Handler::handle_batch`].
pub trait Handler: Send + Sync + 'static {
    /// Whether the consumer gathers the deliveries that are already waiting into batches.
    const BATCHES: bool = false;

    /// Handles one message.
    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Handles messages that arrived together (one or more) and says how each went, in their
    /// order: for a handler that takes batches, the usual path, and the cheaper one. `None`:
    /// the batch did not get through as a whole; each message is then handed to
    /// [`Handler::handle`] alone, which must find whatever part of the batch was committed (the
    /// inbox makes that harmless), so that one bad message never fails its batch-mates.
    fn handle_batch(
        &self,
        envelopes: Vec<Envelope>,
    ) -> impl Future<Output = Option<Vec<Result<(), HandlerError>>>> + Send {
        let _ = envelopes;
        std::future::ready(None)
    }
}

impl<H, F> Handler for H
where
    H: Fn(Envelope) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(envelope)
    }
}

/// Tunables of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Unacked messages the broker may send ahead.
    pub prefetch: u16,
    /// Messages (or batches, for a handler that takes them) handled at the same time.
    pub concurrency: usize,
    /// Most deliveries handed to a batching handler at once.
    pub batch: usize,
    /// Failures after which a message is parked.
    pub max_attempts: u32,
    /// Longest a handler may take with one message; after that it counts as a retryable
    /// failure, so a hung dependency cannot hold a slot for ever.
    pub handler_timeout: Duration,
    /// Play the fault a message asks for in its `x-orion-fault` header (tests only).
    pub fault_injection: bool,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            prefetch: 32,
            concurrency: 8,
            batch: 32,
            max_attempts: 5,
            handler_timeout: Duration::from_secs(120),
            fault_injection: false,
        }
    }
}

/// Consumes one work queue.
#[derive(Debug, Clone)]
pub struct QueueConsumer {
    broker: Arc<Broker>,
    topology: Topology,
    queue: WorkQueue,
    settings: ConsumerSettings,
    database: Option<Database>,
}

impl QueueConsumer {
    pub fn new(
        broker: Arc<Broker>,
        topology: Topology,
        queue: WorkQueue,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            broker,
            topology,
            queue,
            settings,
            database: None,
        }
    }

    /// The database the handlers depend on: while it does not answer, the consumer takes no
    /// deliveries, and a handler failure while it is away spends no attempt.
    pub fn with_database(mut self, pool: orion_persistence::Pool) -> Self {
        self.database = Some(Database::new(pool));
        self
    }

    /// Feeds every message to `handler` until `shutdown` completes, reconnecting with backoff
    /// whenever the broker goes away.
    pub async fn run<H: Handler>(self, handler: H, shutdown: impl Future<Output = ()>) {
        let handler = Arc::new(handler);
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        let queue = self.topology.queue(self.queue);
        loop {
            if let Some(database) = &self.database
                && !database.wait_until_up(&mut shutdown, &queue).await
            {
                break;
            }
            let session = self.session(handler.clone(), &mut shutdown);
            match session.await {
                Ok(Stop::Shutdown) => break,
                // A pause is followed by the usual short wait, so that a dependency that answers
                // the probe but fails the handlers is not hammered in a loop.
                Ok(Stop::DependencyDown) => failures = 1,
                Ok(Stop::StreamEnded | Stop::Unsettled) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%queue, %error, failures, "consumer lost the broker; reconnecting");
                }
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)))
                .min(Duration::from_secs(30));
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(%queue, "consumer stopped");
    }

    async fn session<H: Handler>(
        &self,
        handler: Arc<H>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Stop> {
        // Setting up waits on the broker, which may be restarting: a shutdown must not wait too.
        let setup = async {
            let channel = self.broker.channel().await?;
            self.topology.declare(&channel).await?;
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions::default())
                .await?;
            let republisher = self.broker.confirm_channel().await?;
            let queue = self.topology.queue(self.queue);
            let deliveries = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, Error>((channel, republisher, deliveries))
        };
        let (channel, republisher, mut deliveries) = tokio::select! {
            () = &mut *shutdown => return Ok(Stop::Shutdown),
            setup = tokio::time::timeout(SETUP_TIMEOUT, setup) => {
                setup.map_err(|_| Error::Timeout(SETUP_TIMEOUT))??
            }
        };
        // One publish-and-confirm at a time on the republishing channel, so that a return or a
        // nack is always credited to the message it belongs to.
        let republisher = Arc::new(tokio::sync::Mutex::new(republisher));
        let tag = deliveries.tag();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        // A message that could not be settled stays unacked; ending the session closes the
        // channel, which hands it back to the broker, and the next session starts afresh. The
        // same happens to every delivery held when a dependency goes down.
        let interrupted = Arc::new(Interruption::default());
        let stop = loop {
            let next = tokio::select! {
                () = &mut *shutdown => break Stop::Shutdown,
                stop = interrupted.wait() => break stop,
                next = deliveries.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(error.into()),
                None => break Stop::StreamEnded,
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break Stop::Shutdown;
            };
            // The deliveries already waiting join this one: no wait for more, so a lone message
            // goes at once and a backlog goes in batches.
            let mut batch = vec![delivery];
            let mut ended = None;
            while H::BATCHES && batch.len() < self.settings.batch.max(1) {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(delivery))) => batch.push(delivery),
                    Some(Some(Err(error))) => return Err(error.into()),
                    Some(None) => {
                        ended = Some(Stop::StreamEnded);
                        break;
                    }
                    None => break,
                }
            }
            if interrupted.is_set() {
                // Taken after the interruption: hand them straight back, unspent.
                for delivery in batch {
                    let _ = delivery.acker.nack(requeue()).await;
                }
                break interrupted.wait().await;
            }
            let handler = handler.clone();
            let interrupted = interrupted.clone();
            let settle = Settle {
                republisher: republisher.clone(),
                topology: self.topology.clone(),
                queue: self.queue,
                max_attempts: self.settings.max_attempts,
                handler_timeout: self.settings.handler_timeout,
                fault_injection: self.settings.fault_injection,
                database: self.database.clone(),
                interrupted: interrupted.clone(),
            };
            tokio::spawn(async move {
                match settle.handle_all(batch, handler.as_ref()).await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not settle a message; restarting the consumer");
                        interrupted.set(Stop::Unsettled);
                    }
                }
                drop(permit);
            });
            if let Some(stop) = ended {
                break stop;
            }
        };
        if stop != Stop::StreamEnded {
            let _ = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await;
        }
        // Wait for the messages in flight to be settled before leaving.
        let _ = slots
            .acquire_many(u32::try_from(self.settings.concurrency).unwrap_or(u32::MAX))
            .await;
        let _ = republisher
            .lock()
            .await
            .close(200, "session over".into())
            .await;
        match stop {
            Stop::Unsettled => {
                let _ = channel
                    .close(200, "restarting after an unsettled message".into())
                    .await;
                Err(Error::Unsettled)
            }
            Stop::DependencyDown => {
                // Closing the channel returns the prefetched deliveries without a failure mark.
                let _ = channel
                    .close(200, "pausing while a dependency is down".into())
                    .await;
                Ok(stop)
            }
            Stop::Shutdown | Stop::StreamEnded => Ok(stop),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    StreamEnded,
    Unsettled,
    /// A handler found a dependency down: pause until it is back.
    DependencyDown,
}

/// Why a session must end early, set by whichever handler task finds out first.
#[derive(Debug, Default)]
struct Interruption {
    reason: std::sync::OnceLock<Stop>,
    notify: tokio::sync::Notify,
}

impl Interruption {
    fn set(&self, stop: Stop) {
        if self.reason.set(stop).is_ok() {
            self.notify.notify_waiters();
        }
        // Wake a session that is not waiting right now too.
        self.notify.notify_one();
    }

    fn is_set(&self) -> bool {
        self.reason.get().is_some()
    }

    async fn wait(&self) -> Stop {
        loop {
            if let Some(stop) = self.reason.get() {
                return *stop;
            }
            self.notify.notified().await;
        }
    }
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        multiple: false,
    }
}

/// Decides what becomes of one delivery.
struct Settle {
    republisher: Arc<tokio::sync::Mutex<Channel>>,
    topology: Topology,
    queue: WorkQueue,
    max_attempts: u32,
    handler_timeout: Duration,
    fault_injection: bool,
    database: Option<Database>,
    interrupted: Arc<Interruption>,
}

impl Settle {
    /// Settles deliveries taken together: those a batching handler can take as one batch, the
    /// others (and all of them, if the batch does not get through) one by one.
    async fn handle_all<H: Handler>(
        &self,
        deliveries: Vec<lapin::message::Delivery>,
        handler: &H,
    ) -> Result<()> {
        let mut batch = Vec::with_capacity(deliveries.len());
        let mut alone = Vec::new();
        for delivery in deliveries {
            match self.batchable(&delivery) {
                Some(envelope) if H::BATCHES => batch.push((delivery, envelope)),
                _ => alone.push(delivery),
            }
        }
        if !batch.is_empty() {
            let (deliveries, mut envelopes): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let count = envelopes.len();
            // One span per message, alive while the batch is handled; each envelope now names
            // its span as the parent of what the handler does for it.
            let spans: Vec<tracing::Span> = deliveries
                .iter()
                .zip(envelopes.iter_mut())
                .map(|(delivery, envelope)| self.process_span(delivery, envelope))
                .collect();
            let handled = AssertUnwindSafe(tokio::time::timeout(
                self.handler_timeout,
                handler.handle_batch(envelopes),
            ))
            .catch_unwind()
            .await;
            match handled {
                Ok(Ok(Some(outcomes))) if outcomes.len() == count => {
                    metrics::histogram!("consumer_batch_size", "queue" => self.topology.queue(self.queue))
                        .record(count as f64);
                    for ((delivery, outcome), span) in
                        deliveries.into_iter().zip(outcomes).zip(&spans)
                    {
                        if outcome.is_err() {
                            span.record("error.type", "handler");
                        }
                        self.settle(delivery, outcome).await?;
                    }
                }
                _ if self.database_down().await => {
                    // Nothing to learn from trying each alone: the outage failed them all.
                    for span in &spans {
                        span.record("error.type", "unavailable");
                    }
                    for delivery in deliveries {
                        let outcome = Err(HandlerError::Unavailable(
                            "the database is unreachable".to_owned(),
                        ));
                        self.settle(delivery, outcome).await?;
                    }
                }
                _ => {
                    tracing::debug!(
                        count,
                        "a batch did not get through; handling its messages one by one"
                    );
                    // Each message gets a span of its own on the single path.
                    for span in &spans {
                        span.record("error.type", "batch");
                    }
                    alone.extend(deliveries);
                }
            }
            drop(spans);
        }
        for delivery in alone {
            self.handle(delivery, handler).await?;
        }
        Ok(())
    }

    /// The envelope of a delivery that may go in a batch: one that decodes, plays no injected
    /// fault and has not been handed out unsettled too often (each of those takes the single path,
    /// which knows what to do with it).
    fn batchable(&self, delivery: &lapin::message::Delivery) -> Option<Envelope> {
        if header_count(&delivery.properties, DELIVERY_COUNT_HEADER) >= UNSETTLED_DELIVERY_LIMIT {
            return None;
        }
        if self.fault_injection && InjectedFault::requested_by(&delivery.properties).is_some() {
            return None;
        }
        Envelope::from_bytes(&delivery.data).ok()
    }

    /// The `process <queue>` span of a delivery, a child of the span that published it; the
    /// envelope is made to carry the new span's context, so that a handler's work (also in a
    /// batch, where no one span is current) continues the message's trace.
    fn process_span(
        &self,
        delivery: &lapin::message::Delivery,
        envelope: &mut Envelope,
    ) -> tracing::Span {
        let span = spans::process(
            &self.topology.queue(self.queue),
            envelope,
            delivery.redelivered,
        );
        if let Some(own) = orion_telemetry::propagation::traceparent(&span) {
            envelope.traceparent = Some(own);
        }
        span
    }

    async fn handle<H: Handler>(
        &self,
        delivery: lapin::message::Delivery,
        handler: &H,
    ) -> Result<()> {
        let redeliveries = header_count(&delivery.properties, DELIVERY_COUNT_HEADER);
        let outcome = match Envelope::from_bytes(&delivery.data) {
            // Handed out this often without ever being settled: each time, the process holding
            // it died (a handler that crashes or exhausts it). Park it rather than crash again.
            Ok(_) if redeliveries >= UNSETTLED_DELIVERY_LIMIT => {
                Err(HandlerError::Permanent(format!(
                    "delivered {redeliveries} times without being settled; the handler may crash the process"
                )))
            }
            Ok(mut envelope) => {
                let span = self.process_span(&delivery, &mut envelope);
                let fault = self
                    .fault_injection
                    .then(|| InjectedFault::requested_by(&delivery.properties))
                    .flatten();
                let run = async {
                    if let Some(fault) = fault {
                        fault.strike();
                    }
                    handler.handle(envelope).await
                };
                let handled = AssertUnwindSafe(tokio::time::timeout(
                    self.handler_timeout,
                    run.instrument(span.clone()),
                ))
                .catch_unwind()
                .await;
                if !matches!(handled, Ok(Ok(Ok(())))) {
                    span.record("error.type", "handler");
                }
                match handled {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(HandlerError::Retryable(format!(
                        "the handler took longer than {} s",
                        self.handler_timeout.as_secs()
                    ))),
                    // A panic is the message's failure like any other: counted, retried, parked
                    // after the limit, while the other messages keep flowing.
                    Err(panic) => Err(HandlerError::Retryable(format!(
                        "the handler panicked: {}",
                        panic_message(panic.as_ref())
                    ))),
                }
            }
            Err(error) => Err(HandlerError::Permanent(format!(
                "undecodable message: {error}"
            ))),
        };
        self.settle(delivery, outcome).await
    }

    /// Acknowledges a handled message, or sends it on: back to the queue later (an outage, a
    /// retryable failure) or to the parking queue. Acknowledged one by one, never `multiple`:
    /// other tasks of this channel hold deliveries with lower tags that are not settled yet.
    async fn settle(
        &self,
        delivery: lapin::message::Delivery,
        outcome: Result<(), HandlerError>,
    ) -> Result<()> {
        let attempts = attempts(&delivery.properties);
        let queue_name = self.topology.queue(self.queue);
        let counted = |outcome: &'static str| {
            metrics::counter!("messages_handled_total", "queue" => queue_name.clone(), "outcome" => outcome)
                .increment(1);
        };
        // The database decides whose failure it was: while it does not answer, the outage's
        // (no attempt spent); while it does, the message's, whatever the handler thought (a
        // statement that always times out must not be retried for free for ever).
        let outcome = match outcome {
            Err(HandlerError::Retryable(error) | HandlerError::Unavailable(error))
                if self.database.is_some() =>
            {
                if self.database_down().await {
                    Err(HandlerError::Unavailable(error))
                } else {
                    Err(HandlerError::Retryable(error))
                }
            }
            other => other,
        };
        match outcome {
            Ok(()) => counted("ok"),
            Err(HandlerError::Unavailable(error)) => {
                counted("deferred");
                tracing::warn!(queue = %queue_name, %error, "a dependency is down; message handed back and consumer paused");
                self.interrupted.set(Stop::DependencyDown);
                // Back through the first retry queue as a fresh message with its attempt count
                // unchanged: a requeue would raise the broker's delivery count, which counts
                // toward parking a message that crashes its consumer.
                let level = 0;
                let retry_queue = self.topology.retry_queue(self.queue, level);
                if self
                    .republish(&retry_queue, &delivery, attempts, &error)
                    .await
                    .is_err()
                {
                    delivery.acker.nack(requeue()).await?;
                    return Ok(());
                }
            }
            Err(HandlerError::Retryable(error)) if attempts + 1 < self.max_attempts => {
                counted("retried");
                let level = usize::try_from(attempts)
                    .unwrap_or(usize::MAX)
                    .min(RETRY_DELAYS_MS.len() - 1);
                let retry_queue = self.topology.retry_queue(self.queue, level);
                tracing::info!(queue = %retry_queue, attempt = attempts + 1, %error, "handler failed; retrying later");
                self.republish(&retry_queue, &delivery, attempts + 1, &error)
                    .await?;
            }
            Err(error) => {
                counted("parked");
                tracing::warn!(attempts = attempts + 1, %error, "message parked in the dead-letter queue");
                self.republish(
                    &self.topology.dead_queue(),
                    &delivery,
                    attempts + 1,
                    &error.to_string(),
                )
                .await?;
            }
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    async fn database_down(&self) -> bool {
        match &self.database {
            Some(database) => !database.is_up().await,
            None => false,
        }
    }

    /// Publishes a copy of the delivery to `queue` (through the default exchange) with its
    /// attempt count and error, and waits for the confirm.
    async fn republish(
        &self,
        queue: &str,
        delivery: &lapin::message::Delivery,
        attempts: u32,
        error: &str,
    ) -> Result<()> {
        // The broker's own counters describe this delivery, not the copy.
        let mut headers: FieldTable = delivery
            .properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .filter(|(name, _)| !BROKER_HEADERS.contains(&name.as_str()))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect::<std::collections::BTreeMap<_, _>>()
                    .into()
            })
            .unwrap_or_default();
        headers.insert(
            ShortString::from(ATTEMPTS_HEADER),
            AMQPValue::LongUInt(attempts),
        );
        let error: String = error.chars().take(1000).collect();
        headers.insert(
            ShortString::from(ERROR_HEADER),
            AMQPValue::LongString(LongString::from(error)),
        );
        headers.insert(
            ShortString::from(ORIGIN_HEADER),
            AMQPValue::LongString(LongString::from(self.topology.queue(self.queue))),
        );
        let properties: BasicProperties = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let republisher = self.republisher.lock().await;
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            republisher
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &delivery.data,
                    properties,
                )
                .await?
                .await
        })
        .await
        .map_err(|_| Error::Timeout(CONFIRM_TIMEOUT))??;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(Error::Unroutable(queue.to_owned())),
            Confirmation::Nack(_) => Err(Error::Nacked),
            Confirmation::NotRequested => Err(Error::NotConfirmed),
        }
    }
}

/// How many times the message failed before.
fn attempts(properties: &BasicProperties) -> u32 {
    header_count(properties, ATTEMPTS_HEADER)
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// A numeric header, 0 when absent.
fn header_count(properties: &BasicProperties, name: &str) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(n)),
            _ => None,
        })
        .unwrap_or(0)
}
