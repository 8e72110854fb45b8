//! The state every handler shares.

use std::sync::Arc;

use orion_auth::TokenKeys;
use orion_messaging::{Broker, Publisher, Topology};
use orion_persistence::Pool;
use time::Duration;

use crate::Config;
use crate::hashing::PasswordHashing;
use crate::hub::Hub;

/// Cheap to clone: everything inside is shared.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub keys: TokenKeys,
    pub refresh_ttl: Duration,
    pub broker: Arc<Broker>,
    pub publisher: Publisher,
    pub hub: Hub,
    pub(crate) hashing: PasswordHashing,
    instance_id: Arc<str>,
}

impl AppState {
    pub fn new(config: Config, pool: Pool) -> Self {
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("api-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let keys = TokenKeys::new(
            config.jwt.current(),
            &config.jwt.previous(),
            Duration::seconds(config.access_token_ttl_seconds.into()),
        );
        let refresh_ttl = Duration::days(config.refresh_token_ttl_days.into());
        let broker = Arc::new(Broker::new(config.amqp.amqp_url.clone()));
        let publisher = Publisher::new(
            broker.clone(),
            Topology::new(config.amqp.amqp_prefix.clone())
                .with_retry_delays(config.amqp.retry_delays_ms()),
        );
        let hub = Hub::new(config.hub_settings());
        let hashing = PasswordHashing::new(config.password_hash_memory_mib);
        Self {
            pool,
            hub,
            config: Arc::new(config),
            keys,
            refresh_ttl,
            broker,
            publisher,
            hashing,
            instance_id: instance_id.into(),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}
