use orion_domain::{OrderId, StockLine};
use orion_persistence::inventory::{self, StockLevel};
use orion_persistence::{Error, MIGRATOR, Pool};
use sqlx::Acquire;

use crate::support::{customer, item, order, qty, sku};

fn lines(order: &orion_domain::Order) -> Vec<StockLine> {
    order
        .lines()
        .iter()
        .map(|l| StockLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect()
}

async fn counters(pool: &Pool, code: &str) -> (i32, i32, i32, i32) {
    sqlx::query_as(
        "select available, reserved, shipped, received from inventory_items where sku = $1",
    )
    .bind(code)
    .fetch_one(pool)
    .await
    .expect("item exists")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_hundred_concurrent_reservations_of_ten_units_sell_exactly_ten(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "HOT", 10).await;
    let buyer = customer(&mut conn).await;
    let mut orders = Vec::new();
    for _ in 0..200 {
        orders.push(order(&mut conn, buyer, &[("HOT", 1)]).await);
    }
    drop(conn);

    let tasks: Vec<_> = orders
        .into_iter()
        .map(|order| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin().await.expect("begin");
                match inventory::reserve_stock(&mut tx, order.id(), &lines(&order)).await {
                    Ok(_) => {
                        tx.commit().await.expect("commit");
                        true
                    }
                    Err(Error::InsufficientStock(_)) => false,
                    Err(other) => panic!("unexpected error: {other}"),
                }
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        if task.await.expect("task") {
            succeeded += 1;
        }
    }

    assert_eq!(succeeded, 10);
    assert_eq!(counters(&pool, "HOT").await, (0, 10, 0, 10));
    let held: i64 = sqlx::query_scalar(
        "select coalesce(sum(quantity), 0) from inventory_reservations where status = 'held'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(held, 10);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_multi_line_order_with_one_short_line_reserves_nothing(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    item(&mut conn, "B", 1).await;
    let buyer = customer(&mut conn).await;
    let order = order(&mut conn, buyer, &[("A", 3), ("B", 2)]).await;

    let mut tx = conn.begin().await.unwrap();
    let error = inventory::reserve_stock(&mut tx, order.id(), &lines(&order))
        .await
        .unwrap_err();
    tx.commit().await.unwrap();

    let Error::InsufficientStock(shortages) = error else {
        panic!("expected a shortage, got {error}")
    };
    assert_eq!(shortages.len(), 1);
    assert_eq!(
        (
            shortages[0].sku.as_str(),
            shortages[0].requested,
            shortages[0].available
        ),
        ("B", 2, 1)
    );
    assert_eq!(counters(&pool, "A").await, (5, 0, 0, 5));
    assert_eq!(counters(&pool, "B").await, (1, 0, 0, 1));
    let rows: i64 = sqlx::query_scalar("select count(*) from inventory_reservations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_skus_are_a_shortage_with_nothing_available(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let buyer = customer(&mut conn).await;
    let order = order(&mut conn, buyer, &[("A", 1)]).await;
    let mut wanted = lines(&order);
    wanted.push(StockLine {
        sku: sku("GHOST"),
        quantity: qty(1),
    });
    let error = inventory::reserve_stock(&mut conn, order.id(), &wanted)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InsufficientStock(s) if s.len() == 1 && s[0].sku.as_str() == "GHOST" && s[0].available == 0)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reserve_release_ship_keep_counters_and_reservations_in_step(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    item(&mut conn, "B", 5).await;
    let buyer = customer(&mut conn).await;
    let first = order(&mut conn, buyer, &[("A", 2), ("B", 4)]).await;
    let second = order(&mut conn, buyer, &[("A", 1)]).await;

    let levels = inventory::reserve_stock(&mut conn, first.id(), &lines(&first))
        .await
        .unwrap();
    let b = levels.iter().find(|l| l.sku.as_str() == "B").unwrap();
    assert_eq!((b.available, b.reserved, b.available_before), (1, 4, 5));
    assert!(
        b.crossed_below_threshold(),
        "5 -> 1 crosses a threshold of 2"
    );

    let released: Vec<StockLevel> = inventory::release_stock(&mut conn, first.id())
        .await
        .unwrap();
    assert_eq!(released.len(), 2);
    assert!(
        inventory::release_stock(&mut conn, first.id())
            .await
            .unwrap()
            .is_empty(),
        "release is idempotent"
    );
    assert_eq!(counters(&pool, "A").await, (5, 0, 0, 5));

    inventory::reserve_stock(&mut conn, second.id(), &lines(&second))
        .await
        .unwrap();
    let again = inventory::reserve_stock(&mut conn, second.id(), &lines(&second))
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::AlreadyReserved(id) if id == second.id()),
        "{again}"
    );
    inventory::ship_stock(&mut conn, second.id()).await.unwrap();
    assert!(
        inventory::ship_stock(&mut conn, second.id())
            .await
            .unwrap()
            .is_empty(),
        "ship is idempotent"
    );
    assert!(
        inventory::release_stock(&mut conn, second.id())
            .await
            .unwrap()
            .is_empty(),
        "shipped stock is not released"
    );
    assert_eq!(counters(&pool, "A").await, (4, 0, 1, 5));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn duplicate_skus_are_a_typed_error(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    let existing = item(&mut conn, "A", 5).await;
    let error = inventory::insert_item(&mut conn, &existing)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::DuplicateSku(ref s) if s == "A"),
        "{error}"
    );
    assert!(
        !inventory::insert_item_if_missing(&mut conn, &existing)
            .await
            .unwrap()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_database_refuses_negative_or_unconserved_stock(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let negative =
        sqlx::query("update inventory_items set available = -1, received = -1 where sku = 'A'")
            .execute(&mut *conn)
            .await
            .map_err(Error::from)
            .unwrap_err();
    assert_eq!(negative.constraint(), Some("inventory_items_available_ck"));
    let invented = sqlx::query("update inventory_items set available = 6 where sku = 'A'")
        .execute(&mut *conn)
        .await
        .map_err(Error::from)
        .unwrap_err();
    assert_eq!(invented.constraint(), Some("inventory_items_conserved_ck"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn saving_a_stale_item_is_a_version_conflict(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    item(&mut conn, "A", 5).await;
    let loaded = inventory::find_item(&mut conn, &sku("A"))
        .await
        .unwrap()
        .unwrap();
    let mut first = loaded.value.clone();
    first.restock(qty(3)).unwrap();
    let version = inventory::save_item(&mut conn, &first, loaded.version)
        .await
        .unwrap();
    assert_eq!(version, loaded.version + 1);

    let mut stale = loaded.value;
    stale.restock(qty(1)).unwrap();
    let error = inventory::save_item(&mut conn, &stale, loaded.version)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::VersionConflict { .. }), "{error}");
    assert_eq!(counters(&pool, "A").await, (8, 0, 0, 8));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn list_items_pages_in_sku_order(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    for code in ["C", "A", "B", "D"] {
        item(&mut conn, code, 1).await;
    }
    let first = inventory::list_items(&mut conn, None, 2).await.unwrap();
    let codes: Vec<&str> = first.iter().map(|i| i.value.sku().as_str()).collect();
    assert_eq!(codes, ["A", "B"]);
    let next = inventory::list_items(&mut conn, Some(first[1].value.sku()), 10)
        .await
        .unwrap();
    let codes: Vec<&str> = next.iter().map(|i| i.value.sku().as_str()).collect();
    assert_eq!(codes, ["C", "D"]);
    let found = inventory::find_items(&mut conn, &[sku("D"), sku("A"), sku("GHOST")])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    let _ = OrderId::new();
}
