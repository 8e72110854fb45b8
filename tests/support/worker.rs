//! orion-worker beside a test's API: in-process (stopped gracefully) or as its own OS process
//! (which a test can kill), on the API's database and broker prefix; and the mail catcher.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::api::{RETRY_DELAYS_MS, TestApi};
use super::{Running, signal};

/// The SMTP server the tests send to.
pub(crate) fn smtp_url() -> String {
    std::env::var("ORION_TEST_SMTP_URL")
        .unwrap_or_else(|_| orion_config::defaults::SMTP_URL.to_owned())
}

/// The worker's command line for `api`, plus `extra` flags.
fn worker_args(api: &TestApi, extra: &[&str]) -> Vec<String> {
    let defaults = [
        "--database-url",
        &api.db,
        "--database-max-connections",
        "20",
        "--amqp-url",
        &api.amqp,
        "--amqp-prefix",
        api.topology.prefix(),
        "--amqp-retry-delays-ms",
        RETRY_DELAYS_MS,
        "--smtp-url",
        &smtp_url(),
        "--sweep-interval-ms",
        "100",
        "--public-url",
        "http://shop.test",
    ];
    // A flag given in `extra` replaces its default.
    let mut args: Vec<String> = defaults
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// A worker running inside the test process.
pub(crate) struct TestWorker {
    running: Running,
}

impl TestWorker {
    pub(crate) async fn spawn(api: &TestApi, extra: &[&str]) -> TestWorker {
        let mut args = vec!["orion-worker".to_owned()];
        args.extend(worker_args(api, extra));
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

/// A worker running as its own process, built by `cargo build` next to the test binary.
pub(crate) struct WorkerProcess {
    child: tokio::process::Child,
}

impl WorkerProcess {
    pub(crate) async fn spawn(api: &TestApi, extra: &[&str]) -> WorkerProcess {
        let binary = worker_binary();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut args = worker_args(api, extra);
        args.extend(["--listen".to_owned(), listen.to_string()]);
        let mut child = tokio::process::Command::new(&binary)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let client = reqwest::Client::new();
        for _ in 0..300 {
            let ready = client
                .get(format!("http://{listen}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return WorkerProcess { child };
            }
            assert!(
                child.try_wait().expect("child status").is_none(),
                "the worker exited during start-up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the worker process did not become ready within 15 s");
    }

    /// SIGKILL: no shutdown path runs, in-flight work is simply lost to the process.
    pub(crate) async fn kill(mut self) {
        self.child.kill().await.expect("kill the worker");
    }

    /// SIGTERM and wait for a clean exit.
    pub(crate) async fn terminate(mut self) {
        let pid = self.child.id().expect("running child");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits within 30 s")
            .expect("exit status");
        assert!(status.success(), "worker exited with {status}");
    }
}

/// `target/<profile>/orion-worker`: the test binary lives in `target/<profile>/deps/`.
fn worker_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ORION_TEST_WORKER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("orion-worker"))
        .expect("target directory");
    assert!(
        binary.is_file(),
        "{} is missing; build it first (`cargo build -p orion-worker`, which `cargo xtask test` does)",
        binary.display()
    );
    binary
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
