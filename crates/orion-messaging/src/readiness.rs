//! Whether a process's dependencies answer: what every Orion process's `/health/ready` reports.

use orion_persistence::Pool;
use serde_json::{Value, json};

use crate::Broker;

/// The outcome of checking the database and the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub database: bool,
    pub broker: bool,
}

impl Readiness {
    /// Pings both at once, logging what does not answer.
    pub async fn check(pool: &Pool, broker: &Broker) -> Readiness {
        let (database, broker) = tokio::join!(orion_persistence::ping(pool), broker.check());
        if let Err(error) = &database {
            tracing::warn!(%error, "readiness: database unreachable");
        }
        if let Err(error) = &broker {
            tracing::warn!(%error, "readiness: broker unreachable");
        }
        Readiness {
            database: database.is_ok(),
            broker: broker.is_ok(),
        }
    }

    pub fn is_ready(self) -> bool {
        self.database && self.broker
    }

    /// `"ok"` or `"unavailable"`.
    pub fn status(self) -> &'static str {
        if self.is_ready() { "ok" } else { "unavailable" }
    }

    /// Each dependency, `"ok"` or `"unreachable"`.
    pub fn checks(self) -> Value {
        let word = |ok: bool| if ok { "ok" } else { "unreachable" };
        json!({ "database": word(self.database), "broker": word(self.broker) })
    }
}
