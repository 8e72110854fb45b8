//! Orders over HTTP: placement, validation, idempotency, atomicity, reads and status changes.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{ADMIN, CUSTOMER, TestApi, expect_problem};

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrations = false)]
async fn placing_an_order_writes_everything_and_answers_202(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let token = api.token(CUSTOMER).await;
    let body = json!({"items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-3", "quantity": 1}], "payment_token": "tok_visa"});
    let response = api
        .post("/api/orders", Some(&token), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(order["status"], "pending");
    assert_eq!(order["failure_reason"], Value::Null);
    assert_eq!(
        order["total"],
        json!({"amount": 2 * 1999 + 1299, "currency": "USD"}),
        "priced from the catalog"
    );
    assert_eq!(
        order["items"][0],
        json!({"sku": "SKU-1", "name": "Orion T-shirt", "quantity": 2, "unit_price": {"amount": 1999, "currency": "USD"}})
    );

    let fetched: Value = api
        .get(&location, Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, order, "the read model shows what was placed");

    let pool = api.pool().await;
    assert_eq!(count(&pool, "select count(*) from orders").await, 1);
    assert_eq!(count(&pool, "select count(*) from order_items").await, 2);
    assert_eq!(
        count(
            &pool,
            "select count(*) from outbox where event_type = 'order.placed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from event_log where event_type = 'order.placed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select order_count from sales_stats where status = 'pending'"
        )
        .await,
        1
    );

    let timeline: Value = api
        .get(&format!("{location}/timeline"), Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(timeline["events"][0]["type"], "order.placed");
    assert_eq!(timeline["events"][0]["data"]["order_id"], order["id"]);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn bad_orders_get_clear_problems_and_write_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let token = api.token(CUSTOMER).await;
    let many: Vec<Value> = (1..=51)
        .map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1}))
        .collect();
    let cases = [
        (json!({"items": []}), "items"),
        (json!({"items": many}), "items"),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": 0}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": 1001}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": -3}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "NOPE-1", "quantity": 1}]}),
            "items[0].sku",
        ),
        (
            json!({"items": [{"sku": "bad sku", "quantity": 1}]}),
            "items[0].sku",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 2}]}),
            "items[1].sku",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": ""}),
            "payment_token",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": 1}], "coupon": "FREE"}),
            "body",
        ),
        (
            json!({"items": [{"sku": "SKU-1", "quantity": "two"}]}),
            "body",
        ),
        (json!({"lines": []}), "body"),
    ];
    for (body, field) in cases {
        let problem = expect_problem(
            api.post("/api/orders", Some(&token), &body)
                .send()
                .await
                .unwrap(),
            422,
            "validation-error",
        )
        .await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{body}: {problem}");
    }

    let raw = |body: &'static str, content_type: &'static str| {
        api.request(Method::POST, "/api/orders")
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_problem(
        raw(r#"{"items": ["#, "application/json").await.unwrap(),
        400,
        "malformed-json",
    )
    .await;
    expect_problem(
        raw(r#"{"items": []}"#, "text/plain").await.unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    let huge = Box::leak(
        format!(
            r#"{{"items": [], "payment_token": "{}"}}"#,
            "x".repeat(100_000)
        )
        .into_boxed_str(),
    );
    expect_problem(
        raw(huge, "application/json").await.unwrap(),
        413,
        "payload-too-large",
    )
    .await;
    let bad_key = api
        .post(
            "/api/orders",
            Some(&token),
            &json!({"items": [{"sku": "SKU-1", "quantity": 1}]}),
        )
        .header("idempotency-key", "");
    expect_problem(bad_key.send().await.unwrap(), 400, "bad-request").await;

    let pool = api.pool().await;
    assert_eq!(count(&pool, "select count(*) from orders").await, 0);
    assert_eq!(count(&pool, "select count(*) from outbox").await, 0);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn twenty_concurrent_requests_with_one_idempotency_key_create_one_order(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let token = api.token(CUSTOMER).await;
    let body = json!({"items": [{"sku": "SKU-2", "quantity": 1}]});
    let requests = (0..20).map(|_| {
        api.post("/api/orders", Some(&token), &body)
            .header("idempotency-key", "checkout-7f3a")
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        let order: Value = response.json().await.unwrap();
        ids.insert(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every answer names the same order");
    let pool = api.pool().await;
    assert_eq!(count(&pool, "select count(*) from orders").await, 1);
    assert_eq!(count(&pool, "select count(*) from outbox").await, 1);

    let other_body = json!({"items": [{"sku": "SKU-2", "quantity": 5}]});
    let reused = api
        .post("/api/orders", Some(&token), &other_body)
        .header("idempotency-key", "checkout-7f3a")
        .send()
        .await
        .unwrap();
    expect_problem(reused, 422, "idempotency-key-reused").await;

    // Keys belong to their principal: another customer's identical key is a new order.
    let (_, other) = api.new_customer().await;
    let theirs = api
        .post("/api/orders", Some(&other), &body)
        .header("idempotency-key", "checkout-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 202);
    assert_eq!(count(&pool, "select count(*) from orders").await, 2);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_failure_inside_placement_leaves_nothing_behind(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let token = api.token(CUSTOMER).await;
    let pool = api.pool().await;
    // Break the last write of the transaction, after the order and its events: the read model.
    sqlx::query(
        "create function refuse() returns trigger language plpgsql as $$ begin raise exception 'disk on fire'; end $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "create trigger refuse before insert on order_views for each row execute function refuse()",
    )
    .execute(&pool)
    .await
    .unwrap();

    let response = api
        .post(
            "/api/orders",
            Some(&token),
            &json!({"items": [{"sku": "SKU-1", "quantity": 1}]}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 500, "internal-error").await;
    assert!(
        !problem.to_string().contains("disk on fire"),
        "no database text reaches the client"
    );

    for table in [
        "orders",
        "order_items",
        "outbox",
        "event_log",
        "order_views",
        "idempotency_keys",
    ] {
        let sql: &'static str = Box::leak(format!("select count(*) from {table}").into_boxed_str());
        assert_eq!(count(&pool, sql).await, 0, "{table} is empty");
    }
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn customers_see_only_their_own_orders(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let (_, alice) = api.new_customer().await;
    let (_, bob) = api.new_customer().await;
    let admin = api.token(ADMIN).await;
    let mine = api.place_order(&alice, &[("SKU-1", 1)]).await;
    api.place_order(&bob, &[("SKU-2", 1)]).await;
    let path = format!("/api/orders/{}", mine["id"].as_str().unwrap());

    expect_problem(
        api.get(&path, Some(&bob)).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    expect_problem(
        api.get(&format!("{path}/timeline"), Some(&bob))
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    expect_problem(
        api.post(&format!("{path}/cancel"), Some(&bob), &json!({}))
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        api.get(&path, Some(&admin)).send().await.unwrap().status(),
        200
    );

    let list = |token: &str| api.get("/api/orders", Some(token)).send();
    let alices: Value = list(&alice).await.unwrap().json().await.unwrap();
    assert_eq!(alices["items"].as_array().unwrap().len(), 1);
    assert_eq!(alices["items"][0]["id"], mine["id"]);
    let everyone: Value = list(&admin).await.unwrap().json().await.unwrap();
    assert_eq!(everyone["items"].as_array().unwrap().len(), 2);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn listing_pages_with_a_cursor_and_filters_by_status(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let (_, token) = api.new_customer().await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(
            api.place_order(&token, &[("SKU-4", 1)]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let cancelled = &placed[1];
    api.post(
        &format!("/api/orders/{cancelled}/cancel"),
        Some(&token),
        &json!({}),
    )
    .send()
    .await
    .unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/orders?limit=2&cursor={c}"),
            None => "/api/orders?limit=2".to_owned(),
        };
        let page: Value = api
            .get(&path, Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let filtered: Value = api
        .get("/api/orders?status=cancelled", Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        filtered["items"][0]["id"].as_str(),
        Some(cancelled.as_str())
    );
    // By reference, as shown in emails and the admin panel: the id's random end, any case.
    let wanted = &placed[3];
    let reference = wanted.replace('-', "")[22..].to_owned();
    for typed in [reference.to_uppercase(), reference.to_lowercase()] {
        let found: Value = api
            .get(&format!("/api/orders?reference={typed}"), Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [wanted.as_str()],
            "orders placed together are told apart"
        );
    }
    for bad in [
        "/api/orders?reference=0123",
        "/api/orders?reference=",
        "/api/orders?reference=XYZXYZXYZX",
        "/api/orders?status=lost",
        "/api/orders?status=",
        "/api/orders?limit=0",
        "/api/orders?limit=101",
        "/api/orders?limit=x",
        "/api/orders?cursor=%%%",
        "/api/orders?cursor=bm9wZQ",
        "/api/orders?colour=red",
    ] {
        expect_problem(
            api.get(bad, Some(&token)).send().await.unwrap(),
            400,
            "bad-request",
        )
        .await;
    }
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn status_changes_follow_the_domain(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let customer = api.token(CUSTOMER).await;
    let admin = api.token(ADMIN).await;
    let order = api.place_order(&customer, &[("SKU-5", 1)]).await;
    let path = format!("/api/orders/{}", order["id"].as_str().unwrap());

    let problem = expect_problem(
        api.post(&format!("{path}/ship"), Some(&admin), &json!({}))
            .send()
            .await
            .unwrap(),
        409,
        "illegal-transition",
    )
    .await;
    assert_eq!(problem["current_status"], "pending");
    expect_problem(
        api.post(&format!("{path}/ship"), Some(&customer), &json!({}))
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;

    let cancelled: Value = api
        .post(&format!("{path}/cancel"), Some(&customer), &json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let again = expect_problem(
        api.post(&format!("{path}/cancel"), Some(&customer), &json!({}))
            .send()
            .await
            .unwrap(),
        409,
        "illegal-transition",
    )
    .await;
    assert_eq!(again["current_status"], "cancelled");
    let deliver = expect_problem(
        api.post(&format!("{path}/deliver"), Some(&admin), &json!({}))
            .send()
            .await
            .unwrap(),
        409,
        "illegal-transition",
    )
    .await;
    assert_eq!(deliver["current_status"], "cancelled");

    let pool = api.pool().await;
    assert_eq!(
        count(
            &pool,
            "select count(*) from outbox where event_type = 'order.cancelled'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select order_count from sales_stats where status = 'cancelled'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select order_count from sales_stats where status = 'pending'"
        )
        .await,
        0
    );
    let view: Value = api
        .get(&path, Some(&customer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "cancelled");
    let timeline: Value = api
        .get(&format!("{path}/timeline"), Some(&customer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["order.placed", "order.cancelled"]);

    // Ship and deliver a confirmed order (confirmation is the saga's job; done here by hand).
    let second = api.place_order(&customer, &[("SKU-5", 1)]).await;
    let id: uuid::Uuid = second["id"].as_str().unwrap().parse().unwrap();
    sqlx::query("update orders set status = 'confirmed', version = version + 1 where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let shipped: Value = api
        .post(&format!("/api/orders/{id}/ship"), Some(&admin), &json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shipped["status"], "shipped");
    expect_problem(
        api.post(
            &format!("/api/orders/{id}/cancel"),
            Some(&customer),
            &json!({}),
        )
        .send()
        .await
        .unwrap(),
        409,
        "illegal-transition",
    )
    .await;
    let delivered: Value = api
        .post(
            &format!("/api/orders/{id}/deliver"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delivered["status"], "delivered");
    expect_problem(
        api.post(
            &format!("/api/orders/{}/cancel", uuid::Uuid::now_v7()),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap(),
        404,
        "not-found",
    )
    .await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_placed_order_reaches_the_broker_through_the_outbox(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let token = api.token(CUSTOMER).await;
    let order = api.place_order(&token, &[("SKU-3", 1)]).await;
    let pool = api.pool().await;
    let event_id: uuid::Uuid =
        sqlx::query_scalar("select id from outbox where event_type = 'order.placed'")
            .fetch_one(&pool)
            .await
            .unwrap();

    // The API's own relay publishes it (woken by the commit) and marks it after the confirm.
    // The API declares its topology on its first publication, which may come after this test
    // starts polling; a get from a queue that does not exist yet would close the channel.
    let channel = api.channel().await;
    api.topology.declare(&channel).await.unwrap();
    let queue = api.topology.queue(orion_messaging::WorkQueue::Saga);
    let mut delivered = None;
    for _ in 0..200 {
        let message = channel
            .basic_get(
                queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get from the saga queue");
        if let Some(message) = message {
            delivered =
                Some(orion_messaging::Envelope::from_bytes(&message.delivery.data).unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let envelope = delivered.expect("order.placed reached the saga queue within 10 s");
    assert_eq!(envelope.id, event_id, "message id = event id");
    assert_eq!(envelope.kind, "order.placed");
    assert_eq!(envelope.subject, order["id"].as_str().unwrap());
    assert_eq!(envelope.source, "orion-api");
    assert_eq!(envelope.data["order_id"], order["id"]);
    // The row is marked only after the broker's confirm, so a moment after the message arrives.
    let mut published: Option<time::OffsetDateTime> = None;
    for _ in 0..100 {
        published = sqlx::query_scalar("select published_at from outbox where id = $1")
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if published.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(published.is_some(), "marked published after the confirm");
    api.stop().await;
}
