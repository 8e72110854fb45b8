//! Orion's webhooks as their own small library, shared by the API (which registers endpoints and
//! checks their addresses) and the worker (which signs and sends):
//!
//! - [`signature`]: secrets and signatures per Standard Webhooks 1.0;
//! - [`address`]: the guard against server-side request forgery, at registration and, after the
//!   name is resolved, at every delivery;
//! - [`schedule`]: when a failed delivery is tried again;
//! - [`sender`]: one signed delivery attempt over HTTP.

pub mod address;
pub mod schedule;
pub mod sender;
pub mod signature;

use serde::Serialize;
use time::OffsetDateTime;

pub use address::{AddressPolicy, check_url};
pub use schedule::RetrySchedule;
pub use sender::{Attempt, Sender};
pub use signature::Secret;

/// The event types an endpoint may subscribe to, in the order the documents list them.
pub const EVENT_TYPES: [&str; 7] = [
    "order.placed",
    "order.confirmed",
    "order.failed",
    "order.cancelled",
    "order.shipped",
    "order.delivered",
    "inventory.low_stock",
];

/// Subscribes an endpoint to every event type, present and future.
pub const ALL_EVENTS: &str = "*";

/// The event `POST /api/admin/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";

/// What can go wrong with a webhook's settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not one Orion will deliver to (the message says why, for the caller).
    #[error("{0}")]
    Url(String),
    /// The URL's host resolves to an address on a private network.
    #[error("{0}")]
    Forbidden(String),
    #[error("not a webhook secret: {0}")]
    Secret(String),
    #[error("not a retry schedule: {0}")]
    Schedule(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A webhook's body: `{"type", "timestamp", "data"}`. It is written once, when the event is
/// fanned out, and sent byte for byte on every attempt (the signature covers it).
pub fn body(event_type: &str, timestamp: OffsetDateTime, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Body<'a, T> {
        #[serde(rename = "type")]
        event_type: &'a str,
        #[serde(with = "time::serde::rfc3339")]
        timestamp: OffsetDateTime,
        data: &'a T,
    }
    // A struct of a string, a time and a value that serialized once already cannot fail.
    serde_json::to_string(&Body {
        event_type,
        timestamp,
        data,
    })
    .unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let at = time::macros::datetime!(2026-12-03 10:00:00 UTC);
        let body = body("order.placed", at, &serde_json::json!({"id": 1}));
        assert_eq!(
            body,
            r#"{"type":"order.placed","timestamp":"2026-12-03T10:00:00Z","data":{"id":1}}"#
        );
    }
}
