//! The order hub: the real `@microsoft/signalr` client under Node, through the gateway and across
//! replicas; what it refuses; and raw WebSocket clients for what a library client hides (the
//! handshake, a client that stops reading).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{ADMIN, Connection, HubProbe, JWT_SECRET, TestApi, TestWorker, spawn_gateway};

const SEPARATOR: char = '\u{1e}';

fn is_order(id: &str, status: &'static str) -> impl Fn(&Value) -> bool {
    let id = id.to_owned();
    move |m| m["orderId"] == id.as_str() && m["status"] == status
}

#[sqlx::test(migrations = false)]
async fn customers_hear_only_their_own_orders_and_admins_hear_everything(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let gateway = spawn_gateway(&[api.address()], &[]).await;
    let hub = gateway.url("/hubs/orders");
    let alice = api.register_customer().await;
    let bob = api.register_customer().await;
    let admin_token = api.token(ADMIN).await;
    let mut alice_hub = HubProbe::connected(&hub, &alice.token).await;
    let mut bob_hub = HubProbe::connected(&hub, &bob.token).await;
    let mut admin_hub = HubProbe::connected(&hub, &admin_token).await;

    let response = reqwest::Client::new()
        .post(gateway.url("/api/orders"))
        .bearer_auth(&alice.token)
        .json(&json!({"items": [{"sku": "SKU-1", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let order: Value = response.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();

    let confirmed = alice_hub
        .wait_for_message(
            "OrderStatusUpdated",
            Duration::from_secs(30),
            is_order(&id, "confirmed"),
        )
        .await;
    assert_eq!(confirmed["previousStatus"], "reserved");
    assert_eq!(confirmed["failureReason"], Value::Null);
    assert_eq!(confirmed["customerId"], alice.id.to_string());
    let statuses: Vec<Value> = alice_hub
        .messages("OrderStatusUpdated")
        .iter()
        .map(|m| m["status"].clone())
        .collect();
    assert_eq!(statuses, ["pending", "reserved", "confirmed"]);
    let sequences = alice_hub.sequences();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert!(alice_hub.messages("OrderPlaced").is_empty(), "admins only");
    assert!(
        alice_hub.messages("InventoryUpdated").is_empty(),
        "admins only"
    );

    let placed = admin_hub
        .wait_for_message("OrderPlaced", Duration::from_secs(10), |m| {
            m["orderId"] == id.as_str()
        })
        .await;
    assert_eq!(placed["customerId"], alice.id.to_string());
    assert_eq!(placed["itemCount"], 2);
    assert_eq!(placed["total"]["currency"], "USD");
    let stock = admin_hub
        .wait_for_message("InventoryUpdated", Duration::from_secs(10), |m| {
            m["sku"] == "SKU-1" && m["reason"] == "reserved"
        })
        .await;
    assert!(stock["available"].is_u64() && stock["reserved"].as_u64() >= Some(2));
    admin_hub
        .wait_for_message(
            "OrderStatusUpdated",
            Duration::from_secs(10),
            is_order(&id, "confirmed"),
        )
        .await;

    // Bob hears nothing of Alice's order and cannot ask for it.
    let refused = bob_hub
        .invoke("SubscribeToOrder", json!([id]))
        .await
        .expect_err("no such method");
    assert!(
        refused.contains("no method 'SubscribeToOrder'"),
        "{refused}"
    );
    bob_hub.collect_for(Duration::from_millis(500)).await;
    assert!(
        bob_hub.seen.iter().all(|e| e["event"] != "message"),
        "bob received: {:?}",
        bob_hub.seen
    );

    // Stopping the replica closes every connection with a close message first.
    worker.stop().await;
    api.stop().await;
    for probe in [&mut alice_hub, &mut bob_hub, &mut admin_hub] {
        let error = probe.wait_closed(Duration::from_secs(10)).await;
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("shutting down")),
            "{error:?}"
        );
    }
    gateway.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_client_on_one_replica_hears_an_order_placed_through_another(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Replica A never relays nor handles this order: what its client hears came over its own
    // notify queue.
    let a = TestApi::spawn_with(&options, &["--outbox-relay", "false"]).await;
    let b = a.replica(&[]).await;
    let worker = TestWorker::spawn(&a, &[]).await;
    let customer = a.register_customer().await;
    let admin_token = a.token(ADMIN).await;
    let mut on_a = HubProbe::connected(&a.url("/hubs/orders"), &customer.token).await;
    let mut admin_on_a = HubProbe::connected(&a.url("/hubs/orders"), &admin_token).await;

    let order = b.place_order(&customer.token, &[("SKU-2", 1)]).await;
    let id = order["id"].as_str().unwrap();
    on_a.wait_for_message(
        "OrderStatusUpdated",
        Duration::from_secs(30),
        is_order(id, "confirmed"),
    )
    .await;
    admin_on_a
        .wait_for_message("OrderPlaced", Duration::from_secs(10), |m| {
            m["orderId"] == id
        })
        .await;

    // A restock through B reaches the admin on A.
    let restocked = b
        .post(
            "/api/inventory/SKU-3/restock",
            Some(&admin_token),
            &json!({"quantity": 7}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(restocked.status(), 200);
    let level: Value = restocked.json().await.unwrap();
    let update = admin_on_a
        .wait_for_message("InventoryUpdated", Duration::from_secs(10), |m| {
            m["sku"] == "SKU-3" && m["reason"] == "restocked"
        })
        .await;
    assert_eq!(update["available"], level["available"]);

    // Stock falling below its threshold alerts the admins (the poster's threshold is 2 of 5).
    b.place_order(&customer.token, &[("SKU-12", 4)]).await;
    let alert = admin_on_a
        .wait_for_message("LowStockAlert", Duration::from_secs(30), |m| {
            m["sku"] == "SKU-12"
        })
        .await;
    assert_eq!(alert["available"], 1);
    assert_eq!(alert["lowStockThreshold"], 2);
    assert!(on_a.messages("LowStockAlert").is_empty(), "admins only");

    on_a.stop().await;
    admin_on_a.stop().await;
    worker.stop().await;
    b.stop_replica().await;
    a.stop().await;
}

fn token_with(
    secret: &str,
    role: orion_auth::Role,
    issued: time::OffsetDateTime,
    ttl: i64,
) -> String {
    let keys = orion_auth::TokenKeys::new(secret.as_bytes(), &[], time::Duration::seconds(ttl));
    keys.issue(uuid::Uuid::now_v7(), role, issued)
        .unwrap()
        .token
}

#[sqlx::test(migrations = false)]
async fn the_hub_refuses_bad_tokens_and_closes_a_connection_when_its_token_expires(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let gateway = spawn_gateway(&[api.address()], &[]).await;
    let now = time::OffsetDateTime::now_utc();
    let customer = orion_auth::Role::Customer;
    let expired = token_with(JWT_SECRET, customer, now - time::Duration::hours(1), 60);
    // REST tolerates 5 s of clock skew; the hub would close such a connection at once.
    let just_expired = token_with(JWT_SECRET, customer, now - time::Duration::seconds(62), 60);
    let forged = token_with("another secret that is long enough!!", customer, now, 600);
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let valid = token_with(JWT_SECRET, orion_auth::Role::Admin, now, 600);
        let claims = valid.split('.').nth(1).unwrap().to_owned();
        format!("{}.{claims}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#))
    };
    for hub in [api.url("/hubs/orders"), gateway.url("/hubs/orders")] {
        for (what, token) in [
            ("no token", None),
            ("an expired token", Some(expired.as_str())),
            ("a token expired seconds ago", Some(just_expired.as_str())),
            ("a forged token", Some(forged.as_str())),
            ("an unsigned token", Some(unsigned.as_str())),
        ] {
            match HubProbe::connect(&hub, token).await {
                Connection::Refused(error) => {
                    assert!(error.contains("401"), "{what} at {hub}: {error}");
                }
                Connection::Connected(probe) => {
                    probe.stop().await;
                    panic!("{hub} accepted {what}");
                }
            }
        }
    }

    // The WebSocket itself checks the token too: skipping negotiation gains nothing.
    let client = reqwest::Client::new();
    let plain = client
        .get(api.url("/hubs/orders?access_token=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(plain.headers()["content-type"], "application/problem+json");
    let valid = token_with(JWT_SECRET, customer, now, 600);
    let not_websocket = client
        .get(api.url("/hubs/orders"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(not_websocket.status(), 400);
    let negotiated: Value = client
        .post(api.url("/hubs/orders/negotiate?negotiateVersion=1"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(negotiated["negotiateVersion"], 1);
    assert!(negotiated["connectionToken"].is_string());
    assert_eq!(
        negotiated["availableTransports"],
        json!([{"transport": "WebSockets", "transferFormats": ["Text"]}])
    );

    // A token that expires while connected closes the connection, inviting a reconnect.
    let short = token_with(JWT_SECRET, customer, time::OffsetDateTime::now_utc(), 3);
    let mut probe = HubProbe::connected(&gateway.url("/hubs/orders"), &short).await;
    let error = probe.wait_closed(Duration::from_secs(15)).await;
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("access token expired")),
        "{error:?}"
    );

    gateway.stop().await;
    api.stop().await;
}

/// A raw WebSocket to the hub, past its handshake.
struct RawClient {
    socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl RawClient {
    /// Connects with a receive buffer of `receive_buffer` bytes, if given, so that a client that
    /// stops reading fills up quickly.
    async fn connect(api: &TestApi, token: &str, receive_buffer: Option<u32>) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(api.address()).await.unwrap();
        let url = format!("ws://{}/hubs/orders?access_token={token}", api.address());
        let (socket, _) =
            tokio_tungstenite::client_async(url.into_client_request().unwrap(), stream)
                .await
                .unwrap();
        RawClient { socket }
    }

    async fn send(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The records of the next text frame; `None` once the connection is closed or gone.
    async fn next_records(&mut self) -> Option<Vec<Value>> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    return Some(
                        text.split_terminator(SEPARATOR)
                            .map(|r| serde_json::from_str(r).unwrap())
                            .collect(),
                    );
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn handshake(&mut self) {
        self.send("{\"protocol\":\"json\",\"version\":1}\u{1e}")
            .await;
        assert_eq!(self.next_records().await, Some(vec![json!({})]));
    }
}

#[sqlx::test(migrations = false)]
async fn the_handshake_is_checked_and_a_client_that_stops_reading_is_dropped_alone(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The raw clients never ping: a long client timeout keeps the reading one on a busy machine.
    let api = TestApi::spawn_with(
        &options,
        &[
            "--hub-send-buffer",
            "64",
            "--hub-client-timeout-seconds",
            "300",
        ],
    )
    .await;
    let admin = api.token(ADMIN).await;

    let mut wrong = RawClient::connect(&api, &admin, None).await;
    wrong
        .send("{\"protocol\":\"messagepack\",\"version\":1}\u{1e}")
        .await;
    let answer = wrong.next_records().await.unwrap();
    assert!(
        answer[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("'messagepack' is not supported")),
        "{answer:?}"
    );
    assert_eq!(
        wrong.next_records().await,
        None,
        "closed after a refused handshake"
    );

    let mut good = RawClient::connect(&api, &admin, None).await;
    good.handshake().await;
    let mut slow = RawClient::connect(&api, &admin, Some(4096)).await;
    slow.handshake().await;
    // The good client reads everything in the background.
    let (counted, mut received) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut last = 0u64;
        while let Some(records) = good.next_records().await {
            for record in records {
                if record["target"] == "InventoryUpdated" {
                    let sequence = record["arguments"][0]["sequence"].as_u64().unwrap();
                    assert_eq!(sequence, last + 1, "no gap, no repeat");
                    last = sequence;
                    counted.send_replace(last);
                }
            }
        }
    });

    // Flood the replica's backplane straight through the broker until the slow client is dropped.
    let channel = api.channel().await;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut published = 0u64;
    while dropped_slow_clients(&api).await == 0.0 {
        assert!(
            published < 200_000,
            "a client that does not read was never dropped"
        );
        publish_stock_updates(&channel, &api.topology, 2_000).await;
        published += 2_000;
        // Let the replica fan out what it was given before giving it more, so that a slow
        // build or a busy machine floods no further than it takes.
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            received.wait_for(|n| *n >= published),
        )
        .await;
    }
    let all = tokio::time::timeout(
        Duration::from_secs(60),
        received.wait_for(|n| *n == published),
    )
    .await
    .map(|_| ());
    assert!(
        all.is_ok(),
        "the reading client got {} of {published} (its connection ended: {}; slow clients dropped: {})",
        *received.borrow(),
        reader.is_finished(),
        dropped_slow_clients(&api).await,
    );

    // What the slow client finally reads ends well short of everything.
    let mut slow_got = 0u64;
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(records) = slow.next_records().await {
            slow_got += records.iter().filter(|r| r["type"] == 1).count() as u64;
        }
    })
    .await;
    assert!(drained.is_ok(), "the dropped connection ended");
    assert!(slow_got < published, "{slow_got} of {published}");
    assert_eq!(dropped_slow_clients(&api).await, 1.0);
    let sent = metric(&api, "hub_messages_sent_total{target=\"InventoryUpdated\"}").await;
    assert!(sent >= published as f64, "{sent} sent of {published}");
    // The recorder is shared by every replica of this test process: at least the reading client.
    assert!(metric(&api, "hub_connections").await >= 1.0);

    reader.abort();
    api.stop().await;
}

/// The value of one series on the replica's `/metrics`, 0 when absent.
async fn metric(api: &TestApi, series: &str) -> f64 {
    let metrics = reqwest::get(api.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn dropped_slow_clients(api: &TestApi) -> f64 {
    metric(api, "hub_connections_closed_total{reason=\"slow_client\"}").await
}

/// Publishes `count` `inventory.adjusted` events to the test's exchange and waits for the
/// broker's confirms.
async fn publish_stock_updates(
    channel: &lapin::Channel,
    topology: &orion_messaging::Topology,
    count: u32,
) {
    let mut confirms = Vec::new();
    for n in 0..count {
        let data = json!({
            "sku": "SKU-1", "reason": "restocked", "available": n, "reserved": 0,
            "price": {"amount": 1000, "currency": "USD"}, "low_stock_threshold": 5,
        });
        let envelope = orion_messaging::Envelope {
            specversion: orion_messaging::Envelope::SPEC_VERSION.to_owned(),
            id: uuid::Uuid::now_v7(),
            kind: "inventory.adjusted".to_owned(),
            source: "test".to_owned(),
            time: time::OffsetDateTime::now_utc(),
            subject: "SKU-1".to_owned(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            datacontenttype: "application/json".to_owned(),
            data,
        };
        let confirm = channel
            .basic_publish(
                topology.events_exchange().as_str().into(),
                "inventory.adjusted".into(),
                // Mandatory: an event no queue takes comes back instead of vanishing.
                lapin::options::BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &envelope.to_bytes().unwrap(),
                envelope.properties(),
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.unwrap();
        assert!(confirmation.is_ack(), "{confirmation:?}");
        assert!(
            confirmation.take_message().is_none(),
            "a stock update was returned: the replica's queue was not bound"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn the_hub_pings_and_closes_a_client_that_falls_silent(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn_with(
        &options,
        &[
            "--hub-keep-alive-seconds",
            "1",
            "--hub-client-timeout-seconds",
            "3",
        ],
    )
    .await;
    let token = api.token(ADMIN).await;
    let mut client = RawClient::connect(&api, &token, None).await;
    client.handshake().await;
    // A client that pings stays; the server pings it in turn.
    let mut pings = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        client.send("{\"type\":6}\u{1e}").await;
        if let Ok(Some(records)) =
            tokio::time::timeout(Duration::from_millis(500), client.next_records()).await
        {
            pings += records.iter().filter(|r| **r == json!({"type": 6})).count();
        }
    }
    assert!(pings >= 2, "server pings: {pings}");
    // Silent from now on: closed with a close message inviting a reconnect.
    let closing = loop {
        let records = tokio::time::timeout(Duration::from_secs(10), client.next_records())
            .await
            .expect("closed within the client timeout")
            .expect("a close message before the socket closes");
        if let Some(close) = records.into_iter().find(|r| r["type"] == 7) {
            break close;
        }
    };
    assert_eq!(closing["allowReconnect"], true);
    assert!(
        closing["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing heard")),
        "{closing}"
    );
    api.stop().await;
}

/// An integrator's key with `orders:read` connects like an admin's token (through the gateway,
/// in the header or, as a browser would, in the query) and hears every order's news, not the
/// stock's; a key without that scope is refused.
#[sqlx::test(migrations = false)]
async fn an_orders_read_key_hears_every_order_but_not_the_stock(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let gateway = spawn_gateway(&[api.address()], &[]).await;
    let hub = gateway.url("/hubs/orders");
    let admin = api.token(ADMIN).await;
    let reader = api.api_key(&admin, &["orders:read"]).await;
    let stock_only = api.api_key(&admin, &["inventory:read"]).await;
    let mut reader_hub = HubProbe::connected(&hub, &reader).await;
    let mut admin_hub = HubProbe::connected(&hub, &admin).await;
    match HubProbe::connect(&hub, Some(&stock_only)).await {
        Connection::Refused(error) => assert!(error.contains("403"), "{error}"),
        Connection::Connected(probe) => {
            probe.stop().await;
            panic!("a key without orders:read connected");
        }
    }
    let in_query = format!(
        "{}?access_token={reader}",
        gateway.url("/hubs/orders").replacen("http", "ws", 1)
    );
    let (socket, answer) = tokio_tungstenite::connect_async(in_query.as_str())
        .await
        .expect("a key in the query upgrades");
    assert_eq!(answer.status(), 101);
    drop(socket);

    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-1", 1)]).await;
    let id = order["id"].as_str().unwrap();
    reader_hub
        .wait_for_message("OrderPlaced", Duration::from_secs(10), |m| {
            m["orderId"] == id
        })
        .await;
    reader_hub
        .wait_for_message(
            "OrderStatusUpdated",
            Duration::from_secs(20),
            is_order(id, "confirmed"),
        )
        .await;
    // The reservation moved stock, which an admin hears about and the key must not.
    admin_hub
        .wait_for_message("InventoryUpdated", Duration::from_secs(10), |m| {
            m["sku"] == "SKU-1"
        })
        .await;
    let heard = reader_hub.collect_for(Duration::from_secs(1)).await;
    let everything: Vec<&Value> = reader_hub.seen.iter().chain(&heard).collect();
    assert!(
        everything
            .iter()
            .all(|e| e["target"] != "InventoryUpdated" && e["target"] != "LowStockAlert"),
        "{everything:?}"
    );
    reader_hub.stop().await;
    admin_hub.stop().await;
    worker.stop().await;
    gateway.stop().await;
    api.stop().await;
}
