//! The order saga end to end: orders placed over HTTP, the worker consuming real RabbitMQ queues,
//! stock and payments in the real database, email caught by a real SMTP server.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use orion_messaging::WorkQueue;

use crate::support::{ADMIN, Customer, Mailbox, TestApi, TestWorker};

/// (available, reserved) of an item, read over the API.
async fn stock(api: &TestApi, sku: &str) -> (i64, i64) {
    let item: Value = api
        .get(&format!("/api/inventory/{sku}"), None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        item["available"].as_i64().unwrap(),
        item["reserved"].as_i64().unwrap(),
    )
}

/// Creates an item with `available` units (admin).
async fn create_item(api: &TestApi, sku: &str, available: u32, threshold: u32) {
    let admin = api.token(ADMIN).await;
    let response = api
        .post(
            "/api/inventory",
            Some(&admin),
            &json!({"sku": sku, "name": format!("Item {sku}"), "price": {"amount": 1000, "currency": "USD"},
                    "available": available, "low_stock_threshold": threshold}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "create {sku}");
}

async fn place(api: &TestApi, customer: &Customer, body: &Value) -> String {
    let response = api
        .post("/api/orders", Some(&customer.token), body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let order: Value = response.json().await.unwrap();
    order["id"].as_str().unwrap().to_owned()
}

async fn payment_status(pool: &PgPool, order_id: &str) -> Option<String> {
    sqlx::query_scalar("select status from payments where order_id = $1::uuid")
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Emails recorded for an order, as (kind, status).
async fn deliveries(pool: &PgPool, order_id: &str) -> Vec<(String, String)> {
    sqlx::query("select kind, status from email_deliveries where order_id = $1::uuid order by kind")
        .bind(order_id)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Waits until the order's emails of `kinds` are recorded as sent.
async fn wait_for_emails(pool: &PgPool, order_id: &str, kinds: &[&str]) {
    for _ in 0..200 {
        let sent = deliveries(pool, order_id).await;
        if kinds.iter().all(|k| {
            sent.iter()
                .any(|(kind, status)| kind == k && status == "sent")
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "emails {kinds:?} of {order_id} not sent; recorded: {:?}",
        deliveries(pool, order_id).await
    );
}

#[sqlx::test(migrations = false)]
async fn a_placed_order_is_reserved_paid_confirmed_and_the_customer_is_told(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let customer = api.register_customer().await;
    let before = stock(&api, "SKU-1").await;

    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-1", "quantity": 2}]}),
    )
    .await;
    let order = api
        .wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    assert_eq!(order["failure_reason"], Value::Null);

    assert_eq!(
        stock(&api, "SKU-1").await,
        (before.0 - 2, before.1 + 2),
        "moved to reserved"
    );
    let pool = api.pool().await;
    assert_eq!(
        payment_status(&pool, &id).await.as_deref(),
        Some("authorized")
    );

    let mailbox = Mailbox::new();
    let confirmed = mailbox.wait_for(&customer.email, "is confirmed").await;
    // The subject names the order by its reference, the random end of its id.
    let reference = id.replace('-', "")[22..].to_uppercase();
    assert_eq!(
        confirmed["subject"].as_str(),
        Some(format!("Your order {reference} is confirmed").as_str())
    );
    assert!(
        confirmed["text"]
            .as_str()
            .unwrap()
            .contains("Orion T-shirt")
    );
    assert!(confirmed["html"].as_str().unwrap().contains("<html"));
    mailbox
        .wait_for(&customer.email, "We received your order")
        .await;
    wait_for_emails(&pool, &id, &["order_confirmed", "order_received"]).await;

    // The timeline shows the saga's steps beside the events.
    let timeline = api
        .get_json(&format!("/api/orders/{id}/timeline"), &customer.token)
        .await;
    let saga = &timeline["saga"];
    assert_eq!(saga["step"], "awaiting_shipment");
    assert_eq!(saga["stock"], "held");
    assert_eq!(saga["payment"], "authorized");
    let steps: Vec<&str> = saga["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["started", "stock_reserved", "payment_authorized"]);
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for expected in [
        "order.placed",
        "inventory.reserved",
        "order.reserved",
        "payment.authorized",
        "order.confirmed",
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }

    // Worker metrics count the outcome.
    let metrics = reqwest::get(worker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("saga_outcomes_total"), "{metrics}");
    assert!(metrics.contains("saga_step_duration_seconds"));

    // Shipping moves the held stock out; delivering completes the saga.
    let admin = api.token(ADMIN).await;
    for action in ["ship", "deliver"] {
        let response = api
            .post(
                &format!("/api/orders/{id}/{action}"),
                Some(&admin),
                &json!({}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{action}");
    }
    mailbox.wait_for(&customer.email, "is on its way").await;
    mailbox.wait_for(&customer.email, "was delivered").await;
    for _ in 0..100 {
        if stock(&api, "SKU-1").await.1 == before.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stock(&api, "SKU-1").await,
        (before.0 - 2, before.1),
        "shipped stock left"
    );
    let timeline = api
        .get_json(&format!("/api/orders/{id}/timeline"), &customer.token)
        .await;
    assert_eq!(timeline["saga"]["step"], "completed");
    assert_eq!(timeline["saga"]["stock"], "shipped");

    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_order_for_more_than_is_in_stock_fails_and_holds_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let customer = api.register_customer().await;
    let before = (stock(&api, "SKU-1").await, stock(&api, "SKU-2").await);

    // One line fits, the other does not: nothing is reserved.
    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 51}]}),
    )
    .await;
    let order = api.wait_for_status(&customer.token, &id, &["failed"]).await;
    assert_eq!(order["failure_reason"], "out_of_stock");
    assert_eq!(
        (stock(&api, "SKU-1").await, stock(&api, "SKU-2").await),
        before
    );
    let pool = api.pool().await;
    assert_eq!(
        payment_status(&pool, &id).await,
        None,
        "no payment was asked for"
    );

    let email = Mailbox::new()
        .wait_for(&customer.email, "could not complete")
        .await;
    assert!(
        email["text"]
            .as_str()
            .unwrap()
            .contains("because some items in your order are out of stock"),
        "{email}"
    );
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_declined_payment_releases_the_reservation(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let before = stock(&api, "SKU-12").await;

    // 666.00 is declined by the simulated provider, as is a `tok_decline` token.
    let by_amount = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-12", "quantity": 1}]}),
    )
    .await;
    let by_token = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": "tok_decline_insufficient_funds"}),
    )
    .await;
    for id in [&by_amount, &by_token] {
        let order = api.wait_for_status(&customer.token, id, &["failed"]).await;
        assert_eq!(order["failure_reason"], "payment_declined");
        assert_eq!(payment_status(&pool, id).await.as_deref(), Some("declined"));
        let timeline = api
            .get_json(&format!("/api/orders/{id}/timeline"), &customer.token)
            .await;
        assert_eq!(timeline["saga"]["stock"], "released");
        let kinds: Vec<&str> = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"payment.declined") && kinds.contains(&"inventory.released"),
            "{kinds:?}"
        );
        wait_for_emails(&pool, id, &["order_failed"]).await;
    }
    assert_eq!(stock(&api, "SKU-12").await, before, "reservation released");
    let email = Mailbox::new()
        .wait_for(&customer.email, "could not complete")
        .await;
    assert!(
        email["text"]
            .as_str()
            .unwrap()
            .contains("because the payment was declined")
    );
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn cancelling_at_each_cancellable_status_releases_stock_and_voids_payment(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The API alone first: an order cancelled before the worker ever sees it.
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let before = stock(&api, "SKU-3").await;
    let cancel = |id: String| {
        let api = &api;
        let token = customer.token.clone();
        async move {
            let response = api
                .post(
                    &format!("/api/orders/{id}/cancel"),
                    Some(&token),
                    &json!({}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "cancel {id}");
        }
    };
    let line = json!({"items": [{"sku": "SKU-3", "quantity": 2}]});
    let pending = place(&api, &customer, &line).await;
    cancel(pending.clone()).await;

    // A slow payment provider keeps the next order at `reserved` long enough to cancel it there.
    let worker = TestWorker::spawn(&api, &["--payment-latency-ms", "1500"]).await;
    let reserved = place(&api, &customer, &line).await;
    api.wait_for_status(&customer.token, &reserved, &["reserved"])
        .await;
    cancel(reserved.clone()).await;
    let confirmed = place(&api, &customer, &line).await;
    api.wait_for_status(&customer.token, &confirmed, &["confirmed"])
        .await;
    cancel(confirmed.clone()).await;

    for id in [&pending, &reserved, &confirmed] {
        api.wait_for_status(&customer.token, id, &["cancelled"])
            .await;
        // The saga finishes (a late authorization is voided) before the checks.
        let mut saga = Value::Null;
        for _ in 0..100 {
            saga = api
                .get_json(&format!("/api/orders/{id}/timeline"), &customer.token)
                .await["saga"]
                .clone();
            if saga["step"] == "cancelled" && saga["payment"] != "requested" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(saga["step"], "cancelled", "{id}");
        wait_for_emails(&pool, id, &["order_cancelled"]).await;
    }
    assert_eq!(payment_status(&pool, &pending).await, None, "never asked");
    assert_eq!(
        payment_status(&pool, &reserved).await.as_deref(),
        Some("voided"),
        "late authorization voided"
    );
    assert_eq!(
        payment_status(&pool, &confirmed).await.as_deref(),
        Some("voided")
    );
    assert_eq!(
        stock(&api, "SKU-3").await,
        before,
        "every reservation released"
    );
    let held: i64 =
        sqlx::query_scalar("select count(*) from inventory_reservations where status = 'held'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(held, 0);
    assert_eq!(
        Mailbox::new()
            .subjects(&customer.email)
            .await
            .iter()
            .filter(|s| s.contains("was cancelled"))
            .count(),
        3
    );
    worker.stop().await;
    api.stop().await;
}

/// The saga's transitions of an order, as event names.
async fn transitions(api: &TestApi, customer: &Customer, id: &str) -> Vec<String> {
    let timeline = api
        .get_json(&format!("/api/orders/{id}/timeline"), &customer.token)
        .await;
    timeline["saga"]["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn a_provider_that_never_answers_fails_the_order_with_timeout_and_compensates(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    // Every authorization call goes unanswered; the sweeper resumes the step twice, then it fails.
    let worker = TestWorker::spawn(
        &api,
        &[
            "--payment-fault",
            "unavailable",
            "--payment-timeout-seconds",
            "1",
            "--payment-attempts",
            "3",
        ],
    )
    .await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let before = stock(&api, "SKU-4").await;

    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-4", "quantity": 1}]}),
    )
    .await;
    let order = api.wait_for_status(&customer.token, &id, &["failed"]).await;
    assert_eq!(order["failure_reason"], "timeout");
    assert_eq!(stock(&api, "SKU-4").await, before, "released on timeout");
    assert_eq!(
        payment_status(&pool, &id).await,
        None,
        "the provider never held anything"
    );
    let email = Mailbox::new()
        .wait_for(&customer.email, "could not complete")
        .await;
    assert!(
        email["text"]
            .as_str()
            .unwrap()
            .contains("could not be processed in time")
    );
    assert_eq!(
        transitions(&api, &customer, &id).await,
        [
            "started",
            "stock_reserved",
            "payment_unanswered",
            "deadline_checked",
            "payment_unanswered",
            "deadline_checked",
            "payment_unanswered"
        ]
    );
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_authorization_whose_answer_is_lost_is_found_by_its_key_and_confirms_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let line = json!({"items": [{"sku": "SKU-4", "quantity": 1}]});

    // The provider authorizes, then the answer never comes back: the next try asks by key.
    let worker = TestWorker::spawn(&api, &["--payment-fault", "timeout-after-authorize"]).await;
    let lost = place(&api, &customer, &line).await;
    api.wait_for_status(&customer.token, &lost, &["confirmed"])
        .await;
    worker.stop().await;

    // The provider answers after 2.5 s, but each call may take 1 s: the authorization happened
    // all the same, and the next call finds it instead of authorizing again.
    let worker = TestWorker::spawn(
        &api,
        &[
            "--payment-latency-ms",
            "2500",
            "--payment-timeout-seconds",
            "1",
        ],
    )
    .await;
    let slow = place(&api, &customer, &line).await;
    api.wait_for_status(&customer.token, &slow, &["confirmed"])
        .await;

    for id in [&lost, &slow] {
        assert_eq!(
            payment_status(&pool, id).await.as_deref(),
            Some("authorized")
        );
        let authorized: i64 = sqlx::query_scalar(
            "select count(*) from event_log where event_type = 'payment.authorized' and order_id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(authorized, 1, "one authorization recorded for {id}");
        let events = transitions(&api, &customer, id).await;
        assert_eq!(events[..2], ["started", "stock_reserved"]);
        assert_eq!(
            events.last().map(String::as_str),
            Some("payment_authorized")
        );
    }
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn two_hundred_concurrent_orders_for_twenty_units_confirm_exactly_twenty(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    create_item(&api, "SCARCE-1", 20, 0).await;
    let customer = api.register_customer().await;

    let body = json!({"items": [{"sku": "SCARCE-1", "quantity": 1}]});
    let placing = (0..200).map(|_| place(&api, &customer, &body));
    let ids = futures_util::future::join_all(placing).await;
    let mut confirmed = 0;
    let mut out_of_stock = 0;
    for id in &ids {
        let order = api
            .wait_for_status(&customer.token, id, &["confirmed", "failed"])
            .await;
        match order["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            _ => {
                assert_eq!(order["failure_reason"], "out_of_stock");
                out_of_stock += 1;
            }
        }
    }
    assert_eq!((confirmed, out_of_stock), (20, 180));
    assert_eq!(stock(&api, "SCARCE-1").await, (0, 20));
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn stock_falling_below_its_threshold_alerts_the_admins(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let sku = format!("LOW-{}", uuid::Uuid::now_v7().simple());
    create_item(&api, &sku, 6, 5).await;
    let customer = api.register_customer().await;
    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": sku, "quantity": 2}]}),
    )
    .await;
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    let alert = Mailbox::new()
        .wait_for(ADMIN.0, &format!("Low stock: {sku} has 4 left"))
        .await;
    assert!(
        alert["text"]
            .as_str()
            .unwrap()
            .contains("below its threshold of 5")
    );
    let pool = api.pool().await;
    let alerts: i64 = sqlx::query_scalar(
        "select count(*) from event_log where event_type = 'inventory.low_stock' and aggregate_id = $1",
    )
    .bind(&sku)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alerts, 1);
    // Already below: another order does not alert again.
    let again = place(
        &api,
        &customer,
        &json!({"items": [{"sku": sku, "quantity": 1}]}),
    )
    .await;
    api.wait_for_status(&customer.token, &again, &["confirmed"])
        .await;
    let alerts: i64 = sqlx::query_scalar(
        "select count(*) from event_log where event_type = 'inventory.low_stock' and aggregate_id = $1",
    )
    .bind(&sku)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alerts, 1, "one alert per crossing");
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_email_the_smtp_server_never_takes_is_retried_then_marked_failed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let smtp = format!("smtp://{closed}");
    let worker = TestWorker::spawn(&api, &["--smtp-url", &smtp, "--email-max-attempts", "3"]).await;
    let customer = api.register_customer().await;
    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-1", "quantity": 1}]}),
    )
    .await;
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;

    let admin = api.token(ADMIN).await;
    let mut failed = Vec::new();
    for _ in 0..100 {
        let list = api
            .get_json("/api/admin/email-deliveries?status=failed", &admin)
            .await;
        failed = list["items"].as_array().unwrap().clone();
        if failed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        failed.len(),
        2,
        "received and confirmed both gave up: {failed:?}"
    );
    for delivery in &failed {
        assert_eq!(delivery["attempts"], 3);
        assert_eq!(delivery["recipient"], customer.email.as_str());
        assert!(
            delivery["last_error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
    }
    let pool = api.pool().await;
    let events: i64 = sqlx::query_scalar(
        "select count(*) from event_log where event_type = 'email.failed' and order_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(events, 2);
    let parked: i64 = sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "an email gives up before its message is parked");
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_order_whose_placed_message_is_lost_is_still_carried_to_the_end(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The saga is written with the order, due one second after placement.
    let api = TestApi::spawn_with(&options, &["--reserve-timeout-seconds", "1"]).await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-2", "quantity": 1}]}),
    )
    .await;
    // Published, then lost before any worker saw it: the saga queue is purged.
    for _ in 0..100 {
        let unpublished: i64 =
            sqlx::query_scalar("select count(*) from outbox where published_at is null")
                .fetch_one(&pool)
                .await
                .unwrap();
        if unpublished == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = api.channel().await;
    let purged = channel
        .queue_purge(
            api.topology.queue(WorkQueue::Saga).as_str().into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(purged, 1, "the order.placed message was in the queue");

    // No message will ever wake this order's saga; the sweeper finds it by its deadline.
    let worker = TestWorker::spawn(&api, &[]).await;
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    let events = transitions(&api, &customer, &id).await;
    assert_eq!(
        events,
        ["deadline_checked", "stock_reserved", "payment_authorized"]
    );
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_view_found_behind_its_order_is_re_projected_by_the_worker(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    let pool = api.pool().await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let id = place(
        &api,
        &customer,
        &json!({"items": [{"sku": "SKU-3", "quantity": 1}]}),
    )
    .await;
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    let confirmed_count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "select coalesce(sum(order_count), 0)::int8 from sales_stats where status = 'confirmed'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let confirmed_before = confirmed_count(pool.clone()).await;

    // As a restore from an older backup would leave it: the view (and its count in the sales
    // figures) back at `pending`, two versions behind the order.
    sqlx::query(
        "update order_views set status = 'pending', failure_reason = null, version = version - 2 \
         where order_id = $1::uuid",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into sales_stats_changes (currency, status, order_count, total_amount) \
         select currency, s.status, s.n, s.n * total_amount from orders, \
         (values ('confirmed', -1), ('pending', 1)) as s(status, n) where id = $1::uuid",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    let view_status = || {
        let pool = pool.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "select v.status from order_views v join orders o on o.id = v.order_id \
                 where v.order_id = $1::uuid and v.version = o.version",
            )
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(view_status().await, None, "the view is behind its order");

    // No event about the order will come; the worker's periodic check finds the view anyway.
    let mut repaired = None;
    for _ in 0..100 {
        repaired = view_status().await;
        if repaired.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(repaired.as_deref(), Some("confirmed"));
    assert_eq!(
        confirmed_count(pool.clone()).await,
        confirmed_before,
        "the order counted as confirmed once again"
    );
    worker.stop().await;
    api.stop().await;
}
