//! Admin stats and integrators' API keys.

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{ADMIN, CUSTOMER, TestApi, expect_problem};

#[sqlx::test(migrations = false)]
async fn stats_come_from_the_read_model(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let customer = api.token(CUSTOMER).await;
    let admin = api.token(ADMIN).await;
    let first = api.place_order(&customer, &[("SKU-1", 1)]).await;
    api.place_order(&customer, &[("SKU-2", 1)]).await;
    api.post(
        &format!("/api/orders/{}/cancel", first["id"].as_str().unwrap()),
        Some(&customer),
        &json!({}),
    )
    .send()
    .await
    .unwrap();
    let patch = api
        .request(reqwest::Method::PATCH, "/api/inventory/SKU-9")
        .bearer_auth(&admin)
        .json(&json!({"low_stock_threshold": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);

    let stats: Value = api
        .get("/api/admin/stats", Some(&admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_status = |status: &str| {
        stats["orders_by_status"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == status)
            .cloned()
    };
    assert_eq!(
        by_status("pending").map(|s| (s["count"].clone(), s["amount"].clone())),
        Some((json!(1), json!(4999)))
    );
    assert_eq!(
        by_status("cancelled").map(|s| s["count"].clone()),
        Some(json!(1))
    );
    assert_eq!(stats["revenue"], json!([]), "nothing confirmed yet");
    let low: Vec<&str> = stats["low_stock"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["sku"].as_str())
        .collect();
    assert_eq!(low, ["SKU-9"]);
    expect_problem(
        api.get("/api/admin/stats", Some(&customer))
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn api_keys_are_shown_once_stored_hashed_scoped_and_revocable(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let response = api
        .post(
            "/api/admin/api-keys",
            Some(&admin),
            &json!({"name": "warehouse", "scopes": ["orders:read"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ork_"));
    assert_eq!(created["scopes"], json!(["orders:read"]));

    let pool = api.pool().await;
    let stored: String = sqlx::query_scalar("select key_hash from api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !stored.contains(&key) && stored.len() == 64,
        "only a hash is stored"
    );
    let listed: Value = api
        .get("/api/admin/api-keys", Some(&admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!listed.to_string().contains(&key), "never shown again");

    let customer = api.token(CUSTOMER).await;
    api.place_order(&customer, &[("SKU-1", 1)]).await;
    let by_header = api
        .client
        .get(api.url("/api/orders"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let page: Value = by_header.json().await.unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "orders:read sees every order"
    );
    let by_scheme = api
        .client
        .get(api.url("/api/orders"))
        .header("authorization", format!("ApiKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_scheme.status(), 200);
    let write = api
        .client
        .post(api.url("/api/orders"))
        .header("x-api-key", &key)
        .json(&json!({"items": [{"sku": "SKU-1", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    expect_problem(write, 403, "forbidden").await;

    let id = created["id"].as_str().unwrap();
    let revoke = api
        .client
        .delete(api.url(&format!("/api/admin/api-keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let after = api
        .client
        .get(api.url("/api/orders"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    expect_problem(after, 401, "unauthorized").await;
    let twice = api
        .client
        .delete(api.url(&format!("/api/admin/api-keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    expect_problem(twice, 404, "not-found").await;

    for (body, field) in [
        (json!({"name": "x", "scopes": []}), "scopes"),
        (
            json!({"name": "x", "scopes": ["orders:delete"]}),
            "scopes[0]",
        ),
        (json!({"name": "", "scopes": ["orders:read"]}), "name"),
    ] {
        let problem = expect_problem(
            api.post("/api/admin/api-keys", Some(&admin), &body)
                .send()
                .await
                .unwrap(),
            422,
            "validation-error",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let forged = api
        .client
        .get(api.url("/api/orders"))
        .header(
            "x-api-key",
            format!("ork_{}_{}", "0".repeat(12), "0".repeat(64)),
        )
        .send()
        .await
        .unwrap();
    expect_problem(forged, 401, "unauthorized").await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_orders_write_key_orders_for_a_named_customer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let created: Value = api
        .post(
            "/api/admin/api-keys",
            Some(&admin),
            &json!({"name": "marketplace", "scopes": ["orders:write"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let (customer_id, customer) = api.new_customer().await;
    let place = |body: Value| {
        api.client
            .post(api.url("/api/orders"))
            .header("x-api-key", key)
            .json(&body)
            .send()
    };

    let missing = place(json!({"items": [{"sku": "SKU-1", "quantity": 1}]}))
        .await
        .unwrap();
    expect_problem(missing, 422, "validation-error").await;
    let unknown = place(
        json!({"items": [{"sku": "SKU-1", "quantity": 1}], "customer_id": uuid::Uuid::now_v7()}),
    )
    .await
    .unwrap();
    expect_problem(unknown, 422, "validation-error").await;
    let placed =
        place(json!({"items": [{"sku": "SKU-1", "quantity": 1}], "customer_id": customer_id}))
            .await
            .unwrap();
    assert_eq!(placed.status(), 202);
    let order: Value = placed.json().await.unwrap();
    assert_eq!(order["customer_id"], json!(customer_id));
    let mine: Value = api
        .get("/api/orders", Some(&customer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        mine["items"][0]["id"], order["id"],
        "the customer sees it as theirs"
    );

    let (other_id, _) = api.new_customer().await;
    let not_theirs = api
        .post(
            "/api/orders",
            Some(&customer),
            &json!({"items": [{"sku": "SKU-1", "quantity": 1}], "customer_id": other_id}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(not_theirs, 403, "forbidden").await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn dead_letter_and_email_listings_refuse_bad_parameters_clearly(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    for (path, kind) in [
        ("/api/admin/dead-letters?limit=0", "bad-request"),
        ("/api/admin/dead-letters?cursor=not-a-cursor", "bad-request"),
        ("/api/admin/dead-letters?color=red", "bad-request"),
        ("/api/admin/email-deliveries?status=lost", "bad-request"),
        ("/api/admin/email-deliveries?status=", "bad-request"),
        (
            "/api/admin/email-deliveries?cursor=not-a-cursor",
            "bad-request",
        ),
        ("/api/admin/email-deliveries?limit=101", "bad-request"),
    ] {
        let response = api.get(path, Some(&admin)).send().await.unwrap();
        let problem = expect_problem(response, 400, kind).await;
        assert!(
            problem["detail"].as_str().unwrap().len() > 10,
            "{path}: {problem}"
        );
    }
    let replay = api
        .post(
            "/api/admin/dead-letters/not-a-uuid/replay",
            Some(&admin),
            &serde_json::json!({}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(replay, 400, "bad-request").await;
    // Empty lists are lists.
    let letters = api.get_json("/api/admin/dead-letters", &admin).await;
    assert_eq!(
        letters,
        serde_json::json!({"items": [], "next_cursor": null})
    );
    let emails = api
        .get_json("/api/admin/email-deliveries?status=failed", &admin)
        .await;
    assert_eq!(
        emails,
        serde_json::json!({"items": [], "next_cursor": null})
    );
    api.stop().await;
}
