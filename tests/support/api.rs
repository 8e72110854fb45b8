//! A real orion-api on port 0 against a fresh database, with typed helpers.

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use super::{Running, database_url, signal};

pub(crate) const ADMIN: (&str, &str) = ("admin@orion.local", "orion-admin-dev");
pub(crate) const CUSTOMER: (&str, &str) = ("customer@orion.local", "orion-customer-dev");
/// The secret the test API signs with, so tests can forge and expire tokens.
pub(crate) const JWT_SECRET: &str = "test-secret-for-the-e2e-suite-0123456789";

/// A registered customer.
/// The password of every customer `register_customer` makes.
pub(crate) const REGISTERED_PASSWORD: &str = "a fine long password";

pub(crate) struct Customer {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) token: String,
}

pub(crate) struct TestApi {
    pub(crate) running: Running,
    pub(crate) client: Client,
    pub(crate) db: String,
    /// This test's own exchange and queues on the shared broker.
    pub(crate) topology: orion_messaging::Topology,
    pub(crate) amqp: String,
}

/// The API's command line for the database `db` and the topology under `prefix`, plus `extra`.
pub(crate) fn api_args(db: &str, prefix: &str, extra: &[&str]) -> Vec<String> {
    let amqp = amqp_url();
    let defaults = [
        "--env",
        "dev",
        "--database-url",
        db,
        "--database-max-connections",
        "20",
        "--jwt-secret",
        JWT_SECRET,
        "--amqp-url",
        &amqp,
        "--amqp-prefix",
        prefix,
        "--amqp-retry-delays-ms",
        RETRY_DELAYS_MS,
    ];
    super::app::command_line(&defaults, extra)
}

/// Short retry delays for every test process (API and worker must agree on them), so a message
/// that keeps failing is parked in about a second.
pub(crate) const RETRY_DELAYS_MS: &str = "100,200,400";

impl TestApi {
    /// Starts the API in dev mode (demo catalog and accounts) on the per-test database.
    pub(crate) async fn spawn(options: &PgConnectOptions) -> TestApi {
        Self::spawn_with(options, &[]).await
    }

    pub(crate) async fn spawn_with(options: &PgConnectOptions, extra: &[&str]) -> TestApi {
        let prefix = format!("test-{}.", Uuid::new_v4().simple());
        Self::spawn_on(database_url(options), prefix, extra).await
    }

    /// Another replica on this one's database and broker topology.
    pub(crate) async fn replica(&self, extra: &[&str]) -> TestApi {
        Self::spawn_on(self.db.clone(), self.topology.prefix().to_owned(), extra).await
    }

    async fn spawn_on(db: String, prefix: String, extra: &[&str]) -> TestApi {
        let mut args = vec!["orion-api".to_owned()];
        args.extend(api_args(&db, &prefix, extra));
        let amqp = amqp_url();
        let config = <orion_api::Cli as clap::Parser>::parse_from(args).config;
        let running =
            Running::start(|listener, stopped| orion_api::run(config, listener, signal(stopped)))
                .await;
        TestApi {
            running,
            client: Client::new(),
            db,
            topology: topology(prefix),
            amqp,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> RequestBuilder {
        with_token(self.request(Method::GET, path), token)
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>, body: &Value) -> RequestBuilder {
        with_token(self.request(Method::POST, path), token).json(body)
    }

    pub(crate) async fn login(&self, (email, password): (&str, &str)) -> Value {
        let response = self
            .post(
                "/api/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200, "login of {email}");
        response.json().await.expect("token json")
    }

    pub(crate) async fn token(&self, account: (&str, &str)) -> String {
        self.login(account).await["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Registers a new customer and returns (id, access token).
    pub(crate) async fn new_customer(&self) -> (Uuid, String) {
        let customer = self.register_customer().await;
        (customer.id, customer.token)
    }

    /// Registers a new customer with a unique address.
    pub(crate) async fn register_customer(&self) -> Customer {
        let email = format!("c-{}@example.com", Uuid::now_v7());
        let password = REGISTERED_PASSWORD;
        let response = self
            .post(
                "/api/auth/register",
                None,
                &json!({"email": email, "password": password, "name": "Test Customer"}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.expect("user json");
        let id = user["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        let token = self.token((&email, password)).await;
        Customer { id, email, token }
    }

    /// A new API key with `scopes`, created by the admin whose token is `admin`.
    pub(crate) async fn api_key(&self, admin: &str, scopes: &[&str]) -> String {
        let created: Value = self
            .post(
                "/api/admin/api-keys",
                Some(admin),
                &json!({"name": "integrator", "scopes": scopes}),
            )
            .send()
            .await
            .expect("create an API key")
            .json()
            .await
            .expect("API key json");
        created["key"].as_str().expect("the key").to_owned()
    }

    /// GETs `path` with `token`, expecting 200, and returns the JSON body.
    pub(crate) async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, Some(token)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }

    /// Polls the order until its status is one of `statuses`; returns the order.
    pub(crate) async fn wait_for_status(
        &self,
        token: &str,
        order_id: &str,
        statuses: &[&str],
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            last = self
                .get_json(&format!("/api/orders/{order_id}"), token)
                .await;
            if statuses.iter().any(|s| last["status"] == *s) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("order {order_id} did not reach {statuses:?} within 30 s; last seen: {last}");
    }

    /// Places an order and returns its JSON; fails the test unless it was accepted.
    pub(crate) async fn place_order(&self, token: &str, items: &[(&str, u32)]) -> Value {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, q)| json!({"sku": sku, "quantity": q}))
            .collect();
        let response = self
            .post("/api/orders", Some(token), &json!({"items": items}))
            .send()
            .await
            .expect("place");
        assert_eq!(response.status(), 202, "placing an order");
        response.json().await.expect("order json")
    }

    pub(crate) async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.db)
            .await
            .expect("connect to the test database")
    }

    /// A channel on the test's broker.
    pub(crate) async fn channel(&self) -> lapin::Channel {
        orion_messaging::Broker::new(self.amqp.clone())
            .channel()
            .await
            .expect("broker channel")
    }

    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.running.address
    }

    /// Stops a replica started with [`TestApi::replica`], leaving the shared exchange and queues
    /// to the first one's `stop`.
    pub(crate) async fn stop_replica(self) {
        self.running.stop().await;
    }

    /// Stops the API and removes this test's exchange and queues.
    pub(crate) async fn stop(self) {
        let channel = self.channel().await;
        self.running.stop().await;
        // Nothing to remove when no event was published (the topology is declared on first use).
        let _ = self.topology.delete(&channel).await;
    }
}

/// Signs `account` in through whatever answers at `base` (a gateway, a replica) and returns
/// its access token.
pub(crate) async fn sign_in(http: &Client, base: &str, (email, password): (&str, &str)) -> String {
    let response = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200, "login of {email}");
    let login: Value = response.json().await.expect("login json");
    login["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// The topology of a test's processes under `prefix`, with the tests' short retry delays
/// ([`RETRY_DELAYS_MS`]).
pub(crate) fn topology(prefix: impl Into<String>) -> orion_messaging::Topology {
    orion_messaging::Topology::new(prefix).with_retry_delays([100, 200, 400])
}

pub(crate) fn amqp_url() -> String {
    std::env::var("ORION_TEST_AMQP_URL")
        .unwrap_or_else(|_| orion_config::defaults::AMQP_URL.to_owned())
}

pub(crate) fn with_token(builder: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    }
}

/// Asserts a problem+json answer with `status` and `type`, returning its body.
pub(crate) async fn expect_problem(response: Response, status: u16, kind: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "status; body: {body}");
    assert_eq!(
        content_type, "application/problem+json",
        "content type; body: {body}"
    );
    assert_eq!(
        body["type"],
        format!("urn:orion:problem:{kind}"),
        "problem type; body: {body}"
    );
    assert_eq!(body["status"], status, "problem status field");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a detail; body: {body}"
    );
    body
}
