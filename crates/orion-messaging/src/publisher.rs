//! Publishing with confirms: a message counts as sent only when the broker has confirmed it. A
//! nack, a return (unroutable) or a channel error is a failure the caller must handle; the outbox
//! keeps such an event unpublished.

use std::sync::Arc;

use lapin::Channel;
use lapin::Confirmation;
use lapin::options::BasicPublishOptions;
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
        let channel = self.channel().await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let sent = channel
            .basic_publish(
                self.topology.events_exchange().into(),
                envelope.kind.as_str().into(),
                options,
                &payload,
                envelope.properties(),
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
            Ok(Confirmation::Ack(Some(_))) => Err(Error::Unroutable(envelope.kind.clone())),
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
