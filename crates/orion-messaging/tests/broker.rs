//! The topology and the publisher against a real RabbitMQ, each test under its own prefix.

// In a test, a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use orion_messaging::{Broker, Envelope, Error, Publisher, Topology, WorkQueue};
use time::OffsetDateTime;
use uuid::Uuid;

fn broker() -> Arc<Broker> {
    let url = std::env::var("ORION_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    Arc::new(Broker::new(url))
}

fn topology() -> Topology {
    Topology::new(format!("test-{}.", Uuid::new_v4().simple()))
}

fn envelope(kind: &str) -> Envelope {
    Envelope {
        specversion: Envelope::SPEC_VERSION.into(),
        id: Uuid::now_v7(),
        kind: kind.into(),
        source: "orion-tests".into(),
        time: OffsetDateTime::now_utc(),
        subject: Uuid::now_v7().to_string(),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        datacontenttype: "application/json".into(),
        data: serde_json::json!({"order_id": "x"}),
    }
}

async fn get(channel: &lapin::Channel, queue: &str) -> Option<Envelope> {
    let message = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")?;
    Some(Envelope::from_bytes(&message.delivery.data).expect("an envelope"))
}

#[tokio::test]
async fn declaring_twice_is_harmless_and_events_reach_the_bound_queues() {
    let broker = broker();
    let topology = topology();
    let channel = broker.channel().await.expect("channel");
    topology.declare(&channel).await.expect("first declaration");
    topology
        .declare(&channel)
        .await
        .expect("second declaration is idempotent");
    for queue in topology.all_queues() {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.clone().into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("{queue}: {e}"));
    }

    let publisher = Publisher::new(broker.clone(), topology.clone());
    let placed = envelope("order.placed");
    publisher.publish(&placed).await.expect("confirmed");
    let low = envelope("inventory.low_stock");
    publisher.publish(&low).await.expect("confirmed");
    let adjusted = envelope("inventory.adjusted");
    publisher.publish(&adjusted).await.expect("confirmed");

    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Saga)).await,
        Some(placed.clone())
    );
    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Saga)).await,
        None,
        "the saga gets only the decisions made outside it"
    );
    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Email)).await,
        Some(placed.clone())
    );
    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Email)).await,
        Some(low.clone())
    );
    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Email)).await,
        None,
        "email does not get inventory.adjusted"
    );
    for expected in [&placed, &low, &adjusted] {
        assert_eq!(
            get(&channel, &topology.queue(WorkQueue::Projections))
                .await
                .as_ref(),
            Some(expected)
        );
    }
    topology.delete(&channel).await.expect("clean up");
}

#[tokio::test]
async fn messages_are_persistent_and_carry_their_identity() {
    let broker = broker();
    let topology = topology();
    let publisher = Publisher::new(broker.clone(), topology.clone());
    let sent = envelope("order.cancelled");
    publisher.publish(&sent).await.expect("confirmed");
    let channel = broker.channel().await.unwrap();
    let message = channel
        .basic_get(
            topology.queue(WorkQueue::Saga).into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("delivered");
    let properties = &message.delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned()),
        Some(sent.id.to_string())
    );
    assert_eq!(message.delivery.routing_key.as_str(), "order.cancelled");
    let headers = properties.headers().clone().unwrap_or_default();
    assert!(headers.inner().contains_key("traceparent"));
    assert!(headers.inner().contains_key("correlation_id"));
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn an_unroutable_message_is_a_failure_not_a_silent_loss() {
    let broker = broker();
    let topology = topology();
    let publisher = Publisher::new(broker.clone(), topology.clone());
    publisher
        .publish(&envelope("order.placed"))
        .await
        .expect("declares and publishes");
    // Remove every queue: the exchange is left with no bindings.
    let channel = broker.channel().await.unwrap();
    for queue in topology.all_queues() {
        channel
            .queue_delete(queue.into(), Default::default())
            .await
            .unwrap();
    }
    let error = publisher
        .publish(&envelope("order.placed"))
        .await
        .expect_err("returned");
    assert!(
        matches!(error, Error::Unroutable(ref kind) if kind == "order.placed"),
        "{error}"
    );
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn a_retry_queue_hands_its_message_back_after_its_delay() {
    let broker = broker();
    let topology = topology();
    let channel = broker.channel().await.unwrap();
    topology.declare(&channel).await.unwrap();
    let retried = envelope("order.placed");
    let retry_queue = topology.retry_queue(WorkQueue::Saga, 0);
    channel
        .basic_publish(
            "".into(),
            retry_queue.as_str().into(),
            BasicPublishOptions::default(),
            &retried.to_bytes().unwrap(),
            retried.properties(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        get(&channel, &topology.queue(WorkQueue::Saga)).await,
        None,
        "not before its delay"
    );
    let mut back = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = get(&channel, &topology.queue(WorkQueue::Saga)).await;
        if back.is_some() {
            break;
        }
    }
    assert_eq!(
        back,
        Some(retried),
        "back in the work queue after about 1 s"
    );
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let broker = Broker::new("amqp://guest:guest@127.0.0.1:1/%2f");
    let started = std::time::Instant::now();
    assert!(broker.check().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn management(
    topology: &Topology,
) -> (
    orion_messaging::Management,
    Vec<orion_messaging::QueuePolicy>,
) {
    let url = std::env::var("ORION_TEST_AMQP_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:15672".into());
    let amqp = std::env::var("ORION_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    (
        orion_messaging::Management::new(&url, &amqp).expect("management API"),
        topology.policies(),
    )
}

/// A message no consumer ever settles (each takes it and dies) is parked in `orion.dead` by the
/// broker at the work queues' delivery limit — not dropped, not redelivered for ever — and the
/// policies that say so reach queues declared before them.
#[tokio::test]
async fn the_policies_park_a_message_no_consumer_settles_in_the_dead_queue() {
    let broker = broker();
    let topology = topology();
    let channel = broker.channel().await.unwrap();
    topology.declare(&channel).await.unwrap();
    let (management, policies) = management(&topology);
    management.apply(&policies).await.expect("policies applied");
    management
        .apply(&policies)
        .await
        .expect("applying again is harmless");

    let publisher = Publisher::new(broker.clone(), topology.clone());
    let poison = envelope("order.cancelled");
    publisher.publish(&poison).await.unwrap();
    let saga = topology.queue(WorkQueue::Saga);
    let mut deliveries = 0u32;
    let mut parked = None;
    // Without the policy the message would come back for ever (RabbitMQ 3.x) or be dropped at
    // 20 (RabbitMQ 4): the loop's bound makes either a failure.
    for _ in 0..200 {
        if let Some(message) = channel
            .basic_get(saga.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        {
            deliveries += 1;
            message
                .delivery
                .acker
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
                .unwrap();
            continue;
        }
        parked = channel
            .basic_get(
                topology.dead_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if parked.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parked = parked.expect("the message reached the dead queue");
    assert!(
        deliveries >= orion_messaging::WORK_DELIVERY_LIMIT,
        "parked only after the delivery limit ({deliveries} deliveries)"
    );
    assert_eq!(
        Envelope::from_bytes(&parked.delivery.data).unwrap(),
        poison,
        "the message itself, unchanged"
    );
    let headers = parked
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let reason = headers.inner().get("x-first-death-reason").cloned();
    assert_eq!(
        reason,
        Some(lapin::types::AMQPValue::LongString("delivery_limit".into())),
        "parked for its delivery limit: {headers:?}"
    );
    management.remove(&policies).await.unwrap();
    topology.delete(&channel).await.unwrap();
}
