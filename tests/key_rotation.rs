//! Rotating the access-token secret while a client keeps working: replicas and gateways are
//! replaced one by one through the three steps an operator takes (add the new secret as a
//! previous one, make it current, drop the old one), and not one request is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::RwLock;

use crate::support::{CUSTOMER, Running, TestApi, sign_in, spawn_gateway};

const OLD: &str = "the-old-secret-the-old-secret-the-old-secret";
const NEW: &str = "the-new-secret-the-new-secret-the-new-secret";

/// Where the client sends its requests (the load balancer's choice) and with which token.
#[derive(Clone, Default)]
struct Client {
    gateway: Arc<RwLock<String>>,
    token: Arc<RwLock<String>>,
}

impl Client {
    async fn sign_in(&self, http: &reqwest::Client) -> String {
        let base = self.gateway.read().await.clone();
        let token = sign_in(http, &base, CUSTOMER).await;
        *self.token.write().await = token.clone();
        token
    }
}

/// The `kid` of a token's header, read as any client could.
fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    let header: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

async fn gateway(api: &[&TestApi], secrets: &str) -> Running {
    let upstreams: Vec<_> = api.iter().map(|a| a.address()).collect();
    spawn_gateway(&upstreams, &["--jwt-secret", secrets]).await
}

#[sqlx::test(migrations = false)]
async fn rotating_the_token_secret_refuses_no_request(_: PgPoolOptions, options: PgConnectOptions) {
    let http = reqwest::Client::new();
    let client = Client::default();

    // Before: one secret everywhere; the client signs in and keeps reading its orders.
    let first = TestApi::spawn_with(&options, &["--jwt-secret", OLD]).await;
    let gateway_1 = gateway(&[&first], OLD).await;
    *client.gateway.write().await = gateway_1.url("");
    let old_token = client.sign_in(&http).await;
    assert_eq!(kid(&old_token), orion_auth::key_id(OLD.as_bytes()));

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = tokio::spawn({
        let (client, http, stop, served, refused) = (
            client.clone(),
            http.clone(),
            stop.clone(),
            served.clone(),
            refused.clone(),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                let base = client.gateway.read().await.clone();
                let token = client.token.read().await.clone();
                let response = http
                    .get(format!("{base}/api/orders"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => refused.lock().expect("refusals").push(format!(
                        "{} via {base} with kid {}",
                        r.status(),
                        kid(&token)
                    )),
                    Err(error) => refused
                        .lock()
                        .expect("refusals")
                        .push(format!("{error} via {base}")),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    settle().await;

    // Step 1: the new secret is accepted everywhere, the old one still signs.
    let accepting = format!("{OLD},{NEW}");
    let second = first.replica(&["--jwt-secret", &accepting]).await;
    let gateway_2 = gateway(&[&first, &second], &accepting).await;
    *client.gateway.write().await = gateway_2.url("");
    settle().await;
    gateway_1.stop().await;

    // Step 2: the new secret signs, the old one is still accepted; replicas change one by one,
    // and tokens of both kinds are in use at once.
    let rotating = format!("{NEW},{OLD}");
    let third = second.replica(&["--jwt-secret", &rotating]).await;
    let gateway_3 = gateway(&[&second, &third], &rotating).await;
    *client.gateway.write().await = gateway_3.url("");
    settle().await;
    gateway_2.stop().await;
    settle().await;
    second.stop_replica().await;
    // Signed in again (by the replica that signs with the new secret): the new kid.
    let new_token = client.sign_in(&http).await;
    assert_eq!(kid(&new_token), orion_auth::key_id(NEW.as_bytes()));
    settle().await;

    // Step 3, a token lifetime later: the old secret is dropped.
    let fourth = third.replica(&["--jwt-secret", NEW]).await;
    let gateway_4 = gateway(&[&third, &fourth], NEW).await;
    *client.gateway.write().await = gateway_4.url("");
    settle().await;
    gateway_3.stop().await;
    third.stop_replica().await;
    settle().await;

    stop.store(true, Ordering::Relaxed);
    reader.await.expect("reader");
    let refused = refused.lock().expect("refusals").clone();
    assert!(
        refused.is_empty(),
        "requests refused during the rotation: {refused:?}"
    );
    assert!(
        served.load(Ordering::Relaxed) > 50,
        "the client kept working throughout"
    );

    // Now a token signed with the old secret is refused, at the edge and by the API.
    let base = gateway_4.url("");
    let old = http
        .get(format!("{base}/api/orders"))
        .bearer_auth(&old_token)
        .send()
        .await
        .expect("old token");
    assert_eq!(old.status(), 401);
    let direct = http
        .get(fourth.url("/api/orders"))
        .bearer_auth(&old_token)
        .send()
        .await
        .expect("old token, directly");
    assert_eq!(direct.status(), 401);
    let new = http
        .get(format!("{base}/api/orders"))
        .bearer_auth(&new_token)
        .send()
        .await
        .expect("new token");
    assert_eq!(new.status(), 200);

    gateway_4.stop().await;
    fourth.stop_replica().await;
    // The first replica, out of every gateway since step 1, owns the test's queues.
    first.stop().await;
}
