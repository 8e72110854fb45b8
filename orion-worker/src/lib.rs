//! Orion's worker as a library: `run` serves its health endpoints on a listener the caller binds
//! and works until the caller's shutdown future completes.

mod health;

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use orion_config::{AmqpArgs, CommonArgs, DatabaseArgs, defaults};
use orion_messaging::{Broker, OutboxRelay, Publisher, RelaySettings, Topology};
use tokio::net::TcpListener;

/// Orion's worker: the order saga, payments, email and read-model projections.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orion-worker", version, about, long_about = None)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address of the health and metrics endpoints.
    #[arg(long, env = "ORION_LISTEN", default_value = defaults::WORKER_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub amqp: AmqpArgs,

    /// SMTP server for customer email, e.g. `smtp://127.0.0.1:1025` or `smtps://user:pass@host`.
    #[arg(long, env = "ORION_SMTP_URL", default_value = defaults::SMTP_URL, hide_env_values = true)]
    pub smtp_url: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Persistence(#[from] orion_persistence::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects to the database, applies migrations, then serves health until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let pool = orion_persistence::connect(
        &config.database.database_url,
        config.database.database_max_connections,
    )
    .await?;
    orion_persistence::migrate(&pool).await?;
    let broker = Arc::new(Broker::new(config.amqp.amqp_url.clone()));
    let publisher = Publisher::new(
        broker.clone(),
        Topology::new(config.amqp.amqp_prefix.clone()),
    );
    let relay = OutboxRelay::new(
        pool.clone(),
        publisher,
        "orion-worker",
        RelaySettings::default(),
    )
    .spawn();
    let address = listener.local_addr()?;
    tracing::info!(%address, "orion-worker listening");
    let served = axum::serve(listener, health::routes(pool, broker))
        .with_graceful_shutdown(shutdown)
        .await;
    relay.stop().await;
    served?;
    tracing::info!("orion-worker stopped");
    Ok(())
}
