//! The queue policies Orion relies on, and applying them through RabbitMQ's management API.
//!
//! What the broker does with a message Orion cannot take — dead-letter it safely, refuse it at
//! the door, park it after too many deliveries — is set by policy rather than by queue
//! arguments: a policy also reaches queues declared by an earlier version (a queue's arguments
//! can never change, and redeclaring with new ones fails), and operators can see and tune it.
//! RabbitMQ 3.10 through 4.x accept every key used here.
//!
//! - Work queues dead-letter **at least once** (the broker keeps a dead-lettered message until
//!   `orion.dead` has confirmed it; at-most-once, the default, can lose it), which requires
//!   `reject-publish` overflow; and a delivery limit parks a message the consumers never settle
//!   (one that crashes the process each time) into `orion.dead` instead of dropping it, which
//!   is what RabbitMQ 4 does at its default limit of 20 when no dead-letter target is set.
//! - Retry queues dead-letter back into their work queue (queue arguments name it) at least once.
//! - `orion.dead` never drops: no length limit ever discards its head, and its delivery limit
//!   is set far beyond any number of returns so RabbitMQ 4's default of 20 cannot drop it.

use std::future::Future;
use std::time::Duration;

use lapin::uri::AMQPUri;
use serde::Serialize;
use serde_json::json;

use crate::{Error, Result, Topology, WorkQueue};

/// Deliveries without an ack after which the broker parks a work-queue message. Above the
/// consumer's own limit ([`crate::consumer`] parks at 10 with its reason recorded), so the broker
/// acts only when the consumer could not.
pub const WORK_DELIVERY_LIMIT: u32 = 20;

/// `orion.dead`'s delivery limit: effectively none, on every broker version (RabbitMQ 3.10
/// rejects the `-1` with which RabbitMQ 4 spells "unlimited").
const DEAD_DELIVERY_LIMIT: u32 = 1_000_000_000;

/// Above operators' catch-all policies (priority 0) so that Orion's queues keep their
/// guarantees; an operator who means to override them can use a higher priority.
const PRIORITY: i32 = 10;

/// How long one call to the management API may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often policies in place are put again, so that one deleted by mistake comes back.
const REAPPLY_INTERVAL: Duration = Duration::from_secs(600);

/// One policy as the management API and `rabbitmqctl set_policy` take it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuePolicy {
    #[serde(skip)]
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to")]
    pub apply_to: &'static str,
    pub priority: i32,
    pub definition: serde_json::Value,
}

impl Topology {
    /// The policies of this topology's queues, named and matched under its prefix.
    pub fn policies(&self) -> Vec<QueuePolicy> {
        let prefix = regex_escape(self.prefix());
        let work = WorkQueue::ALL
            .map(|queue| regex_escape(queue.base_name()))
            .join("|");
        let policy = |name: &str, pattern: String, definition| QueuePolicy {
            name: format!("{}orion-{name}", self.prefix()),
            pattern,
            apply_to: "queues",
            priority: PRIORITY,
            definition,
        };
        vec![
            policy(
                "work",
                format!("^{prefix}({work})$"),
                json!({
                    "dead-letter-exchange": "",
                    "dead-letter-routing-key": self.dead_queue(),
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                    "delivery-limit": WORK_DELIVERY_LIMIT,
                }),
            ),
            policy(
                "retry",
                format!("^{prefix}({work})\\.retry\\.[0-9]+$"),
                json!({
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                }),
            ),
            policy(
                "dead",
                format!("^{}$", regex_escape(&self.dead_queue())),
                json!({
                    "overflow": "reject-publish",
                    "delivery-limit": DEAD_DELIVERY_LIMIT,
                }),
            ),
        ]
    }
}

/// Escapes what a regular expression would read as syntax.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// RabbitMQ's management API for one virtual host.
#[derive(Debug, Clone)]
pub struct Management {
    client: reqwest::Client,
    base: String,
    vhost: String,
    username: String,
    password: String,
}

impl Management {
    /// The API at `management_url` (e.g. `http://127.0.0.1:15672`), for the virtual host of
    /// `amqp_url`, signing in with the management URL's credentials, or the AMQP URL's when it
    /// has none.
    pub fn new(management_url: &str, amqp_url: &str) -> Result<Self> {
        let amqp: AMQPUri = amqp_url
            .parse()
            .map_err(|error: String| Error::Management(format!("bad AMQP URL: {error}")))?;
        let mut base = url::Url::parse(management_url)
            .map_err(|error| Error::Management(format!("bad management URL: {error}")))?;
        let (username, password) = if base.username().is_empty() {
            (
                amqp.authority.userinfo.username.clone(),
                amqp.authority.userinfo.password.clone(),
            )
        } else {
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|text| text.into_owned())
                    .map_err(|_| Error::Management("bad management URL credentials".into()))
            };
            (
                decode(base.username())?,
                decode(base.password().unwrap_or_default())?,
            )
        };
        // Credentials travel in the Authorization header, never in a logged URL.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| Error::Management(error.to_string()))?;
        Ok(Self {
            client,
            base: base.as_str().trim_end_matches('/').to_owned(),
            vhost: amqp.vhost,
            username,
            password,
        })
    }

    /// Creates or updates every policy (a PUT of an unchanged policy changes nothing).
    pub async fn apply(&self, policies: &[QueuePolicy]) -> Result<()> {
        for policy in policies {
            let response = send(
                self.policy_request(reqwest::Method::PUT, &policy.name)
                    .json(policy),
            )
            .await?;
            expect_success(response, &policy.name).await?;
        }
        Ok(())
    }

    /// Keeps `policies` in place until `stopping` completes: applies them, retrying with backoff
    /// while the API does not answer (messages flow meanwhile, with the broker's defaults), then
    /// again every ten minutes. The `broker_policies_applied` gauge is 1 while they are in place.
    pub async fn keep(self, policies: Vec<QueuePolicy>, stopping: impl Future<Output = ()>) {
        tokio::pin!(stopping);
        let mut failures: u32 = 0;
        let mut in_place = false;
        loop {
            let wait = match self.apply(&policies).await {
                Ok(()) => {
                    if !in_place {
                        tracing::info!(policies = policies.len(), "queue policies in place");
                    }
                    in_place = true;
                    failures = 0;
                    metrics::gauge!("broker_policies_applied").set(1.0);
                    REAPPLY_INTERVAL
                }
                Err(error) => {
                    in_place = false;
                    failures = failures.saturating_add(1);
                    metrics::gauge!("broker_policies_applied").set(0.0);
                    tracing::warn!(%error, failures, "cannot put the queue policies in place; retrying");
                    Duration::from_secs(2u64.saturating_pow(failures.min(5)))
                        .min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                () = &mut stopping => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The policy the broker holds under `name`, as the management API describes it.
    pub async fn policy(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let response = send(self.policy_request(reqwest::Method::GET, name)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Management(format!("policy {name}: {status}")));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|error| Error::Management(error.to_string()))
    }

    /// Removes the policies (tests clean up after themselves with it); absent ones are fine.
    pub async fn remove(&self, policies: &[QueuePolicy]) -> Result<()> {
        for policy in policies {
            let response = send(self.policy_request(reqwest::Method::DELETE, &policy.name)).await?;
            if response.status() != reqwest::StatusCode::NOT_FOUND {
                expect_success(response, &policy.name).await?;
            }
        }
        Ok(())
    }

    /// A signed-in request about the policy `name`.
    fn policy_request(&self, method: reqwest::Method, name: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.policy_url(name))
            .basic_auth(&self.username, Some(&self.password))
    }

    fn policy_url(&self, name: &str) -> String {
        format!(
            "{}/api/policies/{}/{}",
            self.base,
            percent_encode(&self.vhost),
            percent_encode(name)
        )
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
    request
        .send()
        .await
        .map_err(|error| Error::Management(error.to_string()))
}

async fn expect_success(response: reqwest::Response, policy: &str) -> Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(Error::Management(format!(
        "policy {policy}: {status}: {}",
        body.chars().take(300).collect::<String>()
    )))
}

/// Percent-encodes a path segment (a vhost is often `/`).
fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_only_the_topologys_own_queues() {
        let policies = Topology::new("t1.").policies();
        let work = &policies[0];
        assert_eq!(work.name, "t1.orion-work");
        assert_eq!(
            work.pattern,
            r"^t1\.(orion\.saga|orion\.email|orion\.webhooks|orion\.projections)$"
        );
        assert_eq!(work.definition["dead-letter-routing-key"], "t1.orion.dead");
        assert_eq!(
            policies[1].pattern,
            r"^t1\.(orion\.saga|orion\.email|orion\.webhooks|orion\.projections)\.retry\.[0-9]+$"
        );
        assert_eq!(policies[2].pattern, r"^t1\.orion\.dead$");
    }

    #[test]
    fn credentials_come_from_the_management_url_or_else_the_amqp_url() {
        let own = Management::new(
            "http://ops:s%40cret@rabbit:15672/",
            "amqp://guest:guest@rabbit:5672/%2f",
        )
        .expect("valid URLs");
        assert_eq!(
            (own.username.as_str(), own.password.as_str()),
            ("ops", "s@cret")
        );
        assert_eq!(own.base, "http://rabbit:15672");
        assert_eq!(
            own.policy_url("orion-work"),
            "http://rabbit:15672/api/policies/%2F/orion%2Dwork"
        );
        let borrowed = Management::new("http://rabbit:15672", "amqp://app:pw@rabbit:5672/shop")
            .expect("valid URLs");
        assert_eq!(
            (borrowed.username.as_str(), borrowed.vhost.as_str()),
            ("app", "shop")
        );
    }
}
