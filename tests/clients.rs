//! What integrators build on: the TypeScript and Python clients generated from the OpenAPI
//! document, and the AsyncAPI document of the order hub, each held to what the code does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

use crate::support::{
    ADMIN, CUSTOMER, HubProbe, TestApi, TestWorker, js_dir, manifest_dir, python,
};

/// A folder of its own under the system's temporary folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(purpose: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("orion-{purpose}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes the OpenAPI document the API serves into this folder and returns its path.
    fn openapi(&self) -> PathBuf {
        let path = self.0.join("openapi.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&orion_api::openapi()).unwrap(),
        )
        .unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished command printed, for assertion messages.
fn report(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The hub's AsyncAPI document, as the API ships it.
fn asyncapi_document() -> PathBuf {
    manifest_dir().join("../orion-api/assets/asyncapi.json")
}

/// A script of `tests/js` under Node.
fn node(script: &str) -> Command {
    let dir = js_dir();
    let mut command = Command::new("node");
    command.arg(dir.join(script)).current_dir(dir);
    command
}

/// Runs a checking script of `tests/js` on `input`; fails the test with `failure` and the
/// script's output unless it succeeds, and returns that output.
async fn node_check(script: &str, input: &Path, failure: &str) -> String {
    let output = node(script)
        .arg(input)
        .output()
        .await
        .expect("start node (is Node.js installed?)");
    let report = report(&output);
    assert!(output.status.success(), "{failure}:\n{report}");
    report
}

/// Integrators generate a TypeScript client from the OpenAPI document (the fetch SDK of
/// @hey-api/openapi-ts, pinned in `tests/js`) and compile their code against it under
/// `tsc --strict`. This does both with `tests/js/client-usage.ts` (sign in, place an order with an
/// Idempotency-Key, read it back, page through orders, switch over every status), so a change of
/// the document that would break their build fails here first.
#[tokio::test]
async fn the_generated_typescript_client_type_checks_under_strict() {
    let scratch = Scratch::new("ts-client");
    let document = scratch.openapi();
    let report = node_check(
        "typescript-client.mjs",
        &document,
        "the generated TypeScript client does not compile",
    )
    .await;
    assert!(report.contains("type-check"), "{report}");
}

/// The Python client that openapi-python-client generates from the OpenAPI document works
/// against a real replica. Generated with `--fail-on-warning` (a schema or operation the generator
/// cannot translate would leave a hole in integrators' clients), it signs in as the seeded
/// customer, places an order with an Idempotency-Key (a retry with the key returns the same
/// order), and reads it back into its typed models (`tests/python/client_roundtrip.py`).
#[sqlx::test(migrations = false)]
async fn the_generated_python_client_signs_in_and_places_an_order(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let scratch = Scratch::new("py-client");
    let document = scratch.openapi();
    let python = python();
    // The generator formats what it writes with the ruff installed beside it.
    let tools = python.parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(tools).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let generated = Command::new(&python)
        .args(["-m", "openapi_python_client", "generate"])
        .args(["--meta", "none", "--fail-on-warning", "--path"])
        .arg(&document)
        .arg("--output-path")
        .arg(scratch.path().join("orion_client"))
        .env("PATH", &path)
        .current_dir(scratch.path())
        .output()
        .await
        .unwrap();
    assert!(
        generated.status.success(),
        "openapi-python-client could not generate the whole client:\n{}",
        report(&generated)
    );

    let (email, password) = CUSTOMER;
    let run = Command::new(&python)
        .arg(manifest_dir().join("python/client_roundtrip.py"))
        .arg(scratch.path())
        .arg("orion_client")
        .arg(api.url(""))
        .args([email, password, "SKU-1"])
        .output()
        .await
        .unwrap();
    let report = report(&run);
    assert!(
        run.status.success(),
        "the generated Python client's round trip failed:\n{report}"
    );
    let summary: Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|error| panic!("the round trip printed no summary ({error}):\n{report}"));
    // No worker runs here: the order waits for its saga.
    assert_eq!(summary["status"], "pending", "{summary}");
    assert_eq!(summary["failure_reason"], Value::Null, "{summary}");
    assert_eq!(summary["replayed_id"], summary["order_id"], "{summary}");
    assert_eq!(
        summary["total"],
        serde_json::json!({"amount": 1999, "currency": "USD"}),
        "one T-shirt at the catalog's price: {summary}"
    );

    let token = api.token(CUSTOMER).await;
    let id = summary["order_id"].as_str().unwrap();
    let orders = api.get_json("/api/orders", &token).await;
    let ids: Vec<&str> = orders["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [id],
        "one order, though it was placed twice with one key"
    );
    api.stop().await;
}

/// The hub's AsyncAPI document (`orion-api/assets/asyncapi.json`) passes the official parser's
/// validation (the AsyncAPI 3 schema, references, the parser's rules) with no error, and every
/// message example in it conforms to its payload schema: integrators generate code and docs
/// from it.
#[tokio::test]
async fn the_asyncapi_document_is_valid() {
    let report = node_check(
        "asyncapi-check.mjs",
        &asyncapi_document(),
        "the AsyncAPI document has errors",
    )
    .await;
    assert!(report.contains("(0 errors"), "{report}");
}

/// What the hub really sends is what its AsyncAPI document says. An administrator and a
/// customer connected with the real SignalR client hear an order confirmed, another failed for a
/// declined payment, stock reserved and running low; every argument they received is checked
/// against the document's schema for its target, which leaves no room for fields it does not
/// name, and the audiences are the document's.
#[sqlx::test(migrations = false)]
async fn the_hub_sends_what_its_asyncapi_document_describes(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let worker = TestWorker::spawn(&api, &[]).await;
    let hub = api.url("/hubs/orders");
    let customer = api.register_customer().await;
    let admin_token = api.token(ADMIN).await;
    let mut customer_hub = HubProbe::connected(&hub, &customer.token).await;
    let mut admin_hub = HubProbe::connected(&hub, &admin_token).await;

    // Four of the poster's five leave one, under its threshold of two; the fifth alone costs
    // exactly 666.00, which the simulated payment provider declines.
    let kept = api.place_order(&customer.token, &[("SKU-12", 4)]).await;
    let kept = kept["id"].as_str().unwrap().to_owned();
    customer_hub
        .wait_for_message("OrderStatusUpdated", Duration::from_secs(30), |m| {
            m["orderId"] == kept.as_str() && m["status"] == "confirmed"
        })
        .await;
    let declined = api.place_order(&customer.token, &[("SKU-12", 1)]).await;
    let declined = declined["id"].as_str().unwrap().to_owned();
    let failed = customer_hub
        .wait_for_message("OrderStatusUpdated", Duration::from_secs(30), |m| {
            m["orderId"] == declined.as_str() && m["status"] == "failed"
        })
        .await;
    assert_eq!(failed["failureReason"], "payment_declined");
    admin_hub
        .wait_for_message("LowStockAlert", Duration::from_secs(30), |m| {
            m["sku"] == "SKU-12"
        })
        .await;
    admin_hub
        .wait_for_message("InventoryUpdated", Duration::from_secs(10), |m| {
            m["sku"] == "SKU-12"
        })
        .await;
    admin_hub
        .wait_for_message("OrderPlaced", Duration::from_secs(10), |m| {
            m["orderId"] == declined.as_str()
        })
        .await;
    admin_hub
        .wait_for_message("OrderStatusUpdated", Duration::from_secs(10), |m| {
            m["orderId"] == declined.as_str() && m["status"] == "failed"
        })
        .await;

    let messages = |probe: &HubProbe| -> Vec<Value> {
        probe
            .seen
            .iter()
            .filter(|e| e["event"] == "message")
            .cloned()
            .collect()
    };
    let targets = |heard: &[Value]| -> BTreeSet<String> {
        heard
            .iter()
            .filter_map(|m| m["target"].as_str().map(str::to_owned))
            .collect()
    };
    let to_admin = messages(&admin_hub);
    let to_customer = messages(&customer_hub);
    assert_eq!(
        targets(&to_admin),
        BTreeSet::from(
            [
                "InventoryUpdated",
                "LowStockAlert",
                "OrderPlaced",
                "OrderStatusUpdated"
            ]
            .map(str::to_owned)
        ),
        "administrators hear of every order and of stock"
    );
    assert_eq!(
        targets(&to_customer),
        BTreeSet::from(["OrderStatusUpdated".to_owned()]),
        "customers hear only of their orders"
    );

    let scratch = Scratch::new("hub-messages");
    let heard = scratch.path().join("messages.jsonl");
    let lines: String = to_admin
        .iter()
        .chain(&to_customer)
        .map(|m| format!("{m}\n"))
        .collect();
    std::fs::write(&heard, lines).unwrap();
    let output = node("asyncapi-check.mjs")
        .arg(asyncapi_document())
        .arg("--hub-messages")
        .arg(&heard)
        .output()
        .await
        .unwrap();
    let report = report(&output);
    assert!(
        output.status.success(),
        "the hub sent messages its AsyncAPI document does not describe:\n{report}"
    );
    let count = to_admin.len() + to_customer.len();
    assert!(
        report.contains(&format!("{count} hub messages conform")),
        "{report}"
    );

    customer_hub.stop().await;
    admin_hub.stop().await;
    worker.stop().await;
    api.stop().await;
}
