//! Each process starts, answers its probes, and stops gracefully on the shutdown signal.

use clap::Parser;
use orion_persistence::Pool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{Running, database_url, signal};

fn api_config(db: &str) -> orion_api::Config {
    orion_api::Cli::parse_from([
        "orion-api",
        "--env",
        "dev",
        "--database-url",
        db,
        "--database-max-connections",
        "4",
    ])
    .config
}

async fn start_api(db: &str) -> Running {
    let config = api_config(db);
    Running::start(|listener, stopped| orion_api::run(config, listener, signal(stopped))).await
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[sqlx::test(migrations = false)]
async fn api_migrates_seeds_serves_probes_and_stops(_: PgPoolOptions, options: PgConnectOptions) {
    let db = database_url(&options);
    let api = start_api(&db).await;

    assert_eq!(
        get_json(&api.url("/health/live")).await,
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, body) = get_json(&api.url("/health/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["database"], "ok");
    api.stop().await;

    let pool = Pool::connect(&db).await.expect("connect");
    let items: i64 = sqlx::query_scalar("select count(*) from inventory_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(items, 12, "the demo catalog");
    let accounts: Vec<(String, String)> =
        sqlx::query_as("select email, role from users order by email")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        accounts,
        [
            ("admin@orion.local".to_owned(), "admin".to_owned()),
            ("customer@orion.local".to_owned(), "customer".to_owned())
        ]
    );
    let hash: String =
        sqlx::query_scalar("select password_hash from users where email = 'admin@orion.local'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$"),
        "seeded passwords are hashed"
    );
}

#[sqlx::test(migrations = false)]
async fn two_replicas_start_together_on_one_database(_: PgPoolOptions, options: PgConnectOptions) {
    let db = database_url(&options);
    let (first, second) = tokio::join!(start_api(&db), start_api(&db));
    first.stop().await;
    second.stop().await;
    let again = start_api(&db).await;
    again.stop().await;

    let pool = Pool::connect(&db).await.expect("connect");
    let (items, users): (i64, i64) = sqlx::query_as(
        "select (select count(*) from inventory_items), (select count(*) from users)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((items, users), (12, 2), "seeding is idempotent");
}

#[sqlx::test(migrations = false)]
async fn prod_mode_refuses_the_default_secret_and_seeds_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = database_url(&options);
    let config = orion_api::Cli::parse_from(["orion-api", "--database-url", &db]).config;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = orion_api::run(config, listener, std::future::pending())
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("ORION_JWT_SECRET"), "{error}");

    let secret = "x".repeat(40);
    let config = orion_api::Cli::parse_from([
        "orion-api",
        "--env",
        "prod",
        "--database-url",
        &db,
        "--jwt-secret",
        &secret,
    ])
    .config;
    let api =
        Running::start(|listener, stopped| orion_api::run(config, listener, signal(stopped))).await;
    api.stop().await;
    let pool = Pool::connect(&db).await.expect("connect");
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "no demo accounts in prod");
}

#[sqlx::test(migrations = false)]
async fn create_admin_makes_an_admin_and_refuses_weak_passwords(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = database_url(&options);
    let config = api_config(&db);
    let weak = orion_api::create_admin(&config, "root@example.com", "Root", "short").await;
    assert!(weak.is_err());
    let id = orion_api::create_admin(
        &config,
        "Root@Example.com",
        "Root",
        "a long admin passphrase",
    )
    .await
    .expect("created");
    let pool = Pool::connect(&db).await.expect("connect");
    let (email, role): (String, String) =
        sqlx::query_as("select email, role from users where id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (email.as_str(), role.as_str()),
        ("root@example.com", "admin")
    );
    let duplicate = orion_api::create_admin(
        &config,
        "root@example.com",
        "Root",
        "a long admin passphrase",
    )
    .await;
    assert!(
        duplicate
            .expect_err("duplicate")
            .to_string()
            .contains("already exists")
    );
}

#[sqlx::test(migrations = false)]
async fn worker_serves_probes_and_stops(_: PgPoolOptions, options: PgConnectOptions) {
    let db = database_url(&options);
    let config = orion_worker::Config::parse_from(["orion-worker", "--database-url", &db]);
    let worker =
        Running::start(|listener, stopped| orion_worker::run(config, listener, signal(stopped)))
            .await;
    let (status, body) = get_json(&worker.url("/health/ready")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    worker.stop().await;
}

#[tokio::test]
async fn gateway_serves_liveness_and_stops() {
    let config = orion_gateway::Config::parse_from([
        "orion-gateway",
        "--env",
        "dev",
        "--https-listen",
        "off",
        "--ops-listen",
        "off",
    ]);
    let gateway =
        Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped)))
            .await;
    assert_eq!(get_json(&gateway.url("/health/live")).await.0, 200);
    gateway.stop().await;
}
