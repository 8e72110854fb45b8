//! orion-gateway over real sockets, in front of small upstream servers that record what reaches
//! them (so a test can tell what the replica saw, or that it saw nothing).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{JWT_SECRET, Running, signal, spawn_gateway};

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Most tests have no use for the operations listener (and must not share its fixed port).
const OPS_OFF: &str = "off";

/// A replica stand-in: answers every request with its name, records it, and is ready.
struct Upstream {
    name: &'static str,
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(name, listener, Arc::new(Mutex::new(Vec::new())))
    }

    fn serve(name: &'static str, listener: TcpListener, seen: Arc<Mutex<Vec<Seen>>>) -> Upstream {
        let address = listener.local_addr().unwrap();
        let record = seen.clone();
        let app = Router::new()
            .route(
                "/health/ready",
                get(|| async { Json(json!({"status": "ok"})) }),
            )
            .fallback(move |request: Request| {
                let record = record.clone();
                async move {
                    let seen = Seen {
                        method: request.method().to_string(),
                        path: request.uri().to_string(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect(),
                    };
                    record.lock().unwrap().push(seen);
                    Json(json!({"replica": name}))
                }
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            name,
            address,
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops listening and drops every connection, like a killed process.
    fn kill(&self) {
        self.task.abort();
    }

    /// Listens again on the same address.
    async fn restart(self) -> Upstream {
        let listener = TcpListener::bind(self.address).await.unwrap();
        Self::serve(self.name, listener, self.seen.clone())
    }
}

async fn gateway(upstreams: &[&Upstream], extra: &[&str]) -> Running {
    let addresses: Vec<SocketAddr> = upstreams.iter().map(|u| u.address).collect();
    spawn_gateway(&addresses, extra).await
}

fn token(secret: &str, expires_in: i64) -> String {
    let keys =
        orion_auth::TokenKeys::new(secret.as_bytes(), &[], time::Duration::seconds(expires_in));
    let now = time::OffsetDateTime::now_utc();
    keys.issue(uuid::Uuid::now_v7(), orion_auth::Role::Customer, now)
        .unwrap()
        .token
}

#[tokio::test]
async fn protected_routes_need_a_valid_token_and_the_replica_never_sees_a_refused_one() {
    let upstream = Upstream::start("a").await;
    let gw = gateway(&[&upstream], &[]).await;
    let client = reqwest::Client::new();
    let expired = {
        let keys =
            orion_auth::TokenKeys::new(JWT_SECRET.as_bytes(), &[], time::Duration::minutes(5));
        let long_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        keys.issue(uuid::Uuid::now_v7(), orion_auth::Role::Customer, long_ago)
            .unwrap()
            .token
    };
    let forged = token("another-secret-another-secret-xx", 300);
    let none = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(
                r#"{{"sub":"{}","role":"admin","exp":9999999999,"iat":0,"iss":"orion","aud":"orion-api","jti":"{}"}}"#,
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7()
            ))
        )
    };
    for bad in [
        None,
        Some(expired.as_str()),
        Some(forged.as_str()),
        Some(none.as_str()),
    ] {
        let mut request = client.get(gw.url("/api/orders"));
        if let Some(bad) = bad {
            request = request.bearer_auth(bad);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:orion:problem:unauthorized");
    }
    assert!(
        upstream.seen().is_empty(),
        "the replica saw a refused request"
    );

    // A valid token and the public routes pass.
    let good = token(JWT_SECRET, 300);
    let response = client
        .get(gw.url("/api/orders"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client.get(gw.url("/api/inventory")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // An API key is the API's to check: passed through.
    let response = client
        .get(gw.url("/api/orders"))
        .header("x-api-key", "ork_x_y")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.seen().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn the_login_limit_answers_429_per_client_ip_and_recovers() {
    let upstream = Upstream::start("a").await;
    // The test client stands behind a trusted proxy, so it can speak for several client IPs.
    let gw = gateway(
        &[&upstream],
        &["--rate-login", "3/2", "--trusted-proxies", "127.0.0.1"],
    )
    .await;
    let client = reqwest::Client::new();
    let login = |ip: &'static str| {
        client
            .post(gw.url("/api/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "a@b.c", "password": "x"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login("203.0.113.1").await.unwrap().status(), 200);
    }
    let refused = login("203.0.113.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(refused.headers()["ratelimit-policy"], "\"login\";q=3;w=2");
    assert!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("r=0")
    );
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        login("203.0.113.2").await.unwrap().status(),
        200,
        "another client is unaffected"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        login("203.0.113.1").await.unwrap().status(),
        200,
        "a token came back"
    );
    assert_eq!(upstream.seen().len(), 5);
    gw.stop().await;
}

#[tokio::test]
async fn requests_spread_fail_over_and_come_back() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = gateway(&[&a, &b], &["--balance", "round-robin"]).await;
    let client = reqwest::Client::new();
    let good = token(JWT_SECRET, 300);
    let get = || client.get(gw.url("/api/orders")).bearer_auth(&good).send();
    for _ in 0..10 {
        assert_eq!(get().await.unwrap().status(), 200);
    }
    assert_eq!((a.seen().len(), b.seen().len()), (5, 5), "round robin");

    a.kill();
    for i in 0..40 {
        let response = get().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "GET {i} failed while a replica was down"
        );
    }
    let b_before = b.seen().len();
    let a = a.restart().await;
    let a_before = a.seen().len();
    // Health checks find it again; it takes traffic.
    let mut back = false;
    for _ in 0..50 {
        assert_eq!(get().await.unwrap().status(), 200);
        if a.seen().len() > a_before {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the restarted replica gets traffic again");
    assert!(b.seen().len() > b_before);
    gw.stop().await;
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_not_retried_and_headers_are_made_right() {
    let a = Upstream::start("a").await;
    // A replica that accepts connections and then drops them without answering.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_address = dead.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0usize));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = dead.accept().await else {
                return;
            };
            *counter.lock().unwrap() += 1;
            drop(socket);
        }
    });
    let list = format!("{},{}", dead_address, a.address);
    let config = <orion_gateway::Config as clap::Parser>::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--ops-listen",
        OPS_OFF,
        "--https-listen",
        "off",
        "--upstreams",
        &list,
        "--jwt-secret",
        JWT_SECRET,
        "--balance",
        "round-robin",
        "--health-interval-ms",
        "60000",
        "--eject-after",
        "100",
    ]);
    let gw =
        Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped)))
            .await;
    let client = reqwest::Client::new();
    let good = token(JWT_SECRET, 300);
    let mut failed_posts = 0;
    for _ in 0..4 {
        let response = client
            .post(gw.url("/api/orders"))
            .bearer_auth(&good)
            .json(&json!({"items": []}))
            .send()
            .await
            .unwrap();
        if response.status() == 502 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "urn:orion:problem:bad-gateway");
            failed_posts += 1;
        }
    }
    assert_eq!(
        failed_posts, 2,
        "the POSTs that went to the dead replica were not retried"
    );
    // With an Idempotency-Key the same POST is retried on the other replica.
    for _ in 0..4 {
        let response = client
            .post(gw.url("/api/orders"))
            .bearer_auth(&good)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&json!({"items": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // Headers: hop-by-hop out, forwarding headers set, the request id both ways.
    let response = client
        .get(gw.url("/api/inventory?x=1"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-orion-user", "admin")
        .header("x-request-id", "req-12345")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-12345");
    let seen = a
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.path == "/api/inventory?x=1")
        .unwrap();
    assert_eq!(seen.method, "GET");
    for hop in ["x-hop", "keep-alive", "te", "x-orion-user"] {
        assert_eq!(seen.header(hop), None, "{hop} reached the replica");
    }
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "the socket, not the claim"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert!(seen.header("x-forwarded-host").is_some());
    assert_eq!(seen.header("x-request-id"), Some("req-12345"));
    assert!(seen.header("traceparent").is_some_and(|t| t.len() == 55));
    // Without one, a request id is made up and sent both ways.
    let response = client.get(gw.url("/api/inventory")).send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    assert_eq!(
        a.seen().last().unwrap().header("x-request-id"),
        Some(id.as_str())
    );
    gw.stop().await;
}

#[tokio::test]
async fn no_replica_is_a_502_problem_and_only_the_operations_listener_tells_more() {
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = gone.local_addr().unwrap();
    drop(gone);
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_address = ops.local_addr().unwrap();
    drop(ops);
    let ops_listen = ops_address.to_string();
    let config = <orion_gateway::Config as clap::Parser>::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--ops-listen",
        &ops_listen,
        "--https-listen",
        "off",
        "--upstreams",
        &address.to_string(),
        "--health-interval-ms",
        "50",
        "--health-fails",
        "1",
    ]);
    let gw =
        Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped)))
            .await;
    let response = reqwest::get(gw.url("/api/inventory")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let mut ready = 200;
    for _ in 0..40 {
        ready = reqwest::get(gw.url("/health/ready"))
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503);
    // The public port says only that much: no replica addresses, no metrics.
    let public: Value = reqwest::get(gw.url("/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public, json!({"status": "no replica available"}));
    let refused = reqwest::get(gw.url("/metrics")).await.unwrap();
    assert_eq!(refused.status(), 404);
    // The operations listener has both.
    let detailed: Value = reqwest::get(format!("http://{ops_address}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detailed["upstreams"][0]["address"], address.to_string());
    let metrics = reqwest::get(format!("http://{ops_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gateway_requests_total"), "{metrics}");
    gw.stop().await;
}

/// An upstream with a WebSocket echo at `/hubs/echo`.
async fn websocket_upstream() -> SocketAddr {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/health/ready",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route(
            "/hubs/echo",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    let _ = socket.send(Message::Text("welcome".into())).await;
                    while let Some(Ok(message)) = socket.recv().await {
                        if let Message::Text(text) = message {
                            let _ = socket
                                .send(Message::Text(format!("echo:{text}").into()))
                                .await;
                        }
                    }
                })
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

async fn next_text<S>(socket: &mut S) -> String
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("the socket is open")
        .expect("a valid frame");
    message.into_text().expect("a text frame").to_string()
}

#[tokio::test]
async fn a_websocket_through_the_gateway_talks_both_ways_and_shutdown_closes_it() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let upstream = websocket_upstream().await;
    let config = <orion_gateway::Config as clap::Parser>::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--ops-listen",
        OPS_OFF,
        "--https-listen",
        "off",
        "--upstreams",
        &upstream.to_string(),
        "--jwt-secret",
        JWT_SECRET,
    ]);
    let gw =
        Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped)))
            .await;
    let base = gw.url("/hubs/echo").replace("http://", "ws://");

    // Without a token the upgrade is refused before the replica is asked.
    let refused = tokio_tungstenite::connect_async(base.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    let url = format!("{base}?access_token={}", token(JWT_SECRET, 300));
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(next_text(&mut socket).await, "welcome");
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "echo:hello");

    // Shutdown closes the tunnel with a close frame rather than leaving it hanging.
    let stopping = tokio::spawn(gw.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("closed within 10 s");
    match end {
        Some(Ok(Message::Close(frame))) => {
            assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001), "going away");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn https_with_the_dev_certificate_serves_rest_and_websockets() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let rest = Upstream::start("a").await;
    let ws = websocket_upstream().await;
    let dir = std::env::temp_dir().join(format!("orion-tls-{}", uuid::Uuid::now_v7()));
    let list = format!("{},{}", rest.address, ws);
    let config = <orion_gateway::Config as clap::Parser>::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--ops-listen",
        OPS_OFF,
        "--upstreams",
        &list,
        "--jwt-secret",
        JWT_SECRET,
        "--tls-dev-dir",
        dir.to_str().unwrap(),
        "--balance",
        "round-robin",
    ]);
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_address = https.local_addr().unwrap();
    let gw = Running::start(move |listener, stopped| {
        orion_gateway::run_with(
            config,
            orion_gateway::Listeners {
                http: listener,
                https: Some(https),
                ops: None,
            },
            signal(stopped),
        )
    })
    .await;

    // Trust exactly the certificate the gateway generated.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(dir.join("dev-cert.pem")).expect("the dev certificate was written");
    for cert in
        <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &pem,
        )
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(https_address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the dev certificate")
    };

    // REST. Round robin over the two upstreams: ask until the REST one answers.
    let mut answered = false;
    for _ in 0..4 {
        let mut stream = connect().await;
        stream
            .write_all(
                b"GET /api/inventory HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap_or_default();
        if reply.starts_with("HTTP/1.1 200") && reply.contains("\"replica\":\"a\"") {
            assert!(
                reply.contains("strict-transport-security: max-age=63072000; includeSubDomains"),
                "HSTS on HTTPS answers: {reply}"
            );
            answered = true;
            break;
        }
    }
    assert!(answered, "a REST answer over HTTPS");
    assert_eq!(
        rest.seen().last().unwrap().header("x-forwarded-proto"),
        Some("https")
    );

    // A WebSocket over TLS.
    let mut welcome = None;
    for _ in 0..4 {
        let url = format!(
            "wss://localhost/hubs/echo?access_token={}",
            token(JWT_SECRET, 300)
        );
        let Ok((mut socket, _)) = tokio_tungstenite::client_async(url, connect().await).await
        else {
            continue;
        };
        welcome = Some(next_text(&mut socket).await);
        socket.send(Message::Text("over tls".into())).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "echo:over tls");
        let _ = socket.close(None).await;
        let _ = socket.next().await;
        break;
    }
    assert_eq!(welcome.as_deref(), Some("welcome"));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_replica_too_slow_to_answer_is_a_504_problem_and_draining_turns_readiness_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/health/ready",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .fallback(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let config = <orion_gateway::Config as clap::Parser>::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--ops-listen",
        OPS_OFF,
        "--https-listen",
        "off",
        "--upstreams",
        &address.to_string(),
        "--response-timeout-ms",
        "300",
        "--drain-delay-seconds",
        "1",
    ]);
    let gw =
        Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped)))
            .await;
    let started = std::time::Instant::now();
    let response = reqwest::get(gw.url("/api/inventory")).await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:orion:problem:timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the timeout, not the replica's pace"
    );

    // On shutdown, readiness reports 503 for the drain delay while requests are still served.
    let ready_url = gw.url("/health/ready");
    let live_url = gw.url("/health/live");
    let stopping = tokio::spawn(gw.stop());
    let mut saw_draining = false;
    for _ in 0..20 {
        if let Ok(response) = reqwest::get(&ready_url).await
            && response.status() == 503
        {
            saw_draining = true;
            assert_eq!(reqwest::get(&live_url).await.unwrap().status(), 200);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        saw_draining,
        "readiness went to 503 before the gateway stopped accepting"
    );
    stopping.await.unwrap();
}

/// The gateway's copy of the API's routes is the API's own: every documented operation has its
/// route template as its metric label, is public at the edge exactly when the document asks no
/// credentials of it, and is retried with an `Idempotency-Key` exactly when it takes one.
#[test]
fn the_gateway_knows_every_route_of_the_apis_openapi_document() {
    use axum::http::Method;
    use orion_gateway::routes::{honours_idempotency_key, is_public, route_label};

    let document = serde_json::to_value(orion_api::openapi()).unwrap();
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        let sample = template
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{sku}", "SKU-1")
            .replace("{delivery_id}", &uuid::Uuid::now_v7().to_string());
        assert!(
            !sample.contains('{'),
            "a parameter the test does not know: {template}"
        );
        let label = route_label(&sample);
        if template.starts_with("/api/") {
            assert_eq!(label, template, "the metric label of {sample}");
        } else {
            assert!(
                !matches!(label, "other" | "/api/other"),
                "{template}: {label}"
            );
        }
        for (method, operation) in operations.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            // Every operation says: public ones with an empty list (linters and generators
            // read a missing one as "unknown").
            let public = operation
                .get("security")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{method} {template} has no `security`"))
                .is_empty();
            assert_eq!(
                is_public(&method, &sample),
                public,
                "{method} {template} is public in the document: {public}"
            );
            let keyed = operation["parameters"]
                .as_array()
                .is_some_and(|parameters| {
                    parameters
                        .iter()
                        .any(|p| p["name"].as_str() == Some("Idempotency-Key"))
                });
            if method == Method::POST {
                assert_eq!(
                    honours_idempotency_key(&sample),
                    keyed,
                    "{template} takes an Idempotency-Key: {keyed}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked} operations");
}
