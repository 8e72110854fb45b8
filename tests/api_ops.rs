//! Cross-cutting behaviour: problem+json for unknown routes and methods, probes, metrics, request
//! ids, CORS, the OpenAPI document and its UI.

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{TestApi, expect_problem};

#[sqlx::test(migrations = false)]
async fn unknown_routes_and_methods_are_problems(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    expect_problem(
        api.get("/api/nothing-here", None).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let delete = api
        .client
        .delete(api.url("/api/inventory"))
        .send()
        .await
        .unwrap();
    expect_problem(delete, 405, "method-not-allowed").await;
    expect_problem(
        api.get("/api/orders/42", Some("x")).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn probes_metrics_and_request_ids(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let ready: Value = api
        .get("/health/ready", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["broker"], "ok");

    let response = api
        .get("/api/inventory/SKU-1", None)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-me-123",
        "a client's request id comes back"
    );
    let generated = api.get("/api/inventory/SKU-1", None).send().await.unwrap();
    assert!(
        uuid::Uuid::parse_str(generated.headers()["x-request-id"].to_str().unwrap()).is_ok(),
        "one is made when missing"
    );

    let metrics = api
        .get("/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total{")
                && l.contains(r#"route="/api/inventory/{sku}""#)
                && l.contains(r#"status="200""#)),
        "request counts by route and status:\n{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket{"),
        "latency histogram"
    );
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn cors_answers_only_configured_origins(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn_with(&options, &["--cors-origins", "https://shop.example"]).await;
    let preflight = |origin: &'static str| {
        api.client
            .request(reqwest::Method::OPTIONS, api.url("/api/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://shop.example")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_and_its_ui_are_served(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let document: Value = api
        .get("/api-docs/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        document,
        serde_json::to_value(orion_api::openapi()).unwrap()
    );
    // The hub's AsyncAPI document beside it, exactly the file the tests validate.
    let served: Value = api
        .get("/api-docs/asyncapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = crate::support::manifest_dir().join("../orion-api/assets/asyncapi.json");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(served, on_disk);
    assert_eq!(served["asyncapi"], "3.0.0");
    let page = api.get("/docs", None).send().await.unwrap();
    // The same protections as the admin panel: no inline or foreign script, never framed.
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self';") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let page = page.text().await.unwrap();
    assert!(page.contains("/docs/swagger-ui-bundle.js") && page.contains("/docs/init.js"));
    assert!(!page.contains("<script>"), "no inline script: {page}");
    let init = api
        .get("/docs/init.js", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api-docs/openapi.json"), "{init}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing is loaded from the internet"
    );
    let script = api
        .get("/docs/swagger-ui-bundle.js", None)
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().len() > 100_000);
    api.stop().await;
}

#[test]
fn the_openapi_document_matches_its_snapshot() {
    insta::assert_json_snapshot!("openapi", orion_api::openapi());
}

/// Redocly CLI's recommended rules, from the pinned copy in `tests/js`: no errors.
#[test]
fn the_openapi_document_passes_redocly_lint() {
    let document = std::env::temp_dir().join(format!("orion-openapi-{}.json", std::process::id()));
    std::fs::write(
        &document,
        serde_json::to_vec_pretty(&orion_api::openapi()).unwrap(),
    )
    .unwrap();
    let cli = crate::support::js_dir().join("node_modules/@redocly/cli/bin/cli.js");
    let output = std::process::Command::new("node")
        .arg(&cli)
        .args(["lint", "--extends=recommended", "--format=stylish"])
        .arg(&document)
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(&document);
    assert!(output.status.success(), "redocly lint failed:\n{report}");
    // Examples are checked against their schemas (a warning in the recommended rules).
    assert!(
        !report.contains("no-invalid-media-type-examples"),
        "an example its schema refuses:\n{report}"
    );
    assert!(
        report.contains("Woohoo!") || report.contains("validated"),
        "{report}"
    );
}

#[test]
fn every_operation_documents_its_errors_and_security() {
    let document = serde_json::to_value(orion_api::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            if path.starts_with("/api/") && !(method == "get" && path.starts_with("/api/inventory"))
            {
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{method} {path} documents no client error"
                );
            }
            let public = path.starts_with("/health")
                || path.starts_with("/api/auth/") && path != "/api/auth/me"
                || method == "get" && path.starts_with("/api/inventory");
            assert_eq!(
                operation["security"].as_array().map(Vec::is_empty),
                Some(public),
                "{method} {path} security (public ones say `[]`)"
            );
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.len() > 20),
                "{method} {path} has no description"
            );
            if path.starts_with("/api/") {
                // The gateway, the address every client uses, can answer these for any route.
                for status in ["429", "500", "502", "503", "504"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
            for (status, response) in responses {
                if response.get("$ref").is_none() {
                    assert!(
                        response["headers"].get("X-Request-Id").is_some(),
                        "{method} {path} {status} without X-Request-Id"
                    );
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "Idempotency-Key" {
                    assert_eq!(parameter["schema"]["type"], "string", "never null");
                    assert_eq!(parameter["schema"]["maxLength"], 255);
                    let success = responses
                        .iter()
                        .find(|(status, _)| status.starts_with('2'))
                        .map(|(_, response)| response)
                        .unwrap();
                    assert!(
                        success["headers"].get("Idempotent-Replayed").is_some(),
                        "{method} {path}: a replayed answer is not marked"
                    );
                }
            }
        }
    }
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for id in &ids {
        // Generators name an operation's types after it (`<Id>Data`, `<Id>Response`,
        // `<Id>Error`, ...): none may meet a schema's name (`stats` beside the `StatsResponse`
        // schema became `StatsResponse2`).
        let pascal: String = id
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        for suffix in ["", "Data", "Response", "Responses", "Error", "Errors"] {
            let generated = format!("{pascal}{suffix}");
            assert!(
                !schemas.contains_key(&generated),
                "operationId {id} makes {generated}, a schema's name"
            );
        }
        assert!(
            id.contains('_'),
            "operationId {id} says too little in a flat SDK"
        );
    }
    assert!(!document["servers"].as_array().unwrap().is_empty());
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
}

#[sqlx::test(migrations = false)]
async fn a_request_that_takes_too_long_is_answered_504_and_changes_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn_with(&options, &["--request-timeout-seconds", "1"]).await;
    let admin = crate::support::ADMIN;
    let token = api.token(admin).await;
    let pool = api.pool().await;
    // Another transaction holds the item's row, so the restock waits on its lock past the timeout.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from inventory_items where sku = 'SKU-1' for update")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = api
        .post(
            "/api/inventory/SKU-1/restock",
            Some(&token),
            &serde_json::json!({"quantity": 5}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 504, "timeout").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    blocker.rollback().await.unwrap();

    let available: i32 =
        sqlx::query_scalar("select available from inventory_items where sku = 'SKU-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(available, 100, "the abandoned restock was rolled back");
    let events: i64 =
        sqlx::query_scalar("select count(*) from outbox where aggregate_id = 'SKU-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(events, 0);
    api.stop().await;
}

/// The properties and required names of a component schema, through `allOf` (a flattened
/// struct) and `$ref`s.
fn schema_fields(document: &Value, schema: &Value) -> (Vec<String>, Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return schema_fields(document, &document["components"]["schemas"][name]);
    }
    let mut properties: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (more, needed) = schema_fields(document, part);
        properties.extend(more);
        required.extend(needed);
    }
    (properties, required)
}

/// Every success answer with a JSON body has an example, made from a real value of its type,
/// and the example holds the schema honest: each field the API sends is declared, and one sent
/// as `null` is required (it is always there, so a generated client must not make it optional).
#[test]
fn every_success_answer_has_an_example_whose_fields_are_declared_and_required() {
    let document = serde_json::to_value(orion_api::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(media) = response["content"].get("application/json") else {
                    continue;
                };
                if !status.starts_with('2') {
                    continue;
                }
                // On the answer, or on its schema.
                let reference = media["schema"]["$ref"].as_str().unwrap_or_default();
                let schema = &document["components"]["schemas"]
                    [reference.rsplit('/').next().unwrap_or_default()];
                let example = media
                    .get("example")
                    .or_else(|| schema.get("example"))
                    .unwrap_or_else(|| panic!("{method} {path} {status} has no example"));
                let (properties, required) = schema_fields(&document, &media["schema"]);
                for (field, value) in example.as_object().unwrap() {
                    assert!(
                        properties.contains(field),
                        "{method} {path}: the example's {field} is not in the schema"
                    );
                    // Only a field left out when empty may be optional; one sent as null is
                    // always sent.
                    assert!(
                        !value.is_null() || required.contains(field),
                        "{method} {path}: {field} is sent as null but not required"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 25, "{checked} answers checked");
}

/// The document's limits are the ones the API enforces.
#[test]
fn the_documented_limits_are_the_enforced_ones() {
    let document = serde_json::to_value(orion_api::openapi()).unwrap();
    let items = &document["components"]["schemas"]["PlaceOrderRequest"]["properties"]["items"];
    assert_eq!(items["minItems"], 1);
    assert_eq!(items["maxItems"], orion_domain::order::MAX_LINES);
    let events = &document["components"]["schemas"]["CreateWebhookRequest"]["properties"]["events"];
    // Every event type once (`*` goes alone).
    assert_eq!(events["maxItems"], orion_webhooks::EVENT_TYPES.len());
}
