//! The outbox relay against real PostgreSQL and RabbitMQ.

// In a test, a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lapin::options::BasicGetOptions;
use orion_domain::events::{AdjustmentReason, InventoryAdjusted};
use orion_domain::{Currency, DomainEvent, Money, Sku};
use orion_messaging::{
    Broker, Envelope, OutboxRelay, Publisher, RelaySettings, Topology, WorkQueue,
};
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::{MIGRATOR, Pool, outbox};
use time::OffsetDateTime;
use uuid::Uuid;

fn broker() -> Arc<Broker> {
    let url = std::env::var("ORION_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    Arc::new(Broker::new(url))
}

fn adjusted(sku: &str, available: u32) -> DomainEvent {
    DomainEvent::InventoryAdjusted(InventoryAdjusted {
        sku: Sku::parse(sku).unwrap(),
        reason: AdjustmentReason::Restocked,
        available,
        reserved: 0,
        price: Money::new(100, Currency::USD).unwrap(),
        low_stock_threshold: 0,
    })
}

async fn record(pool: &Pool, event: &DomainEvent) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    events::record_event(
        &mut conn,
        event,
        &EventMetadata {
            correlation_id: Some(Uuid::now_v7()),
            ..Default::default()
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap()
}

async fn drain_queue(channel: &lapin::Channel, queue: &str) -> Vec<Envelope> {
    let mut received = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        received.push(Envelope::from_bytes(&message.delivery.data).unwrap());
    }
    received
}

async fn unpublished(pool: &Pool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn relay(pool: &Pool, broker: Arc<Broker>, topology: &Topology) -> OutboxRelay {
    OutboxRelay::new(
        pool.clone(),
        Publisher::new(broker, topology.clone()),
        "orion-tests",
        RelaySettings::default(),
    )
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn events_are_published_in_order_and_marked_only_after_the_confirm(pool: Pool) {
    let broker = broker();
    let topology = Topology::new(format!("test-{}.", Uuid::new_v4().simple()));
    let first = record(&pool, &adjusted("A", 1)).await;
    let second = record(&pool, &adjusted("A", 2)).await;
    let other = record(&pool, &adjusted("B", 1)).await;
    let relay = relay(&pool, broker.clone(), &topology);

    // One round takes all three and publishes A's two in order.
    let round = relay.relay_once().await.unwrap();
    assert_eq!((round.claimed, round.published), (3, 3));
    assert_eq!(relay.relay_once().await.unwrap().claimed, 0);
    assert_eq!(unpublished(&pool).await, 0);

    let channel = broker.channel().await.unwrap();
    let received = drain_queue(&channel, &topology.queue(WorkQueue::Projections)).await;
    let ids: Vec<Uuid> = received.iter().map(|e| e.id).collect();
    let position = |id| ids.iter().position(|x| *x == id).unwrap();
    assert_eq!(ids.len(), 3);
    assert!(position(first) < position(second), "A's events in order");
    assert!(ids.contains(&other));
    assert_eq!(received[0].kind, "inventory.adjusted");
    assert_eq!(received[0].source, "orion-tests");
    assert!(received[0].correlation_id.is_some());
    topology.delete(&channel).await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_relays_publish_each_event_exactly_once(pool: Pool) {
    let broker = broker();
    let topology = Topology::new(format!("test-{}.", Uuid::new_v4().simple()));
    for i in 0..60 {
        record(&pool, &adjusted(&format!("S{}", i % 20), i)).await;
    }
    let a = relay(&pool, broker.clone(), &topology);
    let b = relay(&pool, broker.clone(), &topology);
    for _ in 0..10 {
        let (ra, rb) = tokio::join!(a.relay_once(), b.relay_once());
        ra.unwrap();
        rb.unwrap();
    }
    assert_eq!(unpublished(&pool).await, 0);
    let channel = broker.channel().await.unwrap();
    let received = drain_queue(&channel, &topology.queue(WorkQueue::Projections)).await;
    let mut ids: Vec<Uuid> = received.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (received.len(), ids.len()),
        (60, 60),
        "60 events, no duplicates"
    );
    topology.delete(&channel).await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unreachable_broker_leaves_everything_unpublished_and_claimable(pool: Pool) {
    record(&pool, &adjusted("A", 1)).await;
    record(&pool, &adjusted("B", 1)).await;
    let down = Arc::new(Broker::new("amqp://guest:guest@127.0.0.1:1/%2f"));
    let relay = relay(&pool, down, &Topology::new("unused."));
    assert!(relay.relay_once().await.is_err());
    assert_eq!(unpublished(&pool).await, 2);
    let claimed: i64 =
        sqlx::query_scalar("select count(*) from outbox where claimed_until is not null")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(claimed, 0, "claims given back at once");
    let attempts: i64 = sqlx::query_scalar("select coalesce(sum(attempts), 0)::int8 from outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "an outage does not count as an attempt");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unroutable_event_is_parked_with_its_error_not_retried_in_a_loop(pool: Pool) {
    let broker = broker();
    let topology = Topology::new(format!("test-{}.", Uuid::new_v4().simple()));
    let channel = broker.channel().await.unwrap();
    // The publisher declares the topology when it opens its channel; remove the queues after that.
    let publisher = Publisher::new(broker.clone(), topology.clone());
    let relay = OutboxRelay::new(
        pool.clone(),
        publisher.clone(),
        "orion-tests",
        RelaySettings::default(),
    );
    record(&pool, &adjusted("A", 1)).await;
    let _ = relay.relay_once().await.unwrap();
    for queue in topology.all_queues() {
        channel
            .queue_delete(queue.into(), Default::default())
            .await
            .unwrap();
    }
    record(&pool, &adjusted("B", 1)).await;
    let round = relay.relay_once().await.unwrap();
    assert_eq!((round.claimed, round.published, round.failed), (1, 0, 1));
    let (error, retry_at): (Option<String>, Option<OffsetDateTime>) =
        sqlx::query_as("select last_error, claimed_until from outbox where published_at is null")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(error.unwrap().contains("no queue is bound"));
    assert!(
        retry_at.unwrap() > OffsetDateTime::now_utc(),
        "parked until later"
    );
    assert_eq!(
        relay.relay_once().await.unwrap().claimed,
        0,
        "not claimed again right away"
    );
    topology.delete(&channel).await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_crashed_relays_claim_comes_back_after_its_lease(pool: Pool) {
    record(&pool, &adjusted("A", 1)).await;
    let mut conn = pool.acquire().await.unwrap();
    let lease = time::Duration::milliseconds(500);
    let claimed = outbox::claim_outbox_batch(&mut conn, 10, lease)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // The claimer dies here. Within the lease nobody else gets the row...
    assert!(
        outbox::claim_outbox_batch(&mut conn, 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // ...after it (on the database's clock), the row is claimable again.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let reclaimed = outbox::claim_outbox_batch(&mut conn, 10, lease)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].attempts, 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_relay_never_claims_an_event_whose_predecessor_another_relay_holds(pool: Pool) {
    let a1 = record(&pool, &adjusted("A", 1)).await;
    let a2 = record(&pool, &adjusted("A", 2)).await;
    let b1 = record(&pool, &adjusted("B", 1)).await;
    let lease = time::Duration::seconds(30);
    let now = OffsetDateTime::now_utc();
    let mut conn = pool.acquire().await.unwrap();
    let first = outbox::claim_outbox_batch(&mut conn, 1, lease)
        .await
        .unwrap();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), [a1]);
    // A's first is with the other relay: A's second must wait; B's is free.
    let second = outbox::claim_outbox_batch(&mut conn, 10, lease)
        .await
        .unwrap();
    assert_eq!(second.iter().map(|e| e.id).collect::<Vec<_>>(), [b1]);
    // Once A's first is published, its second is claimable, and the mark says it is waiting.
    let waiting = outbox::mark_published(&mut conn, &[first[0].seq], now)
        .await
        .unwrap();
    assert!(waiting, "A's second was held back by its first");
    let third = outbox::claim_outbox_batch(&mut conn, 10, lease)
        .await
        .unwrap();
    assert_eq!(third.iter().map(|e| e.id).collect::<Vec<_>>(), [a2]);
    let seqs: Vec<i64> = second.iter().chain(&third).map(|e| e.seq).collect();
    let waiting = outbox::mark_published(&mut conn, &seqs, now).await.unwrap();
    assert!(!waiting, "nothing of A or B is left");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_commit_wakes_its_processs_relay_and_a_round_reports_a_waiting_successor(pool: Pool) {
    let broker = broker();
    let topology = Topology::new(format!("test-{}.", Uuid::new_v4().simple()));
    // A poll far longer than the test: only the wake-up can publish in time.
    let settings = RelaySettings {
        poll: std::time::Duration::from_secs(600),
        ..RelaySettings::default()
    };
    let running = OutboxRelay::new(
        pool.clone(),
        Publisher::new(broker.clone(), topology.clone()),
        "orion-tests",
        settings.clone(),
    )
    .spawn();
    // Its first round (at start) finds nothing; then it sleeps until woken.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut tx = pool.begin().await.unwrap();
    events::record_event(
        &mut tx,
        &adjusted("W", 1),
        &EventMetadata::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    outbox::commit(tx).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while unpublished(&pool).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the commit did not wake the relay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.stop().await;

    // A relay that publishes an event whose aggregate has a later one waiting says so, so that
    // it takes that one next instead of leaving it to the poll.
    record(&pool, &adjusted("A", 1)).await;
    record(&pool, &adjusted("A", 2)).await;
    let one_at_a_time = OutboxRelay::new(
        pool.clone(),
        Publisher::new(broker.clone(), topology.clone()),
        "orion-tests",
        RelaySettings {
            batch: 1,
            ..settings
        },
    );
    let first = one_at_a_time.relay_once().await.unwrap();
    assert_eq!(first.published, 1);
    assert!(first.successors_waiting);
    let second = one_at_a_time.relay_once().await.unwrap();
    assert_eq!(second.published, 1);
    assert!(!second.successors_waiting);
    let channel = broker.channel().await.unwrap();
    topology.delete(&channel).await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_blocked_busy_aggregate_does_not_stall_the_others(pool: Pool) {
    // A busy item: its first event is backing off after a failed publication, and a hundred more
    // wait behind it, older than anything else in the outbox.
    let mut busy = Vec::new();
    for n in 0..101 {
        busy.push(record(&pool, &adjusted("BUSY", n)).await);
    }
    let other = record(&pool, &adjusted("OTHER", 1)).await;
    let mut conn = pool.acquire().await.unwrap();
    let head = outbox::claim_outbox_batch(&mut conn, 1, time::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(head.iter().map(|e| e.id).collect::<Vec<_>>(), [busy[0]]);
    outbox::mark_failed(&mut conn, head[0].seq, "nacked", time::Duration::minutes(5))
        .await
        .unwrap();
    // A batch smaller than the busy item's backlog still reaches the other aggregate.
    let next = outbox::claim_outbox_batch(&mut conn, 10, time::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), [other]);
}
