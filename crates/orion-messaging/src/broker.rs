//! One connection to RabbitMQ per process, opened lazily and reopened after a loss.

use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// How long a connection attempt may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A lazily opened connection to RabbitMQ.
pub struct Broker {
    url: String,
    connection: Mutex<Option<Connection>>,
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
            connection: Mutex::new(None),
        }
    }

    /// Succeeds when a connection is open, opening one if there is none or the last one was lost.
    pub async fn check(&self) -> Result<()> {
        self.with_connection(|_| Ok(())).await
    }

    /// A new channel on the shared connection.
    pub async fn channel(&self) -> Result<Channel> {
        let connection = self.connection.lock().await;
        match connection.as_ref() {
            Some(c) if c.status().connected() => Ok(c.create_channel().await?),
            _ => {
                drop(connection);
                self.check().await?;
                let connection = self.connection.lock().await;
                let connection = connection.as_ref().ok_or(Error::Timeout(CONNECT_TIMEOUT))?;
                Ok(connection.create_channel().await?)
            }
        }
    }

    /// A new channel in publisher-confirm mode.
    pub async fn confirm_channel(&self) -> Result<Channel> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    async fn with_connection(&self, f: impl FnOnce(&Connection) -> Result<()>) -> Result<()> {
        let mut connection = self.connection.lock().await;
        if let Some(open) = connection.as_ref().filter(|c| c.status().connected()) {
            return f(open);
        }
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| Error::Timeout(CONNECT_TIMEOUT))??;
        let result = f(&opened);
        *connection = Some(opened);
        result
    }
}
