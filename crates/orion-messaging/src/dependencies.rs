//! The database as a dependency of the broker-side loops: consumers and the dead-letter keeper
//! take no deliveries while it is away, so an outage delays messages instead of failing them.

use std::future::Future;
use std::time::Duration;

use orion_persistence::Pool;

/// Longest a single "is it back?" look may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two looks while the database is away.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A handle to probe the database with.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    pool: Pool,
}

impl Database {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Whether the database answers a trivial query now.
    pub(crate) async fn is_up(&self) -> bool {
        tokio::time::timeout(PROBE_TIMEOUT, orion_persistence::ping(&self.pool))
            .await
            .is_ok_and(|answered| answered.is_ok())
    }

    /// Returns once the database answers (true), or when `shutdown` completes first (false).
    /// `who` names the waiting loop in the log and the `paused` gauge.
    pub(crate) async fn wait_until_up(
        &self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        who: &str,
    ) -> bool {
        if self.is_up().await {
            return true;
        }
        tracing::warn!(%who, "the database is unreachable; taking no messages until it answers");
        let paused = metrics::gauge!("consumer_paused", "queue" => who.to_owned());
        paused.set(1.0);
        let up = loop {
            tokio::select! {
                () = &mut *shutdown => break false,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            if self.is_up().await {
                break true;
            }
        };
        paused.set(0.0);
        if up {
            tracing::info!(%who, "the database answers again; resuming");
        }
        up
    }
}
