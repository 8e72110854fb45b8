//! The catalog over HTTP: public reads, admin changes, and their events.

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{ADMIN, CUSTOMER, TestApi, expect_problem, with_token};

#[sqlx::test(migrations = false)]
async fn anyone_can_read_the_catalog(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let page: Value = api
        .get("/api/inventory?limit=5", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let next = page["next_cursor"].as_str().expect("more pages");
    let rest: Value = api
        .get(&format!("/api/inventory?limit=100&cursor={next}"), None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 7);
    assert_eq!(rest["next_cursor"], Value::Null);

    let item: Value = api
        .get("/api/inventory/SKU-2", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        item,
        json!({"sku": "SKU-2", "name": "Orion hoodie", "price": {"amount": 4999, "currency": "USD"}, "available": 50, "reserved": 0, "low_stock_threshold": 5})
    );
    expect_problem(
        api.get("/api/inventory/SKU-404", None)
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    expect_problem(
        api.get("/api/inventory/bad%20sku", None)
            .send()
            .await
            .unwrap(),
        400,
        "bad-request",
    )
    .await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_restock_retried_with_its_idempotency_key_adds_the_units_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let before = api.get_json("/api/inventory/SKU-5", &admin).await["available"]
        .as_i64()
        .unwrap();
    let restock = |quantity: i64, key: &'static str| {
        api.post(
            "/api/inventory/SKU-5/restock",
            Some(&admin),
            &json!({"quantity": quantity}),
        )
        .header("idempotency-key", key)
        .send()
    };
    // The answer was lost on the way back; the client sends the same request again.
    let first = restock(7, "delivery-4711").await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let again = restock(7, "delivery-4711").await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(
        api.get_json("/api/inventory/SKU-5", &admin).await["available"],
        before + 7,
        "added once"
    );
    // The same key for another request is a client bug, not a retry.
    expect_problem(
        restock(8, "delivery-4711").await.unwrap(),
        422,
        "idempotency-key-reused",
    )
    .await;
    let restocks: i64 = sqlx::query_scalar(
        "select count(*) from event_log where event_type = 'inventory.adjusted' and aggregate_id = 'SKU-5' and data->>'reason' = 'restocked'",
    )
    .fetch_one(&api.pool().await)
    .await
    .unwrap();
    assert_eq!(restocks, 1);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn admins_create_restock_and_reprice_items_and_each_change_is_an_event(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let new = json!({"sku": "MUG-2", "name": "Travel mug", "price": {"amount": 1599, "currency": "USD"}, "available": 6, "low_stock_threshold": 5});
    let created = api
        .post("/api/inventory", Some(&admin), &new)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/api/inventory/MUG-2");
    expect_problem(
        api.post("/api/inventory", Some(&admin), &new)
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;

    let restocked: Value = api
        .post(
            "/api/inventory/MUG-2/restock",
            Some(&admin),
            &json!({"quantity": 10}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(restocked["available"], 16);

    let patch = |body: Value| {
        with_token(
            api.request(reqwest::Method::PATCH, "/api/inventory/MUG-2"),
            Some(&admin),
        )
        .json(&body)
        .send()
    };
    let patched: Value =
        patch(json!({"price": {"amount": 1799, "currency": "USD"}, "low_stock_threshold": 20}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        (
            patched["price"]["amount"].as_i64(),
            patched["low_stock_threshold"].as_i64()
        ),
        (Some(1799), Some(20))
    );
    expect_problem(patch(json!({})).await.unwrap(), 422, "validation-error").await;
    expect_problem(
        patch(json!({"price": {"amount": 1, "currency": "EUR"}}))
            .await
            .unwrap(),
        422,
        "validation-error",
    )
    .await;
    expect_problem(
        patch(json!({"low_stock_threshold": -1})).await.unwrap(),
        422,
        "validation-error",
    )
    .await;

    let pool = api.pool().await;
    let events: Vec<(String, Value)> = sqlx::query_as(
        "select event_type, payload from outbox where aggregate_id = 'MUG-2' order by seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "inventory.adjusted",
            "inventory.adjusted",
            "inventory.adjusted",
            "inventory.low_stock"
        ]
    );
    let reasons: Vec<&str> = events
        .iter()
        .filter_map(|(_, p)| p["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["created", "restocked", "repriced"]);
    assert_eq!(events[3].1["available"], 16);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn invalid_items_are_refused(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let base = json!({"sku": "NEW-1", "name": "New", "price": {"amount": 100, "currency": "USD"}, "available": 1});
    let mut cases = Vec::new();
    for (key, value, field) in [
        ("sku", json!("has space"), "sku"),
        ("name", json!(""), "name"),
        (
            "price",
            json!({"amount": -1, "currency": "USD"}),
            "price.amount",
        ),
        (
            "price",
            json!({"amount": 1, "currency": "usd"}),
            "price.currency",
        ),
        ("available", json!(-1), "available"),
        (
            "low_stock_threshold",
            json!(2_000_000),
            "low_stock_threshold",
        ),
    ] {
        let mut body = base.clone();
        body[key] = value;
        cases.push((body, field));
    }
    for (body, field) in cases {
        let problem = expect_problem(
            api.post("/api/inventory", Some(&admin), &body)
                .send()
                .await
                .unwrap(),
            422,
            "validation-error",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    for quantity in [json!(0), json!(-5), json!(1_000_001)] {
        let response = api
            .post(
                "/api/inventory/SKU-1/restock",
                Some(&admin),
                &json!({"quantity": quantity}),
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, 422, "validation-error").await;
    }
    expect_problem(
        api.post(
            "/api/inventory/NOPE/restock",
            Some(&admin),
            &json!({"quantity": 1}),
        )
        .send()
        .await
        .unwrap(),
        404,
        "not-found",
    )
    .await;
    let customer = api.token(CUSTOMER).await;
    expect_problem(
        api.post("/api/inventory", Some(&customer), &base)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        api.post("/api/inventory", None, &base)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    api.stop().await;
}
