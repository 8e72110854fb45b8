//! Every exchange and queue of Orion, named from one `Topology { prefix }` so that tests can
//! isolate themselves on a shared broker with a random prefix.
//!
//! - `orion.events`: the topic exchange every domain event is published to, routing key = type.
//! - Work queues `orion.saga`, `orion.email` and `orion.webhooks` (durable, quorum type) bound to exactly the
//!   events their consumer acts on, and `orion.projections` bound to every event, which also
//!   makes every event routable (publishes are `mandatory`).
//! - Per work queue, retry queues `<queue>.retry.<n>` with growing TTLs whose messages
//!   dead-letter back into the work queue: exponential backoff without a scheduler.
//! - `orion.dead`: the parking queue for messages that failed for good.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::Result;

/// Delays of the retry levels, in milliseconds: 1 s, 5 s, 30 s.
pub const RETRY_DELAYS_MS: [u32; 3] = [1_000, 5_000, 30_000];

/// A queue the worker consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    Saga,
    Email,
    Webhooks,
    Projections,
}

impl WorkQueue {
    pub const ALL: [WorkQueue; 4] = [Self::Saga, Self::Email, Self::Webhooks, Self::Projections];

    pub(crate) fn base_name(self) -> &'static str {
        match self {
            Self::Saga => "orion.saga",
            Self::Email => "orion.email",
            Self::Webhooks => "orion.webhooks",
            Self::Projections => "orion.projections",
        }
    }

    /// The routing keys the queue is bound with.
    pub fn bindings(self) -> &'static [&'static str] {
        match self {
            // The decisions made outside the saga; its own steps run inline.
            Self::Saga => &[
                "order.placed",
                "order.cancelled",
                "order.shipped",
                "order.delivered",
            ],
            Self::Email => &[
                "order.placed",
                "order.confirmed",
                "order.failed",
                "order.cancelled",
                "order.shipped",
                "order.delivered",
                "inventory.low_stock",
                "account.registration_attempted",
                "webhook.disabled",
            ],
            // What integrators may subscribe to (`orion_webhooks::EVENT_TYPES`, which a test
            // holds this list to).
            Self::Webhooks => &[
                "order.placed",
                "order.confirmed",
                "order.failed",
                "order.cancelled",
                "order.shipped",
                "order.delivered",
                "inventory.low_stock",
            ],
            Self::Projections => &["#"],
        }
    }

    /// Bindings of earlier versions, removed on declare so an upgraded broker stops routing
    /// events nobody acts on.
    fn retired_bindings(self) -> &'static [&'static str] {
        match self {
            Self::Saga => &["order.*", "inventory.*", "payment.*"],
            Self::Email => &["order.*"],
            Self::Webhooks | Self::Projections => &[],
        }
    }
}

/// Names of everything on the broker, under a prefix (empty in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    retry_delays_ms: [u32; 3],
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            retry_delays_ms: RETRY_DELAYS_MS,
        }
    }

    /// Other retry delays than the default 1 s, 5 s, 30 s. Every process declaring the topology
    /// on one broker must use the same ones: the broker refuses a queue redeclared with another TTL.
    pub fn with_retry_delays(mut self, delays_ms: [u32; 3]) -> Self {
        self.retry_delays_ms = delays_ms;
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic exchange of domain events.
    pub fn events_exchange(&self) -> String {
        format!("{}orion.events", self.prefix)
    }

    pub fn queue(&self, queue: WorkQueue) -> String {
        format!("{}{}", self.prefix, queue.base_name())
    }

    /// The retry queue of `level` (0-based) for `queue`.
    pub fn retry_queue(&self, queue: WorkQueue, level: usize) -> String {
        format!("{}.retry.{}", self.queue(queue), level + 1)
    }

    /// The private queue through which one API replica hears the events its WebSocket clients
    /// are told about (the hub's backplane).
    pub fn notify_queue(&self, instance: &str) -> String {
        format!("{}orion.notify.{instance}", self.prefix)
    }

    /// Where messages that failed for good are parked.
    pub fn dead_queue(&self) -> String {
        format!("{}orion.dead", self.prefix)
    }

    /// Every queue, for declaring and for clean-up.
    pub fn all_queues(&self) -> Vec<String> {
        let mut queues = Vec::new();
        for queue in WorkQueue::ALL {
            queues.push(self.queue(queue));
            queues.extend((0..RETRY_DELAYS_MS.len()).map(|level| self.retry_queue(queue, level)));
        }
        queues.push(self.dead_queue());
        queues
    }

    /// Declares everything. Idempotent: declaring again with the same arguments changes nothing.
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        for queue in WorkQueue::ALL {
            let name = self.queue(queue);
            declare_queue(channel, &name, quorum()).await?;
            for pattern in queue.bindings() {
                channel
                    .queue_bind(
                        name.clone().into(),
                        self.events_exchange().into(),
                        (*pattern).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
            for (level, delay) in self.retry_delays_ms.into_iter().enumerate() {
                // Expired messages go through the default exchange straight back to the work queue.
                let mut arguments = quorum();
                arguments.insert("x-message-ttl".into(), AMQPValue::LongUInt(delay));
                arguments.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(LongString::from("")),
                );
                arguments.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(LongString::from(name.as_str())),
                );
                declare_queue(channel, &self.retry_queue(queue, level), arguments).await?;
            }
        }
        declare_queue(channel, &self.dead_queue(), quorum()).await?;
        for queue in WorkQueue::ALL {
            for pattern in queue.retired_bindings() {
                channel
                    .queue_unbind(
                        self.queue(queue).into(),
                        self.events_exchange().into(),
                        (*pattern).into(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Declares a private queue (exclusive to this connection, deleted with it) bound to
    /// `patterns`: what a process uses to listen to events for itself rather than to share work.
    pub async fn declare_listener(
        &self,
        channel: &Channel,
        name: &str,
        patterns: &[&str],
    ) -> Result<()> {
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), options, FieldTable::default())
            .await?;
        for pattern in patterns {
            channel
                .queue_bind(
                    name.into(),
                    self.events_exchange().into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Removes everything this topology declared (tests clean up after themselves with it).
    pub async fn delete(&self, channel: &Channel) -> Result<()> {
        for queue in self.all_queues() {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        channel
            .exchange_delete(
                self.events_exchange().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }
}

fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    arguments
}

async fn declare_queue(channel: &Channel, name: &str, arguments: FieldTable) -> Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, arguments)
        .await?;
    Ok(())
}
