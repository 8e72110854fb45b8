//! The attack suite: what an attacker tries against the edge, over real sockets, against the
//! real gateway and API replicas. Each test is one finding; each failed before its fix.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    ADMIN, CUSTOMER, Mailbox, OrionProcess, Running, TestApi, TestWorker, api_args, expect_problem,
    spawn_gateway,
};

/// A port nothing listens on: the slow-client tests need no replica behind the gateway.
const NO_REPLICA: &str = "127.0.0.1:9";

async fn gateway_alone(extra: &[&str]) -> Running {
    spawn_gateway(&[NO_REPLICA.parse().unwrap()], extra).await
}

/// Statuses of `n` anonymous `GET /api/inventory`, each with its own made-up API key.
async fn with_made_up_keys(gateway: &Running, n: usize) -> Vec<u16> {
    let http = reqwest::Client::new();
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let response = http
            .get(gateway.url("/api/inventory"))
            .header(
                "x-api-key",
                format!("ork_made_up_{i}_{}", uuid::Uuid::now_v7()),
            )
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[sqlx::test(migrations = false)]
async fn made_up_api_keys_count_against_the_client_and_a_real_key_gets_its_own_bucket(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let gateway = spawn_gateway(
        &[api.address()],
        &[
            "--rate-anonymous",
            "10/60",
            "--rate-authenticated",
            "1000/60",
        ],
    )
    .await;
    let admin = api.token(ADMIN).await;
    let key = api.api_key(&admin, &["orders:read"]).await;
    let http = reqwest::Client::new();
    let with_key = || {
        http.get(gateway.url("/api/orders"))
            .header("x-api-key", &key)
    };
    // Its first request is counted against the address (the API has not vouched for it yet);
    // the answer vouches for it, and the gateway keeps that header to itself.
    let first = with_key().send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("x-orion-api-key").is_none());
    // A made-up key beside the real one (which the API authenticates with) is not vouched for
    // by the answer the real one earned; it counts against the address too.
    let junk = "ork_0123456789ab_made_up_beside_a_real_key";
    let both = http
        .get(gateway.url("/api/orders"))
        .header("authorization", format!("ApiKey {key}"))
        .header("x-api-key", junk)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 200);

    let statuses = with_made_up_keys(&gateway, 12).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        8,
        "eight left in the address's bucket of ten: {statuses:?}"
    );
    assert!(statuses[8..].iter().all(|s| *s == 429), "{statuses:?}");
    let junk_alone = http
        .get(gateway.url("/api/inventory"))
        .header("x-api-key", junk)
        .send()
        .await
        .unwrap();
    assert_eq!(
        junk_alone.status(),
        429,
        "the made-up key has no bucket of its own"
    );

    // The address is spent; the real key is not.
    for _ in 0..3 {
        assert_eq!(with_key().send().await.unwrap().status(), 200);
    }
    // SDKs send a key as a bearer token, often beside `X-Api-Key`: the same key, through the
    // gateway and the API, in the key's own bucket (the address's is spent).
    let sdk_style = http
        .get(gateway.url("/api/orders"))
        .bearer_auth(&key)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(sdk_style.status(), 200);
    let bearer_alone = http
        .get(gateway.url("/api/orders"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer_alone.status(), 200);
    gateway.stop().await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_user_adding_a_made_up_key_to_each_request_is_still_limited_as_the_user(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let gateway = spawn_gateway(
        &[api.address()],
        &[
            "--rate-anonymous",
            "1000/60",
            "--rate-authenticated",
            "5/60",
        ],
    )
    .await;
    let token = api.token(CUSTOMER).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = http
            .get(gateway.url("/api/orders"))
            .bearer_auth(&token)
            .header("x-api-key", format!("made-up-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429; 3], "{statuses:?}");
    gateway.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_slash_64() {
    // Behind a trusted proxy the client's address comes from `X-Forwarded-For`, so the test can
    // be many IPv6 clients from one socket.
    let gateway =
        gateway_alone(&["--trusted-proxies", "127.0.0.1", "--rate-anonymous", "3/60"]).await;
    let http = reqwest::Client::new();
    let from = |ip: String| {
        let http = http.clone();
        let url = gateway.url("/api/inventory");
        async move {
            http.get(url)
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut statuses = Vec::new();
    for n in 1..=5 {
        statuses.push(from(format!("2001:db8:aa:bb:{n:x}::{n:x}")).await);
    }
    // Three reach the (absent) replica, a 502; the rest of the /64 is refused.
    assert_eq!(statuses, [502, 502, 502, 429, 429]);
    assert_eq!(from("2001:db8:aa:cc::1".to_owned()).await, 502);
    gateway.stop().await;
}

async fn login_status(api: &TestApi, email: &str, password: &str) -> reqwest::Response {
    api.post(
        "/api/auth/login",
        None,
        &json!({"email": email, "password": password}),
    )
    .send()
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn failed_sign_ins_lock_the_account_out_on_every_replica(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let first = TestApi::spawn(&options).await;
    let second = first.replica(&[]).await;
    let (email, password) = CUSTOMER;
    // Five failures spread over two replicas (as behind two gateways).
    for (n, api) in [&first, &second, &first, &second, &first]
        .into_iter()
        .enumerate()
    {
        let response = login_status(api, email, "wrong password, again").await;
        assert_eq!(response.status(), 401, "failure {n}");
    }
    // Now even the right password waits, on either replica.
    for api in [&second, &first] {
        let response = login_status(api, email, password).await;
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=31).contains(&retry), "{retry}");
        expect_problem(response, 429, "too-many-attempts").await;
    }
    // Another account is untouched, and an unknown email is throttled the same way.
    assert_eq!(login_status(&first, ADMIN.0, ADMIN.1).await.status(), 200);
    for _ in 0..5 {
        let response = login_status(&first, "nobody@example.com", "wrong password").await;
        assert_eq!(response.status(), 401);
    }
    let response = login_status(&first, "nobody@example.com", "wrong password").await;
    assert_eq!(response.status(), 429);
    second.stop().await;
    first.stop().await;
}

#[sqlx::test(migrations = false)]
async fn parallel_guesses_cannot_outrun_the_lockout(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let (email, password) = CUSTOMER;
    let guesses = (0..30).map(|n| {
        let request = api.post(
            "/api/auth/login",
            None,
            &json!({"email": email, "password": format!("guess number {n}")}),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| matches!(*s, 401 | 429)),
        "{statuses:?}"
    );
    // At most five guesses are checked; the rest wait their turn and find the account locked
    // (or give up waiting). Unserialized, all thirty were checked.
    assert!(
        (1..=5).contains(&checked),
        "{checked} checked: {statuses:?}"
    );
    let response = login_status(&api, email, password).await;
    expect_problem(response, 429, "too-many-attempts").await;
    api.stop().await;
}

/// Writes `bytes`, then waits for the server to close the connection; returns what it sent
/// back and when it closed.
async fn stall(address: SocketAddr, bytes: &[u8], limit: Duration) -> (String, Duration) {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, socket.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "still open after {limit:?}; answered {:?}",
        String::from_utf8_lossy(&answer)
    );
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn stalled_headers_idle_connections_and_trickled_bodies_are_cut_off_at_the_gateway() {
    let gateway = gateway_alone(&[
        "--http-header-timeout-ms",
        "500",
        "--http-body-timeout-ms",
        "500",
    ])
    .await;
    let address = gateway.address;
    // Half a request line and headers, then nothing.
    let (_, after) = stall(
        address,
        b"GET /api/inventory HTTP/1.1\r\nHost: x\r\nX-Slow:",
        Duration::from_secs(5),
    )
    .await;
    assert!(after < Duration::from_secs(3), "{after:?}");

    // A connection that never sends a byte, and one that starts the HTTP/2 preface and stops.
    for opening in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let (_, after) = stall(address, opening, Duration::from_secs(5)).await;
        assert!(after < Duration::from_secs(3), "{after:?}");
    }

    // One complete request, then idle on the kept-alive connection.
    let (answer, after) = stall(
        address,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(after < Duration::from_secs(3), "{after:?}");

    // A body announced as 100 bytes, of which 10 arrive.
    let (answer, after) = stall(
        address,
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(after < Duration::from_secs(3), "{after:?}");
    gateway.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_streamed_body_that_stalls_is_the_clients_fault_not_the_replicas(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let gateway = spawn_gateway(&[api.address()], &["--http-body-timeout-ms", "500"]).await;
    for _ in 0..3 {
        // Chunked, so the gateway streams it to the replica instead of reading it first.
        let (answer, after) = stall(
            gateway.address,
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n",
            Duration::from_secs(10),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(after < Duration::from_secs(5), "{after:?}");
    }
    // The replica was not blamed: it still answers through the gateway.
    let response = reqwest::get(gateway.url("/api/inventory")).await.unwrap();
    assert_eq!(response.status(), 200);
    gateway.stop().await;
    api.stop().await;
}

/// Opens `n` connections that each send a complete request and read its answer (so the server
/// has admitted them) and keeps them open.
async fn hold_connections(address: SocketAddr, n: usize) -> Vec<TcpStream> {
    // The start-up probe's connection has closed; let the server see it go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..n {
        let mut socket = TcpStream::connect(address).await.unwrap();
        socket
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));
        held.push(socket);
    }
    held
}

async fn refused_connection(address: SocketAddr) -> String {
    let (answer, _) = stall(
        address,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    answer
}

#[tokio::test]
async fn connections_past_the_caps_are_turned_away_at_the_gateway() {
    let gateway = gateway_alone(&[
        "--http-max-connections",
        "5",
        "--http-max-connections-per-client",
        "3",
    ])
    .await;
    let held = hold_connections(gateway.address, 3).await;
    let answer = refused_connection(gateway.address).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("from your address"), "{answer}");
    // A closed connection frees its place.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = hold_connections(gateway.address, 3).await;
    drop(again);
    gateway.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_api_listener_has_the_same_timeouts_and_caps(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn_with(
        &options,
        &[
            "--http-header-timeout-ms",
            "500",
            "--http-max-connections-per-client",
            "2",
        ],
    )
    .await;
    let (_, after) = stall(
        api.address(),
        b"GET /api/inventory HTTP/1.1\r\nHost: x\r\nX-Slow:",
        Duration::from_secs(5),
    )
    .await;
    assert!(after < Duration::from_secs(3), "{after:?}");
    let held = hold_connections(api.address(), 2).await;
    let answer = refused_connection(api.address()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn made_up_methods_add_no_metric_series(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    for n in 0..40 {
        let method = Method::from_bytes(format!("X{n}").as_bytes()).unwrap();
        let response = api.request(method, "/api/inventory").send().await.unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = api
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .filter_map(|line| line.split("method=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(!methods.iter().any(|m| m.starts_with('X')), "{methods:?}");
    assert!(methods.len() <= 10, "{methods:?}");
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn five_hundred_concurrent_sign_ins_hold_bounded_memory(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = crate::support::database_url(&options);
    let prefix = format!("test-{}.", uuid::Uuid::new_v4().simple());
    let args = api_args(&db, &prefix, &[]);
    let api = OrionProcess::spawn("orion-api", &args, None).await;
    let before = api.peak_resident_kib();
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/auth/login", api.address());
    // 500 addresses, so that each sign-in is checked (hashed) and none waits for another's lock.
    let logins = (0..500).map(|n| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .post(url)
                .json(&json!({"email": format!("guess-{n}@example.com"), "password": "a guess, a guess"}))
                .send()
                .await
                .unwrap();
            let retry = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry)
        }
    });
    let answers = futures_util::future::join_all(logins).await;
    let peak = api.peak_resident_kib();
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    assert!(checked > 0, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, retry)| *status == 401 || (*status == 503 && *retry)),
        "every answer is a checked refusal or a 503 with Retry-After: {answers:?}"
    );
    let signed_in = checked;
    // Unbounded, 500 argon2id hashes of 19 MiB each would hold gigabytes.
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "500 sign-ins: {signed_in} checked, peak resident {} MiB (grew {grew_mib} MiB)",
        peak / 1024
    );
    assert!(grew_mib < 400, "grew {grew_mib} MiB");
    api.terminate_within(Duration::from_secs(20)).await;
}

#[sqlx::test(migrations = false)]
async fn a_customers_timeline_shows_no_internal_error_text(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    use orion_domain::events::EmailDelivery;
    use orion_domain::{DomainEvent, OrderId};

    let api = TestApi::spawn(&options).await;
    let customer = api.register_customer().await;
    let order = api.place_order(&customer.token, &[("SKU-1", 1)]).await;
    let order_id: uuid::Uuid = order["id"].as_str().unwrap().parse().unwrap();
    // What the worker logs when the mail server refuses an email for good.
    let smtp_reply = "554 5.7.1 relay denied by mx1.internal.example [10.1.2.3]:25";
    let failed = DomainEvent::EmailFailed(EmailDelivery {
        delivery_id: uuid::Uuid::now_v7(),
        order_id: Some(OrderId::from_uuid(order_id)),
        kind: "order_confirmation".into(),
        attempts: 4,
        error: Some(smtp_reply.into()),
    });
    let pool = api.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    orion_persistence::events::append_event_log(
        &mut conn,
        uuid::Uuid::now_v7(),
        &failed,
        &orion_persistence::events::EventMetadata::default(),
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let timeline = api
        .get_json(&format!("/api/orders/{order_id}/timeline"), &customer.token)
        .await;
    let text = timeline.to_string();
    let event = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.failed")
        .unwrap_or_else(|| panic!("the failure is on the timeline: {text}"));
    assert_eq!(event["data"]["attempts"], 4, "{text}");
    assert!(event["data"].get("error").is_none(), "{text}");
    assert!(
        !text.contains("relay denied") && !text.contains("10.1.2.3"),
        "{text}"
    );
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn hub_connections_are_capped_per_user_and_per_replica(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    use tokio_tungstenite::tungstenite::Error as WsError;

    let api = TestApi::spawn_with(
        &options,
        &[
            "--hub-max-connections",
            "3",
            "--hub-max-connections-per-user",
            "2",
        ],
    )
    .await;
    let url = |token: &str| format!("ws://{}/hubs/orders?access_token={token}", api.address());
    let refused = |result: Result<_, WsError>| match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("refused with an HTTP answer, not {other}"),
        Ok(_) => 101,
    };
    let alice = api.register_customer().await;
    let bob = api.register_customer().await;
    let carol = api.register_customer().await;
    let first = tokio_tungstenite::connect_async(url(&alice.token))
        .await
        .unwrap();
    let _second = tokio_tungstenite::connect_async(url(&alice.token))
        .await
        .unwrap();
    assert_eq!(
        refused(tokio_tungstenite::connect_async(url(&alice.token)).await),
        429,
        "a third for one user"
    );
    let _bob = tokio_tungstenite::connect_async(url(&bob.token))
        .await
        .unwrap();
    assert_eq!(
        refused(tokio_tungstenite::connect_async(url(&carol.token)).await),
        503,
        "a fourth for the replica"
    );
    // A closed connection frees its place.
    drop(first);
    let mut admitted = 0;
    for _ in 0..50 {
        admitted = refused(tokio_tungstenite::connect_async(url(&carol.token)).await);
        if admitted == 101 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted, 101);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn registration_answers_the_same_for_a_taken_email_and_tells_its_owner(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let mailbox = Mailbox::new();
    let owner = api.register_customer().await;
    let register = |email: String, password: &'static str| {
        let request = api.post(
            "/api/auth/register",
            None,
            &json!({"email": email, "password": password, "name": "Mallory"}),
        );
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let keys = |body: &Value| {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let fresh = format!("new-{}@example.com", uuid::Uuid::now_v7());
    let (new_status, new_body) = register(fresh.clone(), "mallory's own password").await;
    let (taken_status, taken_body) =
        register(owner.email.to_uppercase(), "mallory's own password").await;
    assert_eq!((new_status, taken_status), (201, 201));
    assert_eq!(keys(&new_body), keys(&taken_body));
    assert_eq!(taken_body["email"], owner.email.to_lowercase());
    assert_eq!(taken_body["role"], "customer");
    assert_ne!(taken_body["id"], owner.id.to_string());
    // Nothing was created or changed: the owner's password still works, Mallory's does not.
    let login = |email: String, password: &'static str| {
        api.post(
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .send()
    };
    assert_eq!(
        login(owner.email.clone(), "mallory's own password")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        login(owner.email.clone(), crate::support::REGISTERED_PASSWORD)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        login(fresh, "mallory's own password")
            .await
            .unwrap()
            .status(),
        200
    );
    // The owner hears of it, once a day however often it is tried.
    let subject = "Someone tried to register with your email address";
    mailbox.wait_for(&owner.email, subject).await;
    let (again, _) = register(owner.email.clone(), "mallory's own password").await;
    assert_eq!(again, 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let told = mailbox
        .subjects(&owner.email)
        .await
        .into_iter()
        .filter(|s| s == subject)
        .count();
    assert_eq!(told, 1);
    worker.stop().await;
    api.stop().await;
}
