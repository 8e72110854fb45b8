//! Orion's RabbitMQ side. For now: one shared broker connection that knows whether it is up, opened
//! lazily and reopened after a loss, which readiness probes ask.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio::sync::Mutex;

/// The one error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the broker: {0}")]
    Unreachable(#[from] lapin::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Does not connect yet; the first [`Broker::check`] does.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection: Mutex::new(None),
        }
    }

    /// Succeeds when a connection is open, opening one if there is none or the last one was lost.
    pub async fn check(&self) -> Result<()> {
        let mut connection = self.connection.lock().await;
        if connection.as_ref().is_some_and(|c| c.status().connected()) {
            return Ok(());
        }
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| Error::Timeout(CONNECT_TIMEOUT))??;
        *connection = Some(opened);
        Ok(())
    }
}
