//! The one message shape: a CloudEvents-style JSON envelope around a domain event, and the AMQP
//! properties that go with it (persistent, `message_id` = event id).

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A domain event on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    /// The event id; also the AMQP `message_id`, and what consumers de-duplicate by.
    pub id: Uuid,
    /// The event type, e.g. `order.placed`; also the routing key.
    #[serde(rename = "type")]
    pub kind: String,
    /// The process that produced it, e.g. `orion-api`.
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The aggregate the event is about.
    pub subject: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl Envelope {
    pub const SPEC_VERSION: &'static str = "1.0";

    /// The AMQP properties of this envelope: persistent JSON with its id, type and trace headers.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        if let Some(correlation) = self.correlation_id {
            headers.insert(
                ShortString::from("correlation_id"),
                AMQPValue::LongString(LongString::from(correlation.to_string())),
            );
        }
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                ShortString::from("traceparent"),
                AMQPValue::LongString(LongString::from(traceparent.as_str())),
            );
        }
        let timestamp = u64::try_from(self.time.unix_timestamp()).unwrap_or_default();
        BasicProperties::default()
            .with_message_id(self.id.to_string().into())
            .with_type(self.kind.as_str().into())
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2)
            .with_timestamp(timestamp)
            .with_app_id(self.source.as_str().into())
            .with_headers(headers)
    }

    pub fn to_bytes(&self) -> crate::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(crate::Error::Encode)
    }

    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Envelope> {
        serde_json::from_slice(bytes).map_err(crate::Error::Decode)
    }
}
