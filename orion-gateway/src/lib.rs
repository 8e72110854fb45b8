//! Orion's gateway as a library: `run` serves on a listener the caller binds until the caller's
//! shutdown future completes.

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use orion_config::{CommonArgs, defaults};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Orion's edge in front of the API replicas.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orion-gateway", version, about, long_about = None)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Plain HTTP address.
    #[arg(long, env = "ORION_LISTEN", default_value = defaults::GATEWAY_HTTP)]
    pub listen: SocketAddr,

    /// The orion-api replicas, comma-separated `host:port` entries.
    #[arg(long, env = "ORION_UPSTREAMS", value_delimiter = ',',
          default_values_t = [defaults::API_LISTEN.to_owned(), defaults::API_SECOND_LISTEN.to_owned()])]
    pub upstreams: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves until `shutdown` completes and in-flight requests have finished.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, upstreams = ?config.upstreams, "orion-gateway listening");
    let app = Router::new().route("/health/live", get(live));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("orion-gateway stopped");
    Ok(())
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
