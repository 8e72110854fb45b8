//! The admin panel and the customer page in a real headless Chromium, through the gateway, while
//! orders flow through the API and the worker. Screenshots and the measured latency are saved
//! under `tests/artifacts/browser/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{
    ADMIN, NodeScript, REGISTERED_PASSWORD, TestApi, TestWorker, WebhookReceiver, spawn_gateway,
};

fn chromium() -> String {
    std::env::var("ORION_TEST_CHROMIUM").unwrap_or_else(|_| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("no Chromium: run `cargo xtask test`, which installs it, or set ORION_TEST_CHROMIUM")
            .to_owned()
    })
}

fn artifacts() -> PathBuf {
    crate::support::manifest_dir().join("artifacts/browser")
}

async fn expect(browser: &mut NodeScript, event: &str, within: Duration) -> Value {
    let next = browser
        .next_event(within)
        .await
        .unwrap_or_else(|| panic!("the browser script did not report `{event}` within {within:?}"));
    assert_eq!(next["event"], event, "{next}");
    next
}

#[sqlx::test(migrations = false)]
async fn the_admin_panel_follows_orders_live_and_restocks_in_a_real_browser(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    // The webhooks view's receiver is on this machine.
    let worker = TestWorker::spawn(&api, &["--webhook-allow-private", "true"]).await;
    let gateway = spawn_gateway(&[api.address()], &[]).await;
    let base = gateway.url("");
    let dir = artifacts();
    let chromium = chromium();
    let mut browser = NodeScript::spawn(
        "admin-browser.mjs",
        &[],
        &[
            ("ORION_BASE_URL", base.as_str()),
            ("ORION_CHROMIUM", chromium.as_str()),
            ("ORION_ARTIFACTS", dir.to_str().unwrap()),
            ("ORION_ADMIN_EMAIL", ADMIN.0),
            ("ORION_ADMIN_PASSWORD", ADMIN.1),
        ],
    );
    expect(&mut browser, "ready", Duration::from_secs(60)).await;

    // An order placed meanwhile appears and turns confirmed without a reload.
    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-4", 1)]).await;
    let id = order["id"].as_str().unwrap().to_owned();
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    browser
        .send(json!({"expectOrder": id, "status": "confirmed", "withinMs": 2000}))
        .await;
    let seen = expect(&mut browser, "order", Duration::from_secs(10)).await;
    assert_eq!(seen["sameDocument"], true, "the page was not reloaded");
    assert!(seen["statuses"].get("confirmed").is_some(), "{seen}");
    let confirmed_at: time::OffsetDateTime = sqlx::query_scalar(
        "select occurred_at from event_log where order_id = $1 and event_type = 'order.confirmed'",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&api.pool().await)
    .await
    .unwrap();
    let committed_ms = i64::try_from(confirmed_at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let latency_ms = seen["shown"].as_i64().unwrap() - committed_ms;
    std::fs::write(
        dir.join("latency.json"),
        json!({"order_id": id, "confirmed_committed_ms": committed_ms,
            "browser_shown_ms": seen["shown"], "latency_ms": latency_ms})
        .to_string(),
    )
    .unwrap();
    eprintln!("confirmed → shown in the admin panel: {latency_ms} ms");

    // Orders placed in the same minute are told apart by their reference, and found by it.
    let (_, someone_else) = api.new_customer().await;
    let other = api.place_order(&someone_else, &[("SKU-4", 1)]).await;
    api.wait_for_status(&someone_else, other["id"].as_str().unwrap(), &["confirmed"])
        .await;
    let reference = id.replace('-', "")[22..].to_uppercase();
    browser.send(json!({"search": reference})).await;
    let searched = expect(&mut browser, "searched", Duration::from_secs(15)).await;
    assert_eq!(searched["found"], json!([id]), "{searched}");
    assert!(searched["cleared"].as_u64() > Some(1), "{searched}");

    // Restocking from the table updates the row from the hub, and the catalog agrees.
    browser
        .send(json!({"restock": "SKU-4", "quantity": 5}))
        .await;
    let restocked = expect(&mut browser, "restocked", Duration::from_secs(15)).await;
    assert_eq!(
        restocked["after"].as_u64(),
        restocked["before"].as_u64().map(|n| n + 5)
    );
    let item = api.get_json("/api/inventory/SKU-4", &customer.token).await;
    assert_eq!(item["available"], restocked["after"]);

    // The customer's own page, as the confirmation email links to it.
    browser
        .send(json!({"customerPage": {"email": customer.email, "password": REGISTERED_PASSWORD, "orderId": id}}))
        .await;
    let page = expect(&mut browser, "customer", Duration::from_secs(60)).await;
    assert_eq!(page["status"], "confirmed");
    assert_eq!(page["rows"], 1, "a customer sees only their own orders");

    // The webhooks view: register an endpoint (its secret shown once), send a test, and see the
    // delivery arrive, signed with that secret, and show as delivered.
    let receiver = WebhookReceiver::start(&[]).await;
    browser.send(json!({"webhook": receiver.url()})).await;
    let webhook = expect(&mut browser, "webhook", Duration::from_secs(60)).await;
    assert_eq!(webhook["secretGone"], true, "{webhook}");
    let secret = webhook["secret"].as_str().unwrap();
    let delivered = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered[0].json()["type"], "webhook.test");
    assert!(delivered[0].signed_by(secret));

    // A phone-sized screen has no sideways scrolling.
    browser.send(json!({"phone": true})).await;
    let phone = expect(&mut browser, "phone", Duration::from_secs(60)).await;
    assert!(phone["overflow"].as_i64() <= Some(0), "{phone}");

    browser.send(json!({"stop": true})).await;
    let done = expect(&mut browser, "done", Duration::from_secs(30)).await;
    assert_eq!(done["problems"], json!([]), "errors in the browser");
    browser.wait(Duration::from_secs(10)).await;

    worker.stop().await;
    gateway.stop().await;
    api.stop().await;
}
