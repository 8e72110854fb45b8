//! Consuming a work queue: manual acks, bounded prefetch and concurrency, retries through the
//! retry queues, parking in `orion.dead`, reconnection after a broker loss, and a graceful stop
//! (stop taking messages, finish and ack what is in flight, return).
//!
//! A message is acked only after its outcome is settled: handled, re-published to a retry queue,
//! or parked (each re-publication confirmed first). A crash in between redelivers it, which the
//! handlers' inbox makes harmless.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Semaphore;

use crate::{Broker, Envelope, Error, RETRY_DELAYS_MS, Result, Topology, WorkQueue};

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
}

/// Tunables of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Unacked messages the broker may send ahead.
    pub prefetch: u16,
    /// Messages handled at the same time.
    pub concurrency: usize,
    /// Failures after which a message is parked.
    pub max_attempts: u32,
    /// Longest a handler may take with one message; after that it counts as a retryable
    /// failure, so a hung dependency cannot hold a slot for ever.
    pub handler_timeout: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            prefetch: 32,
            concurrency: 8,
            max_attempts: 5,
            handler_timeout: Duration::from_secs(120),
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
        }
    }

    /// Feeds every message to `handler` until `shutdown` completes, reconnecting with backoff
    /// whenever the broker goes away.
    pub async fn run<H, F>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(Envelope) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let session = self.session(handler.clone(), &mut shutdown);
            match session.await {
                Ok(Stop::Shutdown) => break,
                Ok(Stop::StreamEnded | Stop::Unsettled) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(queue = %self.topology.queue(self.queue), %error, failures, "consumer lost the broker; reconnecting");
                }
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)))
                .min(Duration::from_secs(30));
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(queue = %self.topology.queue(self.queue), "consumer stopped");
    }

    async fn session<H, F>(
        &self,
        handler: Arc<H>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Stop>
    where
        H: Fn(Envelope) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let channel = self.broker.channel().await?;
        self.topology.declare(&channel).await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let republisher = self.broker.confirm_channel().await?;
        let queue = self.topology.queue(self.queue);
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tag = deliveries.tag();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        // A message that could not be settled stays unacked; ending the session closes the
        // channel, which hands it back to the broker, and the next session starts afresh.
        let unsettled = Arc::new(tokio::sync::Notify::new());
        let stop = loop {
            let next = tokio::select! {
                () = &mut *shutdown => break Stop::Shutdown,
                () = unsettled.notified() => break Stop::Unsettled,
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
            let handler = handler.clone();
            let unsettled = unsettled.clone();
            let settle = Settle {
                republisher: republisher.clone(),
                topology: self.topology.clone(),
                queue: self.queue,
                max_attempts: self.settings.max_attempts,
                handler_timeout: self.settings.handler_timeout,
            };
            tokio::spawn(async move {
                if let Err(error) = settle.handle(delivery, handler.as_ref()).await {
                    tracing::warn!(%error, "could not settle a message; restarting the consumer");
                    unsettled.notify_one();
                }
                drop(permit);
            });
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
        if stop == Stop::Unsettled {
            let _ = channel
                .close(200, "restarting after an unsettled message".into())
                .await;
            return Err(Error::Unsettled);
        }
        Ok(stop)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    StreamEnded,
    Unsettled,
}

/// Decides what becomes of one delivery.
struct Settle {
    republisher: Channel,
    topology: Topology,
    queue: WorkQueue,
    max_attempts: u32,
    handler_timeout: Duration,
}

impl Settle {
    async fn handle<H, F>(&self, delivery: lapin::message::Delivery, handler: &H) -> Result<()>
    where
        H: Fn(Envelope) -> F,
        F: Future<Output = Result<(), HandlerError>>,
    {
        let attempts = attempts(&delivery.properties);
        let outcome = match Envelope::from_bytes(&delivery.data) {
            Ok(envelope) => tokio::time::timeout(self.handler_timeout, handler(envelope))
                .await
                .unwrap_or_else(|_| {
                    Err(HandlerError::Retryable(format!(
                        "the handler took longer than {} s",
                        self.handler_timeout.as_secs()
                    )))
                }),
            Err(error) => Err(HandlerError::Permanent(format!(
                "undecodable message: {error}"
            ))),
        };
        let queue_name = self.topology.queue(self.queue);
        let counted = |outcome: &'static str| {
            metrics::counter!("messages_handled_total", "queue" => queue_name.clone(), "outcome" => outcome)
                .increment(1);
        };
        match outcome {
            Ok(()) => counted("ok"),
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

    /// Publishes a copy of the delivery to `queue` (through the default exchange) with its
    /// attempt count and error, and waits for the confirm.
    async fn republish(
        &self,
        queue: &str,
        delivery: &lapin::message::Delivery,
        attempts: u32,
        error: &str,
    ) -> Result<()> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
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
        let confirm = self
            .republisher
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
            .await?;
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
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPTS_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(n)),
            _ => None,
        })
        .unwrap_or(0)
}
