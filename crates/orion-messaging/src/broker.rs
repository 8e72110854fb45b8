//! The process's connections to RabbitMQ, opened lazily and reopened after a loss: one for
//! consuming and one for publishing. RabbitMQ blocks a publishing connection under a resource
//! alarm (`connection.blocked`); were acks on the same connection, consumers would stall with it.

use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

use crate::{Error, Result, connecting};

/// How long a connection attempt, AMQP handshake included, may take before the broker counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long opening a channel (or putting it in confirm mode) may take: a broker that accepted
/// the TCP connection but does not answer (restarting, partitioned) must not hang its caller.
const CHANNEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Lazily opened connections to RabbitMQ.
pub struct Broker {
    url: String,
    consuming: Mutex<Option<Connection>>,
    publishing: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// Does not connect yet; the first use does.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            consuming: Mutex::new(None),
            publishing: Mutex::new(None),
        }
    }

    /// Succeeds when a connection is open, opening one if there is none or the last one was lost.
    pub async fn check(&self) -> Result<()> {
        let mut connection = self.consuming.lock().await;
        self.connect(&mut connection).await.map(drop)
    }

    /// Closes both connections; the next use opens new ones. The broker hands every unacked
    /// delivery of a closed connection back to its queue.
    pub async fn close(&self) {
        for slot in [&self.consuming, &self.publishing] {
            if let Some(connection) = slot.lock().await.take() {
                let _ =
                    tokio::time::timeout(CHANNEL_TIMEOUT, connection.close(200, "closing".into()))
                        .await;
            }
        }
    }

    /// A new channel for consuming (and declaring).
    pub async fn channel(&self) -> Result<Channel> {
        self.open_channel(&self.consuming).await
    }

    /// A new channel in publisher-confirm mode, on the publishing connection.
    pub async fn confirm_channel(&self) -> Result<Channel> {
        let channel = self.open_channel(&self.publishing).await?;
        tokio::time::timeout(
            CHANNEL_TIMEOUT,
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .map_err(|_| Error::Timeout(CHANNEL_TIMEOUT))??;
        Ok(channel)
    }

    async fn open_channel(&self, slot: &Mutex<Option<Connection>>) -> Result<Channel> {
        let mut connection = slot.lock().await;
        let open = self.connect(&mut connection).await?;
        let created = tokio::time::timeout(CHANNEL_TIMEOUT, open.create_channel()).await;
        match created {
            Ok(channel) => Ok(channel?),
            Err(_) => {
                // The connection looks open but does not answer: start afresh next time.
                *connection = None;
                Err(Error::Timeout(CHANNEL_TIMEOUT))
            }
        }
    }

    /// The open connection in `slot`, reopened if it was lost.
    async fn connect<'a>(&self, slot: &'a mut Option<Connection>) -> Result<&'a Connection> {
        if slot.as_ref().is_none_or(|c| !c.status().connected()) {
            *slot = Some(connecting::open(&self.url, CONNECT_TIMEOUT).await?);
        }
        slot.as_ref().ok_or(Error::Timeout(CONNECT_TIMEOUT))
    }
}
