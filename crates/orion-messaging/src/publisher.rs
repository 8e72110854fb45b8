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
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let sent = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                payload,
                properties,
            )
            .await;
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
        match confirmation {
            Ok(Confirmation::Ack(None)) => Ok(()),
            Ok(Confirmation::Ack(Some(_))) => Err(Error::Unroutable(routing_key.to_owned())),
            Ok(Confirmation::Nack(_)) => Err(Error::Nacked),
            Ok(Confirmation::NotRequested) => Err(Error::NotConfirmed),
            Err(error) => {
                // The channel is likely gone; the next publish opens a new one.
                *self.channel.lock().await = None;
                Err(error.into())
            }
        }
    }
}
