//! Orion's REST API as a library: `run` serves it on a listener the caller binds, until the
//! caller's shutdown future completes, so tests run the real service in-process on port 0.

mod accounts;
mod config;
mod error;
mod health;
mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use accounts::create_admin;
pub use config::{Cli, Command, Config};
pub use error::{Error, Result};
pub use state::AppState;

/// Connects to the database, applies migrations, seeds demo data in dev mode, then serves HTTP on
/// `listener` until `shutdown` completes and in-flight requests have finished.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    orion_config::check_jwt_secret(config.common.env, &config.jwt_secret)?;
    let pool = orion_persistence::connect(
        &config.database.database_url,
        config.database.database_max_connections,
    )
    .await?;
    orion_persistence::migrate(&pool).await?;
    if config.common.env.is_dev() {
        accounts::seed_dev_data(&pool).await?;
    }
    let state = AppState::new(config, pool);
    let address = listener.local_addr()?;
    tracing::info!(%address, instance = %state.instance_id(), "orion-api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("orion-api stopped");
    Ok(())
}

/// Applies pending migrations and exits.
pub async fn migrate(config: &Config) -> Result<()> {
    let pool = orion_persistence::connect(&config.database.database_url, 2).await?;
    orion_persistence::migrate(&pool).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new().merge(health::routes()).with_state(state)
}
