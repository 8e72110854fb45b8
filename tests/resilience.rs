//! Exactly-once in effect, whatever fails: duplicated messages, a handler that keeps failing
//! (retried, parked, replayed), a worker killed mid-stream, a broker restart, a broker that takes
//! connections but never answers.

use std::collections::HashMap;
use std::time::Duration;

use orion_messaging::{Broker, Envelope, Publisher, WorkQueue};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::support::{
    ADMIN, Customer, DatabaseOutage, Mailbox, Partition, TestApi, TestWorker, WorkerProcess,
    amqp_url, open_sockets_towards, publish_poison, restart_broker_app,
};

async fn count(pool: &PgPool, sql: &'static str, order_id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The first dead letter an admin sees that `matches`, looked for every 100 ms for `within`;
/// `Value::Null` when none showed up, which the caller's assertions then report.
async fn wait_for_dead_letter(
    api: &TestApi,
    admin: &str,
    within: Duration,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let list = api.get_json("/api/admin/dead-letters", admin).await;
        if let Some(letter) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| matches(l))
        {
            return letter.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

/// The envelope of an event still in the outbox, as the relay would have sent it.
async fn outbox_envelope(pool: &PgPool, event_type: &str, order_id: &str) -> Envelope {
    let row = sqlx::query(
        "select id, aggregate_id, payload, created_at from outbox where event_type = $1 and aggregate_id = $2",
    )
    .bind(event_type)
    .bind(order_id)
    .fetch_one(pool)
    .await
    .unwrap();
    Envelope {
        specversion: Envelope::SPEC_VERSION.to_owned(),
        id: row.get("id"),
        kind: event_type.to_owned(),
        source: "orion-tests".to_owned(),
        time: row.get("created_at"),
        subject: row.get("aggregate_id"),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        datacontenttype: "application/json".to_owned(),
        data: row.get::<Value, _>("payload"),
    }
}

/// Waits until the work queues hold no ready message.
async fn wait_until_queues_drained(api: &TestApi) {
    let channel = api.channel().await;
    for _ in 0..100 {
        let mut ready = 0;
        for queue in [WorkQueue::Saga, WorkQueue::Email] {
            let declared = channel
                .queue_declare(
                    api.topology.queue(queue).as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap();
            ready += declared.message_count();
        }
        if ready == 0 {
            // And a moment for what the consumers hold unacked.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the work queues did not drain");
}

#[sqlx::test(migrations = false)]
async fn a_message_delivered_twice_has_one_effect_and_sends_one_email(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // No relay in the API: this test publishes the order's event itself, twice, at once.
    let api = TestApi::spawn_with(&options, &["--outbox-relay", "false"]).await;
    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-5", 2)]).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let pool = api.pool().await;
    let placed = outbox_envelope(&pool, "order.placed", &id).await;
    let publisher = Publisher::new(
        std::sync::Arc::new(orion_messaging::Broker::new(api.amqp.clone())),
        api.topology.clone(),
    );
    let (a, b) = tokio::join!(publisher.publish(&placed), publisher.publish(&placed));
    a.unwrap();
    b.unwrap();

    let worker = TestWorker::spawn(&api, &[]).await;
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;
    let mailbox = Mailbox::new();
    mailbox.wait_for(&customer.email, "is confirmed").await;
    // Once more, now that everything is done.
    publisher.publish(&placed).await.unwrap();
    wait_until_queues_drained(&api).await;

    let reservations = count(
        &pool,
        "select count(*) from inventory_reservations where order_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(reservations, 1, "reserved once");
    let payments = count(
        &pool,
        "select count(*) from payments where order_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(payments, 1, "authorized once");
    let reserved_events = count(
        &pool,
        "select count(*) from event_log where order_id = $1::uuid and event_type = 'inventory.reserved'",
        &id,
    )
    .await;
    assert_eq!(reserved_events, 1);
    let subjects = mailbox.subjects(&customer.email).await;
    assert_eq!(
        subjects.len(),
        2,
        "one received and one confirmed email: {subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("We received"))
            .count(),
        1
    );
    worker.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_failing_handler_is_retried_then_parked_and_a_replay_works_once_fixed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let pool = api.pool().await;
    // Break the reservations' table: every attempt fails with a database error, which is
    // retryable (and not an outage: the database answers).
    sqlx::query("alter table inventory_reservations rename to inventory_reservations_away")
        .execute(&pool)
        .await
        .unwrap();
    let worker = TestWorker::spawn(&api, &[]).await;
    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-6", 1)]).await;
    let id = order["id"].as_str().unwrap().to_owned();

    let admin = api.token(ADMIN).await;
    let parked = wait_for_dead_letter(&api, &admin, Duration::from_secs(15), |letter| {
        letter["body"]["subject"] == id.as_str()
    })
    .await;
    assert_eq!(parked["event_type"], "order.placed", "parked: {parked}");
    assert_eq!(parked["attempts"], 5, "tried five times with backoff");
    assert_eq!(parked["queue"], api.topology.queue(WorkQueue::Saga));
    assert!(
        parked["error"]
            .as_str()
            .unwrap()
            .contains("inventory_reservations"),
        "the error says what failed: {parked}"
    );
    assert_eq!(parked["replay_count"], 0);
    let still: Value = api
        .get_json(&format!("/api/orders/{id}"), &customer.token)
        .await;
    assert_eq!(still["status"], "pending");
    let handled: i64 = sqlx::query_scalar("select count(*) from inbox where consumer = 'saga'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(handled, 0, "a failed attempt leaves no inbox row");

    // Fixed: the replay goes through, once.
    sqlx::query("alter table inventory_reservations_away rename to inventory_reservations")
        .execute(&pool)
        .await
        .unwrap();
    let letter_id = parked["id"].as_str().unwrap();
    let replay = api
        .post(
            &format!("/api/admin/dead-letters/{letter_id}/replay"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["replay_count"], 1);
    assert!(replayed["replayed_at"].is_string());
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;

    // A second replay is harmless: the saga's inbox knows the message.
    let again = api
        .post(
            &format!("/api/admin/dead-letters/{letter_id}/replay"),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    wait_until_queues_drained(&api).await;
    let reservations = count(
        &pool,
        "select count(*) from inventory_reservations where order_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(reservations, 1);

    // Only admins see or replay dead letters; an unknown one is 404.
    let forbidden = api
        .get("/api/admin/dead-letters", Some(&customer.token))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let missing = api
        .post(
            &format!("/api/admin/dead-letters/{}/replay", Uuid::now_v7()),
            Some(&admin),
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    crate::support::expect_problem(missing, 404, "not-found").await;
    worker.stop().await;
    api.stop().await;
}

/// Places `n` orders of one unit each from a background task, a few milliseconds apart.
fn stream_of_orders(
    api: &TestApi,
    customer: &Customer,
    n: usize,
) -> tokio::task::JoinHandle<Vec<String>> {
    let client = api.client.clone();
    let url = api.url("/api/orders");
    let token = customer.token.clone();
    tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..n {
            let sku = ["SKU-7", "SKU-8", "SKU-9"][i % 3];
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"items": [{"sku": sku, "quantity": 1}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
            let order: Value = response.json().await.unwrap();
            ids.push(order["id"].as_str().unwrap().to_owned());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ids
    })
}

/// Every order is final; stock held is exactly what the confirmed orders hold; every email was
/// sent once.
async fn assert_all_settled(api: &TestApi, customer: &Customer, ids: &[String]) {
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for id in ids {
        let order = api
            .wait_for_status(&customer.token, id, &["confirmed", "failed"])
            .await;
        *statuses
            .entry(order["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let pool = api.pool().await;
    let rows = sqlx::query(
        r#"select o.status, count(r.*) filter (where r.status = 'held') as held
           from orders o left join inventory_reservations r on r.order_id = o.id
           group by o.id, o.status"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in &rows {
        let status: String = row.get(0);
        let held: i64 = row.get(1);
        match status.as_str() {
            "confirmed" => assert_eq!(held, 1, "a confirmed order holds its line"),
            _ => assert_eq!(held, 0, "a {status} order holds nothing"),
        }
    }
    let reserved: i64 = sqlx::query_scalar("select sum(reserved)::int8 from inventory_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        reserved,
        i64::try_from(*statuses.get("confirmed").unwrap_or(&0)).unwrap(),
        "counters agree with the reservations"
    );
    // Every order's two emails are settled (sent, or failed where a send was interrupted and
    // its outcome unknown), and no email went out twice.
    let expected = i64::try_from(ids.len() * 2).unwrap();
    let mut settled = (0, 0);
    // A delivery a killed worker left `sending` is settled when its lease ends (30 s).
    for _ in 0..600 {
        let row = sqlx::query(
            "select count(*) filter (where status = 'sent'), count(*) filter (where status in ('sent', 'failed')) from email_deliveries",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        settled = (row.get::<i64, _>(0), row.get::<i64, _>(1));
        if settled.1 == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(settled.1, expected, "every email settled; {statuses:?}");
    let messages = Mailbox::new().to(&customer.email).await;
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        *by_id
            .entry(message["messageId"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "emails sent twice: {twice:?}");
    // An email interrupted by the kill is marked failed but may have reached the server.
    let received = i64::try_from(messages.len()).unwrap();
    assert!(
        (settled.0..=settled.1).contains(&received),
        "{received} received; {} sent, {} settled",
        settled.0,
        settled.1
    );
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_mid_stream_loses_nothing_and_repeats_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    // Short deadlines: the sweeper soon resumes a payment that died with the worker.
    let flags = [
        "--payment-latency-ms",
        "50",
        "--payment-timeout-seconds",
        "3",
        "--reserve-timeout-seconds",
        "3",
    ];
    let worker = WorkerProcess::spawn(&api, &flags).await;
    let stream = stream_of_orders(&api, &customer, 60);
    tokio::time::sleep(Duration::from_millis(700)).await;
    worker.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = WorkerProcess::spawn(&api, &flags).await;
    let ids = stream.await.unwrap();
    assert_all_settled(&api, &customer, &ids).await;
    worker.terminate().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
#[ignore = "restarts the shared broker; `cargo xtask test` runs it alone after the other tests"]
async fn a_broker_restart_during_a_stream_of_orders_loses_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = WorkerProcess::spawn(&api, &[]).await;
    let customer = api.register_customer().await;
    let stream = stream_of_orders(&api, &customer, 40);
    tokio::time::sleep(Duration::from_millis(400)).await;
    restart_broker_app("stop_app");
    tokio::time::sleep(Duration::from_secs(2)).await;
    restart_broker_app("start_app");
    let ids = stream.await.unwrap();
    assert_all_settled(&api, &customer, &ids).await;
    // A worker that lived through the restart still stops promptly when asked.
    worker.terminate_within(Duration::from_secs(15)).await;
    api.stop().await;
}

/// Places `n` orders of one unit each from a background task, as a client that keeps its promise
/// does: each order has its own `Idempotency-Key`, and a `503` (or no answer at all) is retried
/// with the same key after the `Retry-After` the API gave. Any other answer fails the test; a
/// `500` above all. Returns the ids and how many `503`s were answered.
fn stream_of_retrying_orders(
    api: &TestApi,
    customer: &Customer,
    n: usize,
) -> tokio::task::JoinHandle<(Vec<String>, usize)> {
    let client = api.client.clone();
    let url = api.url("/api/orders");
    let token = customer.token.clone();
    tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut unavailable = 0;
        for i in 0..n {
            let sku = ["SKU-7", "SKU-8", "SKU-9"][i % 3];
            let key = format!("outage-order-{i}-{}", uuid::Uuid::new_v4());
            let order = loop {
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .json(&json!({"items": [{"sku": sku, "quantity": 1}]}))
                    .send()
                    .await;
                let response = match sent {
                    Ok(response) => response,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                match response.status().as_u16() {
                    202 | 200 => break response.json::<Value>().await.unwrap(),
                    503 => {
                        unavailable += 1;
                        let wait: u64 = response
                            .headers()
                            .get("retry-after")
                            .expect("a 503 says when to retry")
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert!(wait > 0, "Retry-After: {wait}");
                        let problem: Value = response.json().await.unwrap();
                        assert_eq!(problem["status"], 503, "{problem}");
                        // Sooner than asked, to keep the test short; the key makes it safe.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    status => panic!(
                        "placing an order during an outage answered {status}: {}",
                        response.text().await.unwrap_or_default()
                    ),
                }
            };
            ids.push(order["id"].as_str().unwrap().to_owned());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (ids, unavailable)
    })
}

#[sqlx::test(migrations = false)]
#[ignore = "stops the shared PostgreSQL; `cargo xtask test` runs it alone after the other tests"]
async fn a_database_outage_delays_orders_and_emails_but_fails_and_parks_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    // Short step deadlines: under the old rules the outage alone would have failed orders. A
    // slow provider keeps payments between their two transactions when the database goes.
    let flags = [
        "--payment-latency-ms",
        "300",
        "--payment-timeout-seconds",
        "3",
        "--reserve-timeout-seconds",
        "3",
    ];
    let worker = WorkerProcess::spawn(&api, &flags).await;
    let stream = stream_of_retrying_orders(&api, &customer, 45);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Longer than the pool's acquire timeout and every handler's retry path, shorter than the test.
    let outage = DatabaseOutage::begin();
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(outage);
    let (ids, unavailable) = stream.await.unwrap();
    assert!(unavailable > 0, "the outage was seen by the clients");

    // Every order for an item in stock is confirmed: none failed for the time the system was down.
    for id in &ids {
        let order = api
            .wait_for_status(&customer.token, id, &["confirmed", "failed"])
            .await;
        assert_eq!(order["status"], "confirmed", "{order}");
    }
    assert_all_settled(&api, &customer, &ids).await;
    let pool = api.pool().await;
    let sent: i64 =
        sqlx::query_scalar("select count(*) from email_deliveries where status = 'sent'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        sent,
        i64::try_from(ids.len() * 2).unwrap(),
        "every email sent, none failed"
    );
    let parked: i64 = sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "an outage parks nothing");
    worker.terminate().await;
    api.stop().await;
}

/// A message that crashes the whole process (no unwinding, no ack — as a segfault or an
/// out-of-memory kill would) is counted by the broker's delivery count and parked, unhandled,
/// after ten crashes; the orders around it keep flowing. The worker also puts the queue policies
/// in place, which would park it at the broker had the worker not.
#[sqlx::test(migrations = false)]
async fn a_message_that_crashes_the_worker_is_parked_after_ten_crashes(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    let management_url = crate::support::management_url();
    let flags = [
        "--fault-injection",
        "--amqp-management-url",
        &management_url,
    ];

    let poison = publish_poison(&api.topology, "crash").await;
    let order = api.place_order(&customer.token, &[("SKU-2", 1)]).await;
    let id = order["id"].as_str().unwrap().to_owned();

    // Restart the worker each time it dies, as a supervisor would.
    let mut crashes = 0;
    let survivor = loop {
        let mut worker = WorkerProcess::launch_on(&api.db, api.topology.prefix(), &flags);
        match worker.exit_within(Duration::from_secs(15)).await {
            Some(status) => {
                assert!(!status.success(), "the worker crashed: {status}");
                crashes += 1;
                assert!(crashes <= 12, "the message was never parked");
            }
            None => break worker,
        }
    };
    assert_eq!(
        crashes, 10,
        "parked at its tenth redelivery, before crashing again"
    );

    let admin = api.token(ADMIN).await;
    let parked = wait_for_dead_letter(&api, &admin, Duration::from_secs(10), |letter| {
        letter["message_id"] == poison.to_string().as_str()
    })
    .await;
    assert_eq!(
        parked["queue"],
        api.topology.queue(WorkQueue::Saga),
        "parked: {parked}"
    );
    assert!(
        parked["error"]
            .as_str()
            .unwrap_or_default()
            .contains("without being settled"),
        "the reason says what happened: {parked}"
    );
    api.wait_for_status(&customer.token, &id, &["confirmed"])
        .await;

    let management =
        orion_messaging::Management::new(&management_url, &crate::support::amqp_url()).unwrap();
    for expected in api.topology.policies() {
        let held = management.policy(&expected.name).await.unwrap();
        let held = held.unwrap_or_else(|| panic!("policy {} in place", expected.name));
        assert_eq!(held["pattern"], expected.pattern.as_str());
        assert_eq!(held["definition"], expected.definition, "{}", expected.name);
    }
    survivor.terminate().await;
    management.remove(&api.topology.policies()).await.unwrap();
    api.stop().await;
}

/// A broker that takes connections but never answers them (here, behind a cut link; a frozen or
/// overloaded broker looks the same, as the kernel completes the TCP handshake regardless) costs
/// a caller time, not a socket and a thread per attempt: each attempt that times out has its
/// socket shut down and released, and the connection opens once the link heals.
#[tokio::test]
async fn a_broker_that_never_answers_leaves_no_connection_behind_per_attempt() {
    let url = url::Url::parse(&amqp_url()).unwrap();
    let upstream = tokio::net::lookup_host((
        url.host_str().unwrap().to_owned(),
        url.port().unwrap_or(5672),
    ))
    .await
    .unwrap()
    .find(std::net::SocketAddr::is_ipv4)
    .expect("the broker has an IPv4 address");
    let partition = Partition::in_front_of(upstream).await;
    let port = partition.address().port();
    partition.cut();
    let mut through = url.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(port)).unwrap();
    let broker = Broker::new(through.as_str());

    const ATTEMPTS: usize = 4;
    for attempt in 1..=ATTEMPTS {
        let checked = broker.check().await;
        assert!(
            matches!(checked, Err(orion_messaging::Error::Timeout(_))),
            "attempt {attempt} should time out in the handshake: {checked:?}"
        );
    }
    // Every attempt got as far as a TCP connection ...
    assert_eq!(partition.accepted(), ATTEMPTS);
    // ... and none of them is still held open. The release happens on lapin's own thread once it
    // reads the end of its stream, so it is given a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !open_sockets_towards(port).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        open_sockets_towards(port),
        Vec::<String>::new(),
        "sockets of given-up connection attempts are still open"
    );

    partition.heal();
    // As a caller would: tried again until it works (a loaded machine may need a second go).
    let mut checked = broker.check().await;
    for _ in 0..5 {
        if checked.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        checked = broker.check().await;
    }
    checked.expect("the connection opens once the link heals");
    assert_eq!(
        open_sockets_towards(port),
        ["ESTABLISHED"],
        "exactly the live connection is open"
    );
    broker.close().await;
}

/// A broker whose accept queue is full (so overloaded it no longer takes connections off it)
/// makes the kernel drop new connections' SYNs: the TCP connect itself waits, retransmitting for
/// about two minutes. An attempt given up there is abandoned at once, not left to run out on a
/// thread of its own.
#[tokio::test]
async fn a_connect_the_broker_never_completes_is_abandoned_with_the_attempt() {
    // Listening, never accepting, with room for one queued connection.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Filled until a connection no longer completes.
    let mut queued = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(stream) => queued.push(stream.unwrap()),
            Err(_) => break,
        }
        assert!(queued.len() < 16, "the accept queue never filled");
    }
    let filled = open_sockets_towards(port);
    assert!(
        !filled.is_empty() && filled.iter().all(|state| state == "ESTABLISHED"),
        "only the queued connections: {filled:?}"
    );

    let connecting = move || {
        open_sockets_towards(port)
            .into_iter()
            .filter(|state| state == "SYN_SENT")
            .count()
    };
    let broker = std::sync::Arc::new(Broker::new(format!(
        "amqp://guest:guest@127.0.0.1:{port}/%2f"
    )));
    for attempt in 1..=2 {
        let check = tokio::spawn({
            let broker = broker.clone();
            async move { broker.check().await }
        });
        // The attempt really waits in the TCP connect, not later in the handshake.
        let mut seen_connecting = 0;
        while !check.is_finished() {
            seen_connecting = seen_connecting.max(connecting());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            seen_connecting >= 1,
            "attempt {attempt} never waited in a TCP connect"
        );
        let checked = check.await.unwrap();
        assert!(
            matches!(checked, Err(orion_messaging::Error::Timeout(_))),
            "attempt {attempt} should time out connecting: {checked:?}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while connecting() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connecting(), 0, "given-up connects are still waiting");
    drop(listener);
}
