use orion_domain::{FailureReason, OrderStatus};
use orion_persistence::{Error, MIGRATOR, Pool, orders, read_models};
use time::OffsetDateTime;

use crate::support::{customer, item, order};

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_round_trips_with_its_lines(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    item(&mut conn, "B", 5).await;
    let buyer = customer(&mut conn).await;
    let placed = order(&mut conn, buyer, &[("B", 2), ("A", 1)]).await;

    let loaded = orders::find_order(&mut conn, placed.id())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(loaded.id(), placed.id());
    assert_eq!(loaded.customer_id(), buyer);
    assert_eq!(loaded.status(), OrderStatus::Pending);
    assert_eq!(loaded.lines(), placed.lines(), "lines keep their order");
    assert_eq!(loaded.total(), placed.total());
    assert!(
        orders::find_order(&mut conn, orion_domain::OrderId::new())
            .await
            .unwrap()
            .is_none()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn status_changes_use_optimistic_concurrency(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let placed = order(&mut conn, buyer, &[("A", 1)]).await;
    let now = OffsetDateTime::now_utc();

    let mut first = orders::find_order(&mut conn, placed.id())
        .await
        .unwrap()
        .unwrap();
    let mut second = first.clone();
    first.mark_reserved(now).unwrap();
    assert_eq!(
        orders::save_order_status(&mut conn, &first).await.unwrap(),
        2
    );

    second.fail(FailureReason::OutOfStock, now).unwrap();
    let conflict = orders::save_order_status(&mut conn, &second)
        .await
        .unwrap_err();
    assert!(
        matches!(
            conflict,
            Error::VersionConflict {
                aggregate: "order",
                ..
            }
        ),
        "{conflict}"
    );

    let reloaded = orders::find_order(&mut conn, placed.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (reloaded.status(), reloaded.version()),
        (OrderStatus::Reserved, 2)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_database_keeps_status_and_failure_reason_consistent(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let placed = order(&mut conn, buyer, &[("A", 1)]).await;
    for (sql, constraint) in [
        (
            "update orders set status = 'failed' where id = $1",
            "orders_failure_reason_ck",
        ),
        (
            "update orders set failure_reason = 'timeout' where id = $1",
            "orders_failure_reason_ck",
        ),
        (
            "update orders set status = 'lost' where id = $1",
            "orders_status_ck",
        ),
        (
            "update order_items set quantity = 0 where order_id = $1",
            "order_items_quantity_ck",
        ),
    ] {
        let error = sqlx::query(sql)
            .bind(placed.id().as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(Error::from)
            .unwrap_err();
        assert_eq!(error.constraint(), Some(constraint), "{sql}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn order_views_never_move_backwards(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let placed = order(&mut conn, buyer, &[("A", 1)]).await;
    read_models::upsert_order_view(&mut conn, &placed, 1)
        .await
        .unwrap();

    let mut reserved = placed.clone();
    reserved.mark_reserved(OffsetDateTime::now_utc()).unwrap();
    read_models::upsert_order_view(&mut conn, &reserved, 2)
        .await
        .unwrap();
    read_models::upsert_order_view(&mut conn, &placed, 1)
        .await
        .unwrap();

    let (status, version): (String, i64) =
        sqlx::query_as("select status, version from order_views where order_id = $1")
            .bind(placed.id().as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), version), ("reserved", 2));
}
