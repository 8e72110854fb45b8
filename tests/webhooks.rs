//! Webhooks end to end: endpoints registered through the API, events fanned out and delivered by
//! a real worker to a real HTTP receiver in the test, signatures checked here and by the Standard
//! Webhooks reference library, and the delivery rules: retries on the schedule, `Retry-After`,
//! `410 Gone`, disabling after failing too long, private addresses refused, secret rotation, and
//! a delivery sent again after its worker was killed mid-attempt.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{
    ADMIN, Answer, Mailbox, Received, TestApi, TestWorker, WebhookReceiver, WorkerProcess,
    expect_problem,
};

/// Worker flags of every test here: the receiver is on this machine, and retries come fast.
const WORKER: [&str; 4] = [
    "--webhook-allow-private",
    "true",
    "--webhook-retry-schedule",
    "1s,1s,1s",
];

/// Registers an endpoint for `events` at `url`; returns (id, secret).
async fn register(api: &TestApi, admin: &str, url: &str, events: &[&str]) -> (String, String) {
    let response = api
        .post(
            "/api/admin/webhooks",
            Some(admin),
            &json!({"url": url, "events": events, "description": "test receiver"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["url"], url);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// Asks for a `webhook.test` delivery to `webhook`.
async fn send_test(api: &TestApi, admin: &str, webhook: &str) -> reqwest::Response {
    api.post(
        &format!("/api/admin/webhooks/{webhook}/test"),
        Some(admin),
        &json!({}),
    )
    .send()
    .await
    .unwrap()
}

async fn deliveries(api: &TestApi, admin: &str, webhook: &str) -> Vec<Value> {
    api.get_json(&format!("/api/admin/webhooks/{webhook}/deliveries"), admin)
        .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every delivery of `webhook` has an outcome other than `pending`.
async fn settled(api: &TestApi, admin: &str, webhook: &str, count: usize) -> Vec<Value> {
    for _ in 0..300 {
        let list = deliveries(api, admin, webhook).await;
        if list.len() >= count && list.iter().all(|d| d["outcome"] != "pending") {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "deliveries did not settle: {:?}",
        deliveries(api, admin, webhook).await
    );
}

fn of_type<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .collect()
}

#[sqlx::test(migrations = false)]
async fn order_events_arrive_signed_once_each_with_the_order_as_of_the_event(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &WORKER).await;
    let admin = api.token(ADMIN).await;
    let receiver = WebhookReceiver::start(&[]).await;
    let (webhook, secret) = register(&api, &admin, &receiver.url(), &["*"]).await;

    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-1", 1)]).await;
    let id = order["id"].as_str().unwrap();
    let confirmed = api
        .wait_for_status(&customer.token, id, &["confirmed"])
        .await;
    let received = receiver.wait_for(2, Duration::from_secs(20)).await;

    let placed = of_type(&received, "order.placed");
    let confirms = of_type(&received, "order.confirmed");
    assert_eq!((placed.len(), confirms.len()), (1, 1), "one of each");
    for delivery in [placed[0], confirms[0]] {
        assert!(
            delivery.signed_by(&secret),
            "signature of {}",
            delivery.body
        );
        let parsed = delivery
            .verified_by_reference_library(&secret)
            .expect("the reference library accepts the signature");
        assert_eq!(parsed, delivery.json());
        assert_eq!(delivery.headers["content-type"], "application/json");
        // A wrong secret is refused by both.
        let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(!delivery.signed_by(other));
        assert!(delivery.verified_by_reference_library(other).is_err());
    }
    // The body: the type, the event's time, and the order as GET shows it, as of the event.
    let placed_body = placed[0].json();
    assert_eq!(placed_body["data"]["id"], id);
    assert_eq!(placed_body["data"]["status"], "pending");
    let confirmed_body = confirms[0].json();
    assert_eq!(confirmed_body["data"], confirmed);
    assert!(
        time::OffsetDateTime::parse(
            confirmed_body["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    // webhook-id is the event's id, as the deliveries list shows it.
    let list = settled(&api, &admin, &webhook, 2).await;
    for delivery in &list {
        assert_eq!(delivery["outcome"], "delivered");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status_code"], 200);
    }
    let mut listed: Vec<&str> = list
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let mut sent: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    listed.sort_unstable();
    sent.sort_unstable();
    assert_eq!(listed, sent);

    // A test event, and nothing for an endpoint that did not subscribe.
    let (quiet, _) = register(&api, &admin, &receiver.url(), &["order.shipped"]).await;
    let response = send_test(&api, &admin, &webhook).await;
    assert_eq!(response.status(), 202);
    let received = receiver.wait_for(3, Duration::from_secs(10)).await;
    let test = of_type(&received, "webhook.test");
    assert_eq!(test.len(), 1);
    assert_eq!(test[0].json()["data"]["webhook_id"], webhook.as_str());
    assert!(test[0].signed_by(&secret));
    assert!(deliveries(&api, &admin, &quiet).await.is_empty());

    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn failed_deliveries_follow_the_schedule_and_honour_retry_after(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    // Fails, then asks for no pause (which does not shorten the schedule's), then for three
    // seconds (which lengthens it), then takes it.
    let patient = WebhookReceiver::start(&[
        Answer::Status(500),
        Answer::RetryAfter(503, 0),
        Answer::RetryAfter(429, 3),
    ])
    .await;
    // Never takes it.
    let broken = WebhookReceiver::start(&[Answer::Status(500); 10]).await;
    let (patient_id, _) = register(&api, &admin, &patient.url(), &["*"]).await;
    let (broken_id, _) = register(&api, &admin, &broken.url(), &["*"]).await;
    let worker = TestWorker::spawn(&api, &WORKER).await;
    for id in [&patient_id, &broken_id] {
        let response = send_test(&api, &admin, id).await;
        assert_eq!(response.status(), 202);
    }

    // Schedule 1s, 1s, 1s (each ±20 %, found within the loop's 1 s poll): four attempts in all,
    // one webhook-id throughout.
    let tries = patient.wait_for(4, Duration::from_secs(30)).await;
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at - w[0].at).collect();
    let scheduled =
        |gap: Duration| gap >= Duration::from_millis(750) && gap < Duration::from_millis(3_500);
    assert!(scheduled(gaps[0]) && scheduled(gaps[1]), "{gaps:?}");
    // Retry-After: 3 outlasted the schedule's second.
    assert!(gaps[2] >= Duration::from_millis(2_900), "{gaps:?}");
    assert!(
        tries
            .iter()
            .all(|t| t.header("webhook-id") == tries[0].header("webhook-id"))
    );
    let patient_list = settled(&api, &admin, &patient_id, 1).await;
    assert_eq!(patient_list[0]["outcome"], "delivered");
    assert_eq!(patient_list[0]["attempts"], 4);

    let failures = broken.wait_for(4, Duration::from_secs(30)).await;
    let gaps: Vec<Duration> = failures.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.iter().all(|gap| scheduled(*gap)), "{gaps:?}");
    let broken_list = settled(&api, &admin, &broken_id, 1).await;
    assert_eq!(broken_list[0]["outcome"], "failed", "{broken_list:?}");
    assert_eq!(broken_list[0]["attempts"], 4);
    assert_eq!(broken_list[0]["last_status_code"], 500);
    assert_eq!(
        broken.received().len(),
        4,
        "nothing after the schedule is spent"
    );

    // A replay sends it again, at once, with the same webhook-id.
    let delivery = broken_list[0]["id"].as_str().unwrap();
    let response = api
        .post(
            &format!("/api/admin/webhooks/{broken_id}/deliveries/{delivery}/replay"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let again = broken.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(
        again[4].header("webhook-id"),
        failures[0].header("webhook-id")
    );

    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn gone_and_long_failing_endpoints_are_disabled_and_the_admins_emailed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let gone = WebhookReceiver::start(&[Answer::Status(410)]).await;
    let failing = WebhookReceiver::start(&[Answer::Status(503); 20]).await;
    let (gone_id, _) = register(&api, &admin, &gone.url(), &["*"]).await;
    let (failing_id, _) = register(&api, &admin, &failing.url(), &["*"]).await;
    let worker = TestWorker::spawn(
        &api,
        &[
            "--webhook-allow-private",
            "true",
            "--webhook-retry-schedule",
            "500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms",
            // Five days, shortened.
            "--webhook-disable-after",
            "2s",
        ],
    )
    .await;
    for id in [&gone_id, &failing_id] {
        send_test(&api, &admin, id).await;
    }

    let mailbox = Mailbox::new();
    for (id, receiver, reason) in [
        (&gone_id, &gone, "410 Gone"),
        (&failing_id, &failing, "failed since"),
    ] {
        let email = mailbox
            .wait_for(ADMIN.0, &format!("Webhook disabled: {}", receiver.url()))
            .await;
        assert!(email["text"].as_str().unwrap().contains(reason), "{email}");
        let endpoint = api
            .get_json(&format!("/api/admin/webhooks/{id}"), &admin)
            .await;
        assert_eq!(endpoint["enabled"], false);
        assert!(
            endpoint["disabled_reason"]
                .as_str()
                .unwrap()
                .contains(reason)
        );
    }
    assert_eq!(gone.received().len(), 1, "nothing after 410");
    let failed_for = failing.received().len();
    assert!(failed_for >= 3, "{failed_for} attempts before disabling");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        failing.received().len(),
        failed_for,
        "nothing while disabled"
    );

    // A test is refused while disabled; enabling resumes the delivery that waited.
    let refused = send_test(&api, &admin, &failing_id).await;
    expect_problem(refused, 409, "conflict").await;
    let enabled = api
        .request(Method::PATCH, &format!("/api/admin/webhooks/{failing_id}"))
        .bearer_auth(&admin)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    failing
        .wait_for(failed_for + 1, Duration::from_secs(10))
        .await;

    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn private_addresses_are_refused_at_registration_and_at_delivery(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let strict = TestApi::spawn_with(&options, &["--webhook-allow-private", "false"]).await;
    let admin = strict.token(ADMIN).await;
    let receiver = WebhookReceiver::start(&[]).await;
    for url in [
        receiver.url(),
        "http://localhost/hooks".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
    ] {
        let response = strict
            .post(
                "/api/admin/webhooks",
                Some(&admin),
                &json!({"url": url, "events": ["*"]}),
            )
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 422, "validation-error").await;
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("public"),
            "{problem}"
        );
    }
    let response = strict
        .post(
            "/api/admin/webhooks",
            Some(&admin),
            &json!({"url": "ftp://example.com/", "events": ["*"]}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 422, "validation-error").await;

    // Registered where private addresses are allowed, refused by a worker where they are not:
    // the worker checks the address it connects to, whatever was checked at registration.
    let open = strict.replica(&["--webhook-allow-private", "true"]).await;
    let (webhook, _) = register(&open, &admin, &receiver.url(), &["*"]).await;
    let worker = TestWorker::spawn(
        &open,
        &[
            "--webhook-allow-private",
            "false",
            "--webhook-retry-schedule",
            "1s",
        ],
    )
    .await;
    send_test(&open, &admin, &webhook).await;
    let list = settled(&open, &admin, &webhook, 1).await;
    assert_eq!(list[0]["outcome"], "failed");
    assert!(
        list[0]["last_error"].as_str().unwrap().contains("private"),
        "{list:?}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );

    worker.stop().await;
    open.stop_replica().await;
    strict.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_rotated_secret_signs_beside_the_new_one(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &WORKER).await;
    let admin = api.token(ADMIN).await;
    let receiver = WebhookReceiver::start(&[]).await;
    let (webhook, old) = register(&api, &admin, &receiver.url(), &["*"]).await;

    let rotated: Value = api
        .post(
            &format!("/api/admin/webhooks/{webhook}/rotate-secret"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(new, old);
    let until = time::OffsetDateTime::parse(
        rotated["previous_secret_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hours = (until - time::OffsetDateTime::now_utc()).whole_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours} h of grace");

    send_test(&api, &admin, &webhook).await;
    let delivery = receiver
        .wait_for(1, Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(delivery.header("webhook-signature").split(' ').count(), 2);
    for secret in [old.as_str(), new] {
        assert!(delivery.signed_by(secret));
        delivery
            .verified_by_reference_library(secret)
            .expect("the reference library accepts either secret");
    }

    // The secret is never shown again.
    let endpoint = api
        .get_json(&format!("/api/admin/webhooks/{webhook}"), &admin)
        .await;
    assert!(endpoint.get("secret").is_none());
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_delivery_cut_short_by_a_killed_worker_is_sent_again_with_its_webhook_id(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    // The first attempt never gets an answer: the worker is killed while it waits.
    let receiver = WebhookReceiver::start(&[Answer::Hang]).await;
    let (webhook, secret) = register(&api, &admin, &receiver.url(), &["order.placed"]).await;
    let flags = [
        "--webhook-allow-private",
        "true",
        "--webhook-timeout-seconds",
        "2",
    ];
    let first = WorkerProcess::spawn(&api, &flags).await;
    let customer = api.register_customer().await;
    api.place_order(&customer.token, &[("SKU-2", 1)]).await;
    let held = receiver
        .wait_for(1, Duration::from_secs(20))
        .await
        .remove(0);
    first.kill().await;

    let second = WorkerProcess::spawn(&api, &flags).await;
    // The lease (timeout + 10 s) runs out, and the delivery is sent again.
    let again = receiver
        .wait_for(2, Duration::from_secs(40))
        .await
        .remove(1);
    assert_eq!(again.header("webhook-id"), held.header("webhook-id"));
    assert_eq!(again.body, held.body, "the same bytes");
    assert!(again.signed_by(&secret));
    let list = settled(&api, &admin, &webhook, 1).await;
    assert_eq!(list[0]["outcome"], "delivered");
    assert_eq!(list[0]["attempts"], 2);
    second.terminate().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn webhooks_are_managed_by_admins_and_keys_with_webhooks_manage(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let manager = api
        .api_key(
            &admin,
            &["webhooks:manage", "orders:read", "inventory:read"],
        )
        .await;
    let reader = api.api_key(&admin, &["orders:read"]).await;
    let customer = api.register_customer().await;
    let receiver = WebhookReceiver::start(&[]).await;

    let (webhook, _) = register(&api, &manager, &receiver.url(), &["order.confirmed"]).await;
    let listed = api.get_json("/api/admin/webhooks", &manager).await;
    assert_eq!(listed["items"][0]["id"], webhook.as_str());
    for token in [&reader, &customer.token] {
        let response = api
            .get("/api/admin/webhooks", Some(token))
            .send()
            .await
            .unwrap();
        expect_problem(response, 403, "forbidden").await;
    }

    let changed = api
        .request(Method::PATCH, &format!("/api/admin/webhooks/{webhook}"))
        .bearer_auth(&manager)
        .json(&json!({"events": ["order.placed", "inventory.low_stock"], "description": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(
        changed["events"],
        json!(["order.placed", "inventory.low_stock"])
    );
    assert_eq!(changed["description"], Value::Null);

    let unknown = api
        .request(Method::PATCH, &format!("/api/admin/webhooks/{webhook}"))
        .bearer_auth(&manager)
        .json(&json!({"events": ["order.reserved"]}))
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 422, "validation-error").await;

    let deleted = api
        .request(Method::DELETE, &format!("/api/admin/webhooks/{webhook}"))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = api
        .get(&format!("/api/admin/webhooks/{webhook}"), Some(&manager))
        .send()
        .await
        .unwrap();
    expect_problem(gone, 404, "not-found").await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_attempt_overtaken_by_a_replay_records_nothing_over_it(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    // The first attempt hangs until its 8 s timeout; the replay's is answered at once.
    let receiver = WebhookReceiver::start(&[Answer::Hang]).await;
    let (webhook, _) = register(&api, &admin, &receiver.url(), &["*"]).await;
    let worker = TestWorker::spawn(
        &api,
        &[
            "--webhook-allow-private",
            "true",
            "--webhook-timeout-seconds",
            "8",
            "--webhook-retry-schedule",
            "1s",
        ],
    )
    .await;
    send_test(&api, &admin, &webhook).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = deliveries(&api, &admin, &webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replayed = api
        .post(
            &format!("/api/admin/webhooks/{webhook}/deliveries/{delivery}/replay"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(
        (replayed["outcome"].as_str(), replayed["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    receiver.wait_for(2, Duration::from_secs(10)).await;
    // The hung attempt times out after the replay's was delivered; its "failed, try again"
    // must not overwrite the delivery.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let list = deliveries(&api, &admin, &webhook).await;
    assert_eq!(list[0]["outcome"], "delivered", "{list:?}");
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["last_status_code"], 200);
    assert_eq!(receiver.received().len(), 2, "nothing sent again");
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_key_subscribes_only_to_what_it_may_read(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let manager = api.api_key(&admin, &["webhooks:manage"]).await;
    let orders = api
        .api_key(&admin, &["webhooks:manage", "orders:read"])
        .await;
    let receiver = WebhookReceiver::start(&[]).await;
    for (key, events) in [
        (&manager, json!(["order.placed"])),
        (&manager, json!(["*"])),
        (&orders, json!(["inventory.low_stock"])),
        (&orders, json!(["*"])),
    ] {
        let response = api
            .post(
                "/api/admin/webhooks",
                Some(key),
                &json!({"url": receiver.url(), "events": events}),
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, 403, "forbidden").await;
    }
    register(
        &api,
        &orders,
        &receiver.url(),
        &["order.placed", "order.failed"],
    )
    .await;
    // Nor may it take over an endpoint that delivers more than it may read.
    let (admins, _) = register(&api, &admin, &receiver.url(), &["*"]).await;
    let redirected = api
        .request(Method::PATCH, &format!("/api/admin/webhooks/{admins}"))
        .bearer_auth(&manager)
        .json(&json!({"url": "http://127.0.0.1:9/elsewhere"}))
        .send()
        .await
        .unwrap();
    expect_problem(redirected, 403, "forbidden").await;
    let rotated = api
        .post(
            &format!("/api/admin/webhooks/{admins}/rotate-secret"),
            Some(&manager),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(rotated, 403, "forbidden").await;
    let endpoint = api
        .get_json(&format!("/api/admin/webhooks/{admins}"), &admin)
        .await;
    assert_eq!(endpoint["url"], receiver.url().as_str());
    api.stop().await;
}
