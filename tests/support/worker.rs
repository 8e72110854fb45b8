//! orion-worker beside a test's API: in-process (stopped gracefully) or as its own OS process
//! (which a test can kill), on the API's database and broker prefix; and the mail catcher.

use std::time::Duration;

use serde_json::Value;

use super::api::{RETRY_DELAYS_MS, TestApi};
use super::process::OrionProcess;
use super::{Running, signal};

/// The SMTP server the tests send to.
pub(crate) fn smtp_url() -> String {
    std::env::var("ORION_TEST_SMTP_URL")
        .unwrap_or_else(|_| orion_config::defaults::SMTP_URL.to_owned())
}

/// RabbitMQ's management API, for the tests that put the queue policies in place.
pub(crate) fn management_url() -> String {
    std::env::var("ORION_TEST_AMQP_MANAGEMENT_URL")
        .unwrap_or_else(|_| orion_config::defaults::AMQP_MANAGEMENT_URL.to_owned())
}

/// The worker's command line for the database `db` and the topology under `prefix`, plus `extra`
/// flags.
pub(crate) fn worker_args(db: &str, prefix: &str, extra: &[&str]) -> Vec<String> {
    let amqp = super::api::amqp_url();
    let smtp = smtp_url();
    let defaults = [
        "--database-url",
        db,
        "--database-max-connections",
        "20",
        "--amqp-url",
        &amqp,
        "--amqp-prefix",
        prefix,
        "--amqp-retry-delays-ms",
        RETRY_DELAYS_MS,
        "--smtp-url",
        &smtp,
        "--sweep-interval-ms",
        "100",
        "--public-url",
        "http://shop.test",
        // Tests that need the queue policies ask for them (`with_policies`); the rest leave the
        // shared broker's policy list alone.
        "--amqp-management-url",
        "",
    ];
    super::app::command_line(&defaults, extra)
}

/// A worker running inside the test process.
pub(crate) struct TestWorker {
    running: Running,
}

impl TestWorker {
    pub(crate) async fn spawn(api: &TestApi, extra: &[&str]) -> TestWorker {
        let mut args = vec!["orion-worker".to_owned()];
        args.extend(worker_args(&api.db, api.topology.prefix(), extra));
        let config = <orion_worker::Config as clap::Parser>::parse_from(args);
        let running = Running::start(|listener, stopped| {
            orion_worker::run(config, listener, signal(stopped))
        })
        .await;
        TestWorker { running }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}

/// A worker running as its own process, which a test can kill.
pub(crate) struct WorkerProcess(OrionProcess);

impl WorkerProcess {
    pub(crate) async fn spawn(api: &TestApi, extra: &[&str]) -> WorkerProcess {
        Self::spawn_on(&api.db, api.topology.prefix(), extra).await
    }

    /// A worker on the database at `db` (which may be reached through a proxy) and the broker
    /// topology under `prefix`.
    pub(crate) async fn spawn_on(db: &str, prefix: &str, extra: &[&str]) -> WorkerProcess {
        let args = worker_args(db, prefix, extra);
        WorkerProcess(OrionProcess::spawn("orion-worker", &args, None).await)
    }

    /// Starts a worker without waiting for it to be ready: one that a message makes crash may
    /// not live that long.
    pub(crate) fn launch_on(db: &str, prefix: &str, extra: &[&str]) -> WorkerProcess {
        let args = worker_args(db, prefix, extra);
        WorkerProcess(OrionProcess::launch("orion-worker", &args, None))
    }

    /// How the worker ended, if it ends within `limit`.
    pub(crate) async fn exit_within(
        &mut self,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        self.0.exit_within(limit).await
    }

    /// SIGKILL: no shutdown path runs, in-flight work is simply lost to the process.
    pub(crate) async fn kill(self) {
        self.0.kill().await;
    }

    /// SIGTERM and wait for a clean exit.
    pub(crate) async fn terminate(self) {
        self.terminate_within(Duration::from_secs(30)).await;
    }

    /// SIGTERM, and fail unless the worker exits cleanly within `limit`.
    pub(crate) async fn terminate_within(self, limit: Duration) {
        self.0.terminate_within(limit).await;
    }
}

/// The mail catcher's REST API.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    client: reqwest::Client,
    base: String,
}

impl Mailbox {
    pub(crate) fn new() -> Mailbox {
        Mailbox {
            client: reqwest::Client::new(),
            base: std::env::var("ORION_TEST_MAIL_API")
                .unwrap_or_else(|_| orion_config::defaults::MAIL_UI.to_owned()),
        }
    }

    /// Every message the catcher holds for `recipient`.
    pub(crate) async fn to(&self, recipient: &str) -> Vec<Value> {
        let all: Vec<Value> = self
            .client
            .get(format!("{}/email", self.base))
            .send()
            .await
            .expect("mail catcher answers")
            .json()
            .await
            .expect("mail catcher JSON");
        all.into_iter()
            .filter(|m| {
                m["to"].as_array().is_some_and(|to| {
                    to.iter().any(|a| {
                        a["address"]
                            .as_str()
                            .is_some_and(|a| a.eq_ignore_ascii_case(recipient))
                    })
                })
            })
            .collect()
    }

    /// Waits until `recipient` has a message whose subject contains `subject`, and returns it.
    pub(crate) async fn wait_for(&self, recipient: &str, subject: &str) -> Value {
        for _ in 0..200 {
            if let Some(message) = self
                .to(recipient)
                .await
                .into_iter()
                .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
            {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no email to {recipient} with {subject:?} within 20 s");
    }

    /// Subjects of the messages `recipient` has, sorted.
    pub(crate) async fn subjects(&self, recipient: &str) -> Vec<String> {
        let mut subjects: Vec<String> = self
            .to(recipient)
            .await
            .iter()
            .filter_map(|m| m["subject"].as_str().map(str::to_owned))
            .collect();
        subjects.sort();
        subjects
    }
}
