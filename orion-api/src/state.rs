//! The state every handler shares.

use std::sync::Arc;

use orion_persistence::Pool;

use crate::Config;

/// Cheap to clone: everything inside is shared.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    instance_id: Arc<str>,
}

impl AppState {
    pub fn new(config: Config, pool: Pool) -> Self {
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("api-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        Self {
            pool,
            config: Arc::new(config),
            instance_id: instance_id.into(),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}
