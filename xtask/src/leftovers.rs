//! What earlier test runs left on the local broker. Every end-to-end test declares its own
//! topology under a `test-<uuid>.` prefix and deletes it when it stops, but a test that fails or
//! is killed leaves its exchanges and quorum queues behind, and they add up run after run: each
//! quorum queue holds files and memory in the broker, and a broker out of file descriptors stops
//! accepting connections. A test run starts by deleting them.

use anyhow::{Context, Result};

use crate::http;
use crate::services::{Endpoint, MANAGEMENT_PORT, step};

/// Deletes the queues and exchanges named `test-…` on the local broker at `amqp_url`, through
/// its management API; nothing on a remote broker.
pub(crate) fn sweep_test_topologies(amqp_url: &str) -> Result<()> {
    let endpoint = Endpoint::from_url(amqp_url)?;
    if !endpoint.is_local() {
        return Ok(());
    }
    let url = url::Url::parse(amqp_url).context("invalid AMQP URL")?;
    let user = match url.username() {
        "" => "guest",
        user => user,
    };
    let password = url.password().unwrap_or("guest");
    let management = format!("{}:{MANAGEMENT_PORT}", endpoint.host);
    let mut removed = 0;
    for kind in ["queues", "exchanges"] {
        let (status, body) = http::request_authenticated(
            &management,
            "GET",
            &format!("/api/{kind}?columns=name,vhost"),
            (user, password),
        )?;
        if status != 200 {
            anyhow::bail!("the broker's management API answered {status} listing {kind}");
        }
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&body).context("the management API's list is not JSON")?;
        for item in listed {
            let (Some(name), Some(vhost)) = (item["name"].as_str(), item["vhost"].as_str()) else {
                continue;
            };
            if !name.starts_with("test-") {
                continue;
            }
            let path = format!("/api/{kind}/{}/{}", encode(vhost), encode(name));
            let (status, _) =
                http::request_authenticated(&management, "DELETE", &path, (user, password))?;
            if status == 204 || status == 404 {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        step(&format!(
            "removed {removed} queues and exchanges earlier test runs left on the broker"
        ));
    }
    Ok(())
}

/// A path segment, percent-encoded (`/`, the default vhost, is `%2F`).
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
