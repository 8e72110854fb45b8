use orion_domain::DomainEvent;
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::{MIGRATOR, Pool, orders};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{customer, item, order};

#[sqlx::test(migrator = "MIGRATOR")]
async fn recorded_events_reach_outbox_and_log_and_form_the_timeline(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let mut placed = order(&mut conn, buyer, &[("A", 1)]).await;
    let correlation = Uuid::now_v7();
    let metadata = EventMetadata {
        correlation_id: Some(correlation),
        ..EventMetadata::default()
    };
    let now = OffsetDateTime::now_utc();

    let reserved = placed.mark_reserved(now).unwrap();
    let placed_event = DomainEvent::from_parts("order.placed", serde_json::json!({
        "order_id": placed.id(), "customer_id": buyer, "items": placed.lines(), "total": placed.total(),
        "placed_at": "2026-11-25T10:00:00Z"
    }))
    .unwrap();
    let first = events::record_event(&mut conn, &placed_event, &metadata, now)
        .await
        .unwrap();
    let second = events::record_event(&mut conn, &reserved, &metadata, now)
        .await
        .unwrap();
    assert_ne!(first, second);

    assert_eq!(events::unpublished_count(&mut conn).await.unwrap(), 2);
    let timeline = events::order_events(&mut conn, placed.id()).await.unwrap();
    let types: Vec<&str> = timeline
        .iter()
        .map(|e| e.event.event_type().as_str())
        .collect();
    assert_eq!(types, ["order.placed", "order.reserved"]);
    assert_eq!(timeline[1].event, reserved);
    assert!(
        timeline
            .iter()
            .all(|e| e.correlation_id == Some(correlation))
    );
    let (aggregate, headers): (String, serde_json::Value) =
        sqlx::query_as("select aggregate_id, headers from outbox where id = $1")
            .bind(second)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(aggregate, placed.id().to_string());
    assert_eq!(headers["correlation_id"], serde_json::json!(correlation));
    let _ = orders::find_order(&mut conn, placed.id()).await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_event_log_is_append_only(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let mut placed = order(&mut conn, buyer, &[("A", 1)]).await;
    let event = placed.cancel(OffsetDateTime::now_utc()).unwrap();
    events::record_event(
        &mut conn,
        &event,
        &EventMetadata::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    for sql in [
        "update event_log set event_type = 'order.placed'",
        "delete from event_log",
    ] {
        let error = sqlx::query(sql).execute(&mut *conn).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_aborted_transaction_leaves_no_event(pool: Pool) {
    let mut tx = pool.begin().await.unwrap();
    item(&mut tx, "A", 5).await;
    let buyer = customer(&mut tx).await;
    let mut placed = order(&mut tx, buyer, &[("A", 1)]).await;
    let event = placed.cancel(OffsetDateTime::now_utc()).unwrap();
    events::record_event(
        &mut tx,
        &event,
        &EventMetadata::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(events::unpublished_count(&mut conn).await.unwrap(), 0);
    assert!(
        events::order_events(&mut conn, placed.id())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        orders::find_order(&mut conn, placed.id())
            .await
            .unwrap()
            .is_none()
    );
}
