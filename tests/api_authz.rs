//! The authorization matrix: every endpoint against every kind of caller.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::support::{ADMIN, TestApi, expect_problem};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    Owner,
    OtherCustomer,
    Admin,
    KeyOrdersRead,
    KeyOrdersWrite,
    KeyInventoryRead,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::Owner,
    Caller::OtherCustomer,
    Caller::Admin,
    Caller::KeyOrdersRead,
    Caller::KeyOrdersWrite,
    Caller::KeyInventoryRead,
];

struct Callers {
    owner_id: Uuid,
    owner: String,
    other: String,
    admin: String,
    keys: [String; 3],
}

impl Callers {
    fn authorize(&self, caller: Caller, request: RequestBuilder) -> RequestBuilder {
        match caller {
            Caller::Anonymous => request,
            Caller::Owner => request.bearer_auth(&self.owner),
            Caller::OtherCustomer => request.bearer_auth(&self.other),
            Caller::Admin => request.bearer_auth(&self.admin),
            Caller::KeyOrdersRead => request.header("x-api-key", &self.keys[0]),
            Caller::KeyOrdersWrite => request.header("x-api-key", &self.keys[1]),
            Caller::KeyInventoryRead => request.header("x-api-key", &self.keys[2]),
        }
    }
}

/// Expected statuses in `CALLERS` order.
type Row = (&'static str, [u16; 7]);

#[sqlx::test(migrations = false)]
async fn every_endpoint_admits_exactly_the_right_callers(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let mut keys = Vec::new();
    for scope in ["orders:read", "orders:write", "inventory:read"] {
        let created: Value = api
            .post(
                "/api/admin/api-keys",
                Some(&admin),
                &json!({"name": scope, "scopes": [scope]}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(created["key"].as_str().unwrap().to_owned());
    }
    let (owner_id, owner) = api.new_customer().await;
    let (_, other) = api.new_customer().await;
    let callers = Callers {
        owner_id,
        owner,
        other,
        admin,
        keys: keys.try_into().unwrap(),
    };
    let order = api.place_order(&callers.owner, &[("SKU-1", 1)]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    //                                                     anon owner other admin  read write  inv
    let rows: [Row; 20] = [
        ("GET /api/auth/me", [401, 200, 200, 200, 403, 403, 403]),
        ("GET /api/orders", [401, 200, 200, 200, 200, 403, 403]),
        (
            "GET /api/orders/{order}",
            [401, 200, 404, 200, 200, 403, 403],
        ),
        (
            "GET /api/orders/{order}/timeline",
            [401, 200, 404, 200, 200, 403, 403],
        ),
        ("POST /api/orders", [401, 202, 403, 202, 403, 202, 403]),
        (
            "POST /api/orders/{fresh}/cancel",
            [401, 200, 404, 200, 403, 403, 403],
        ),
        (
            "POST /api/orders/{order}/ship",
            [401, 403, 403, 409, 403, 403, 403],
        ),
        (
            "POST /api/orders/{order}/deliver",
            [401, 403, 403, 409, 403, 403, 403],
        ),
        ("GET /api/inventory", [200, 200, 200, 200, 200, 200, 200]),
        (
            "GET /api/inventory/SKU-1",
            [200, 200, 200, 200, 200, 200, 200],
        ),
        ("POST /api/inventory", [401, 403, 403, 201, 403, 403, 403]),
        (
            "POST /api/inventory/SKU-1/restock",
            [401, 403, 403, 200, 403, 403, 403],
        ),
        (
            "PATCH /api/inventory/SKU-1",
            [401, 403, 403, 200, 403, 403, 403],
        ),
        ("GET /api/admin/stats", [401, 403, 403, 200, 403, 403, 403]),
        (
            "POST /api/admin/api-keys",
            [401, 403, 403, 201, 403, 403, 403],
        ),
        (
            "GET /api/admin/api-keys",
            [401, 403, 403, 200, 403, 403, 403],
        ),
        (
            "DELETE /api/admin/api-keys/{random}",
            [401, 403, 403, 404, 403, 403, 403],
        ),
        (
            "GET /api/admin/dead-letters",
            [401, 403, 403, 200, 403, 403, 403],
        ),
        (
            "POST /api/admin/dead-letters/{random}/replay",
            [401, 403, 403, 404, 403, 403, 403],
        ),
        (
            "GET /api/admin/email-deliveries",
            [401, 403, 403, 200, 403, 403, 403],
        ),
    ];

    let mut failures = Vec::new();
    for (endpoint, expected) in rows {
        for (caller, want) in CALLERS.into_iter().zip(expected) {
            let (method, template) = endpoint.split_once(' ').unwrap();
            let mut path = template
                .replace("{order}", &order)
                .replace("{random}", &Uuid::now_v7().to_string());
            if path.contains("{fresh}") {
                let fresh = api.place_order(&callers.owner, &[("SKU-1", 1)]).await;
                path = path.replace("{fresh}", fresh["id"].as_str().unwrap());
            }
            let body = match (method, template) {
                ("POST", "/api/orders") => {
                    json!({"items": [{"sku": "SKU-1", "quantity": 1}], "customer_id": callers.owner_id})
                }
                ("POST", "/api/inventory") => {
                    json!({"sku": format!("NEW-{}", Uuid::now_v7().simple()), "name": "New", "price": {"amount": 100, "currency": "USD"}, "available": 1})
                }
                ("POST", "/api/inventory/SKU-1/restock") => json!({"quantity": 1}),
                ("PATCH", _) => json!({"low_stock_threshold": 3}),
                ("POST", "/api/admin/api-keys") => {
                    json!({"name": "matrix", "scopes": ["orders:read"]})
                }
                _ => json!({}),
            };
            let request = api.request(method.parse::<Method>().unwrap(), &path);
            let request = if method == "GET" || method == "DELETE" {
                request
            } else {
                request.json(&body)
            };
            let status = callers
                .authorize(caller, request)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status != want {
                failures.push(format!(
                    "{endpoint} as {caller:?}: expected {want}, got {status}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix:\n{}",
        failures.join("\n")
    );
    api.stop().await;
}

/// Least privilege: a key that places orders for customers sees and cancels them only when it
/// also holds `orders:read`.
#[sqlx::test(migrations = false)]
async fn a_key_cancels_other_customers_orders_only_with_read_and_write(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let admin = api.token(ADMIN).await;
    let write_only = api.api_key(&admin, &["orders:write"]).await;
    let read_write = api.api_key(&admin, &["orders:read", "orders:write"]).await;
    let (customer_id, _) = api.new_customer().await;
    let placed: Value = api
        .request(Method::POST, "/api/orders")
        .header("x-api-key", &write_only)
        .json(&json!({"items": [{"sku": "SKU-1", "quantity": 1}], "customer_id": customer_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = placed["id"].as_str().unwrap();
    let as_key = |method: Method, path: String, key: &str| {
        api.request(method, &path).header("x-api-key", key).send()
    };
    let read = as_key(Method::GET, format!("/api/orders/{id}"), &write_only)
        .await
        .unwrap();
    expect_problem(read, 403, "forbidden").await;
    let cancel = as_key(
        Method::POST,
        format!("/api/orders/{id}/cancel"),
        &write_only,
    )
    .await
    .unwrap();
    let problem = expect_problem(cancel, 403, "forbidden").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("orders:read"),
        "{problem}"
    );
    let read = as_key(Method::GET, format!("/api/orders/{id}"), &read_write)
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let cancel = as_key(
        Method::POST,
        format!("/api/orders/{id}/cancel"),
        &read_write,
    )
    .await
    .unwrap();
    assert_eq!(cancel.status(), 200);
    api.stop().await;
}
