//! Parked messages: the keeper moves what lands in `orion.dead` into the `dead_letters` table,
//! where admins can list it, and a replay sends a stored copy back to the queue it failed in.
//!
//! The broker is a poor place to browse from (reading a queue means taking messages off it), so
//! the table is the readable copy. A message is acked off `orion.dead` only after its row is
//! committed; a crash in between stores it twice at worst, never loses it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use orion_persistence::Pool;
use orion_persistence::dead_letters::{self, DeadLetter};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dependencies::Database;
use crate::{
    ATTEMPTS_HEADER, Broker, ERROR_HEADER, Error, ORIGIN_HEADER, Publisher, Result, Topology,
};

/// Drains the parking queue into the database.
#[derive(Debug, Clone)]
pub struct DeadLetterKeeper {
    broker: Arc<Broker>,
    topology: Topology,
    pool: Pool,
}

impl DeadLetterKeeper {
    pub fn new(broker: Arc<Broker>, topology: Topology, pool: Pool) -> Self {
        Self {
            broker,
            topology,
            pool,
        }
    }

    /// Stores every parked message until `shutdown` completes, reconnecting after broker losses.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        let database = Database::new(self.pool.clone());
        let queue = self.topology.dead_queue();
        loop {
            // Parked messages wait in the queue, untouched, while there is nowhere to keep them.
            if !database.wait_until_up(&mut shutdown, &queue).await {
                break;
            }
            tokio::select! {
                () = &mut shutdown => break,
                result = self.session() => match result {
                    Ok(()) => failures = 0,
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(%error, failures, "dead-letter keeper lost the broker; reconnecting");
                    }
                },
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)))
                .min(Duration::from_secs(30));
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("dead-letter keeper stopped");
    }

    /// One consumer session. Messages are handled one at a time: parking is rare.
    async fn session(&self) -> Result<()> {
        let channel = self.broker.channel().await?;
        self.topology.declare(&channel).await?;
        channel.basic_qos(16, BasicQosOptions::default()).await?;
        let mut deliveries = channel
            .basic_consume(
                self.topology.dead_queue().as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            let letter = parked(&delivery, OffsetDateTime::now_utc());
            let stored = async {
                let mut conn = self.pool.acquire().await?;
                dead_letters::insert_dead_letter(&mut conn, &letter).await
            }
            .await;
            match stored {
                Ok(()) => {
                    metrics::counter!("dead_letters_total", "queue" => letter.origin_queue.clone())
                        .increment(1);
                    tracing::warn!(dead_letter.id = %letter.id, queue = %letter.origin_queue, error = %letter.error, "message parked");
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                }
                Err(error) => {
                    // Neither dropped nor retried in a loop: the message (and every one held
                    // behind it) goes back to the queue, and the keeper comes back after a
                    // pause, once the database answers.
                    tracing::warn!(%error, "cannot store a parked message; it stays in the queue");
                    let _ = delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await;
                    let _ = channel.close(200, "pausing".into()).await;
                    return Err(Error::Persistence(error));
                }
            }
        }
        Ok(())
    }
}

/// The stored form of a delivery taken off the parking queue.
fn parked(delivery: &Delivery, now: OffsetDateTime) -> DeadLetter {
    let properties = &delivery.properties;
    let headers = properties
        .headers()
        .as_ref()
        .map(headers_to_json)
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let attempts = headers
        .get(ATTEMPTS_HEADER)
        .and_then(serde_json::Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0);
    DeadLetter {
        id: Uuid::now_v7(),
        message_id: properties.message_id().as_ref().map(ToString::to_string),
        event_type: properties.kind().as_ref().map(ToString::to_string),
        // A message the broker parked itself (its delivery limit) names its queue and reason in
        // the dead-lettering headers instead of Orion's.
        origin_queue: text(ORIGIN_HEADER)
            .or_else(|| text("x-first-death-queue"))
            .unwrap_or_default(),
        error: text(ERROR_HEADER)
            .or_else(|| {
                text("x-first-death-reason").map(|reason| {
                    format!("parked by the broker ({reason}): never settled by a consumer")
                })
            })
            .unwrap_or_else(|| "no error recorded".to_owned()),
        attempts,
        content_type: properties.content_type().as_ref().map(ToString::to_string),
        headers,
        body: delivery.data.clone(),
        parked_at: now,
        replayed_at: None,
        replay_count: 0,
    }
}

/// Sends a stored parked message back to the queue it failed in, with its failure count reset
/// (the consumers' inbox makes a replay of something already handled harmless).
pub async fn replay(publisher: &Publisher, letter: &DeadLetter) -> Result<()> {
    let mut kept = letter.headers.clone();
    if let Some(map) = kept.as_object_mut() {
        for internal in [ATTEMPTS_HEADER, ERROR_HEADER, ORIGIN_HEADER]
            .into_iter()
            .chain(crate::consumer::BROKER_HEADERS)
        {
            map.remove(internal);
        }
    }
    let mut headers = json_to_headers(&kept);
    headers.insert(
        ShortString::from("x-orion-replay-of"),
        AMQPValue::LongString(LongString::from(letter.id.to_string())),
    );
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(id) = &letter.message_id {
        properties = properties.with_message_id(id.as_str().into());
    }
    if let Some(kind) = &letter.event_type {
        properties = properties.with_type(kind.as_str().into());
    }
    if let Some(content_type) = &letter.content_type {
        properties = properties.with_content_type(content_type.as_str().into());
    }
    publisher
        .send_to_queue(&letter.origin_queue, &letter.body, properties)
        .await
}

/// AMQP headers as a JSON object: strings, numbers and booleans as themselves, anything else as
/// its debug text (readable, though not replayed in its original type).
fn headers_to_json(table: &FieldTable) -> serde_json::Value {
    let map = table
        .inner()
        .iter()
        .map(|(key, value)| {
            let value = match value {
                AMQPValue::LongString(s) => serde_json::Value::from(s.to_string()),
                AMQPValue::ShortString(s) => serde_json::Value::from(s.as_str()),
                AMQPValue::Boolean(b) => serde_json::Value::from(*b),
                AMQPValue::ShortShortInt(n) => serde_json::Value::from(*n),
                AMQPValue::ShortShortUInt(n) => serde_json::Value::from(*n),
                AMQPValue::ShortInt(n) => serde_json::Value::from(*n),
                AMQPValue::ShortUInt(n) => serde_json::Value::from(*n),
                AMQPValue::LongInt(n) => serde_json::Value::from(*n),
                AMQPValue::LongUInt(n) => serde_json::Value::from(*n),
                AMQPValue::LongLongInt(n) => serde_json::Value::from(*n),
                other => serde_json::Value::from(format!("{other:?}")),
            };
            (key.to_string(), value)
        })
        .collect();
    serde_json::Value::Object(map)
}

fn json_to_headers(json: &serde_json::Value) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in json.as_object().into_iter().flatten() {
        let value = match value {
            serde_json::Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            serde_json::Value::Bool(b) => AMQPValue::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(n) => AMQPValue::LongLongInt(n),
                None => AMQPValue::LongString(LongString::from(n.to_string())),
            },
            other => AMQPValue::LongString(LongString::from(other.to_string())),
        };
        table.insert(ShortString::from(key.as_str()), value);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_survive_the_round_trip_through_json() {
        let mut table = FieldTable::default();
        table.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from("00-abc-def-01")),
        );
        table.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(5));
        table.insert("flag".into(), AMQPValue::Boolean(true));
        let json = headers_to_json(&table);
        assert_eq!(json["traceparent"], "00-abc-def-01");
        assert_eq!(json[ATTEMPTS_HEADER], 5);
        let back = json_to_headers(&json);
        assert_eq!(
            back.inner().get("traceparent"),
            Some(&AMQPValue::LongString(LongString::from("00-abc-def-01")))
        );
        assert_eq!(
            back.inner().get(ATTEMPTS_HEADER),
            Some(&AMQPValue::LongLongInt(5))
        );
        assert_eq!(back.inner().get("flag"), Some(&AMQPValue::Boolean(true)));
    }
}
