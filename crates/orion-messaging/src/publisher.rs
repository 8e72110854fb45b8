//! Publishing with confirms: a message counts as sent only when the broker has confirmed it. A
//! nack, a return (unroutable) or a channel error is a failure the caller must handle; the outbox
//! keeps such an event unpublished.

use std::sync::Arc;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Mutex;

use crate::{Broker, Envelope, Error, Result, Topology};

/// Longest wait for the broker's confirm of one message.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Publishes envelopes to the events exchange on a confirm-mode channel, reopened after errors.
#[derive(Debug, Clone)]
pub struct Publisher {
    broker: Arc<Broker>,
    topology: Topology,
    channel: Arc<Mutex<Option<Channel>>>,
}

impl Publisher {
    pub fn new(broker: Arc<Broker>, topology: Topology) -> Self {
        Self {
            broker,
            topology,
            channel: Arc::new(Mutex::new(None)),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn channel(&self) -> Result<Channel> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.broker.confirm_channel().await?;
        self.topology.declare(&channel).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes one envelope, routed by its type, and waits for the broker's confirm.
    pub async fn publish(&self, envelope: &Envelope) -> Result<()> {
        let payload = envelope.to_bytes()?;
        self.send(
            &self.topology.events_exchange(),
            &envelope.kind,
            &payload,
            envelope.properties(),
        )
        .await
    }

    /// Publishes envelopes one after another without waiting in between, then waits for every
    /// confirm: the broker's confirms of a batch arrive together instead of costing a round
    /// trip each. Returns each envelope's outcome, in order. Once the channel fails, the rest
    /// are not sent and fail with the same kind of error.
    pub async fn publish_all(&self, envelopes: &[Envelope]) -> Vec<Result<()>> {
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(error) => {
                let text = error.to_string();
                return envelopes
                    .iter()
                    .map(|_| Err(Error::ChannelLost(text.clone())))
                    .collect();
            }
        };
        let exchange = self.topology.events_exchange();
        let mut pending = Vec::with_capacity(envelopes.len());
        let mut broken: Option<String> = None;
        for envelope in envelopes {
            if let Some(text) = &broken {
                pending.push(Err(Error::ChannelLost(text.clone())));
                continue;
            }
            let payload = match envelope.to_bytes() {
                Ok(payload) => payload,
                Err(error) => {
                    pending.push(Err(error));
                    continue;
                }
            };
            let sent = start_publish(
                &channel,
                &exchange,
                &envelope.kind,
                &payload,
                envelope.properties(),
            )
            .await;
            match sent {
                Ok(confirm) => pending.push(Ok((confirm, envelope.kind.as_str()))),
                Err(error) => {
                    broken = Some(error.to_string());
                    pending.push(Err(error.into()));
                }
            }
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        for item in pending {
            let outcome = match item {
                Ok((confirm, routing_key)) => {
                    match tokio::time::timeout_at(deadline, confirm).await {
                        Ok(confirmation) => confirmed(confirmation, routing_key),
                        Err(_) => Err(Error::Timeout(CONFIRM_TIMEOUT)),
                    }
                }
                Err(error) => Err(error),
            };
            if matches!(outcome, Err(Error::Timeout(_) | Error::Broker(_))) {
                broken.get_or_insert_with(|| "the channel failed".to_owned());
            }
            outcomes.push(outcome);
        }
        if broken.is_some() {
            // The channel is likely gone; the next publish opens a new one.
            *self.channel.lock().await = None;
        }
        outcomes
    }

    /// Sends a message straight to one queue (through the default exchange), as a replay of a
    /// parked message does, and waits for the broker's confirm.
    pub async fn send_to_queue(
        &self,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        self.send("", queue, payload, properties).await
    }

    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let channel = self.channel().await?;
        let sent = start_publish(&channel, exchange, routing_key, payload, properties).await;
        // A broker under a resource alarm accepts but does not confirm; give up rather than hang.
        let confirmation = match sent {
            Ok(confirm) => match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(result) => result,
                Err(_) => {
                    *self.channel.lock().await = None;
                    return Err(Error::Timeout(CONFIRM_TIMEOUT));
                }
            },
            Err(error) => Err(error),
        };
        let outcome = confirmed(confirmation, routing_key);
        if matches!(outcome, Err(Error::Broker(_))) {
            // The channel is likely gone; the next publish opens a new one.
            *self.channel.lock().await = None;
        }
        outcome
    }
}

/// Sends one message, `mandatory` (an unroutable one comes back as a failure); the returned
/// confirm is awaited by the caller.
async fn start_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> lapin::Result<lapin::PublisherConfirm> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            properties,
        )
        .await
}

/// What the broker's answer to one publish means.
fn confirmed(confirmation: lapin::Result<Confirmation>, routing_key: &str) -> Result<()> {
    match confirmation {
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(_))) => Err(Error::Unroutable(routing_key.to_owned())),
        Ok(Confirmation::Nack(_)) => Err(Error::Nacked),
        Ok(Confirmation::NotRequested) => Err(Error::NotConfirmed),
        Err(error) => Err(error.into()),
    }
}
