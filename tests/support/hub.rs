//! Clients of the order hub: the real `@microsoft/signalr` package under Node (`tests/js`), as
//! the web and admin clients use it, driven line by line from a test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// This crate's directory: `cargo test` says where at run time; the path compiled in may be
/// another checkout's when checkouts share a build directory.
pub(crate) fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The JavaScript side of the tests, with its `node_modules` installed by `cargo xtask test`.
pub(crate) fn js_dir() -> PathBuf {
    let dir = manifest_dir().join("js");
    assert!(
        dir.join("node_modules/@microsoft/signalr").is_dir(),
        "the JavaScript test clients are not installed: run `cargo xtask test`, or \
         `npm ci --prefix tests/js`"
    );
    dir
}

/// A test client script under Node, talking in JSON lines: events on its stdout, commands on
/// its stdin.
pub(crate) struct NodeScript {
    child: Child,
    commands: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
}

impl NodeScript {
    /// Starts `tests/js/<script>` with `args` and `env`.
    pub(crate) fn spawn(script: &str, args: &[&str], env: &[(&str, &str)]) -> NodeScript {
        let dir = js_dir();
        let mut command = Command::new("node");
        command
            .arg(dir.join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start node (is Node.js installed?)");
        let commands = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        if sender.send(event).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("{line}"),
                }
            }
        });
        NodeScript {
            child,
            commands,
            events,
        }
    }

    /// The next event, or `None` if none came within `within` or the script ended.
    pub(crate) async fn next_event(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()?
    }

    pub(crate) async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.commands
            .write_all(line.as_bytes())
            .await
            .expect("write to the Node script");
    }

    /// Waits for the script to exit.
    pub(crate) async fn wait(&mut self, within: Duration) {
        let _ = tokio::time::timeout(within, self.child.wait()).await;
    }
}

/// One `@microsoft/signalr` client connected (or refused) in a Node process.
pub(crate) struct HubProbe {
    script: NodeScript,
    /// Everything received so far, in order.
    pub(crate) seen: Vec<Value>,
}

/// How a connection attempt ended.
pub(crate) enum Connection {
    Connected(Box<HubProbe>),
    Refused(String),
}

impl HubProbe {
    /// Connects to `hub_url` (`http://host:port/hubs/orders`) with `token`, if any.
    pub(crate) async fn connect(hub_url: &str, token: Option<&str>) -> Connection {
        let env: Vec<(&str, &str)> = token.map(|t| ("ORION_TOKEN", t)).into_iter().collect();
        let mut probe = HubProbe {
            script: NodeScript::spawn("hub-probe.mjs", &[hub_url], &env),
            seen: Vec::new(),
        };
        let first = probe
            .next_event(Duration::from_secs(20))
            .await
            .expect("the hub client reported how its start ended");
        match first["event"].as_str() {
            Some("connected") => Connection::Connected(Box::new(probe)),
            Some("refused") => {
                Connection::Refused(first["error"].as_str().unwrap_or("").to_owned())
            }
            _ => panic!("unexpected first event from the hub client: {first}"),
        }
    }

    /// Connects and fails the test if the hub refused.
    pub(crate) async fn connected(hub_url: &str, token: &str) -> HubProbe {
        match Self::connect(hub_url, Some(token)).await {
            Connection::Connected(probe) => *probe,
            Connection::Refused(error) => panic!("the hub refused a valid token: {error}"),
        }
    }

    async fn next_event(&mut self, within: Duration) -> Option<Value> {
        let event = self.script.next_event(within).await?;
        self.seen.push(event.clone());
        Some(event)
    }

    /// Waits for a hub message for which `matches` holds, returning its argument.
    pub(crate) async fn wait_for_message(
        &mut self,
        target: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        if let Some(found) = self
            .seen
            .iter()
            .find(|e| e["event"] == "message" && e["target"] == target && matches(&e["data"]))
        {
            return found["data"].clone();
        }
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(event) = self.next_event(left).await else {
                panic!(
                    "no matching {target} within {within:?}; received: {}",
                    json!(self.seen)
                );
            };
            if event["event"] == "message" && event["target"] == target && matches(&event["data"]) {
                return event["data"].clone();
            }
        }
    }

    /// Everything that arrives during `period`.
    pub(crate) async fn collect_for(&mut self, period: Duration) -> Vec<Value> {
        let start = self.seen.len();
        let deadline = tokio::time::Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next_event(left).await.is_none() {
                break;
            }
        }
        self.seen[start..].to_vec()
    }

    /// Waits for the connection to close and returns the error the client reported.
    pub(crate) async fn wait_closed(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self
                .next_event(left)
                .await
                .unwrap_or_else(|| panic!("the hub connection did not close within {within:?}"));
            if event["event"] == "closed" {
                return event["error"].as_str().map(str::to_owned);
            }
        }
    }

    /// Calls a hub method and returns its result or the error text.
    pub(crate) async fn invoke(&mut self, method: &str, args: Value) -> Result<Value, String> {
        let id = self.seen.len();
        self.script
            .send(json!({"invoke": method, "args": args, "id": id}))
            .await;
        loop {
            let event = self
                .next_event(Duration::from_secs(10))
                .await
                .expect("an answer to the invocation");
            if event["id"] == id {
                return match event["event"].as_str() {
                    Some("result") => Ok(event["result"].clone()),
                    _ => Err(event["error"].as_str().unwrap_or("").to_owned()),
                };
            }
        }
    }

    /// The `sequence` of every hub message received so far, in order.
    pub(crate) fn sequences(&self) -> Vec<u64> {
        self.seen
            .iter()
            .filter(|e| e["event"] == "message")
            .filter_map(|e| e["data"]["sequence"].as_u64())
            .collect()
    }

    /// The hub messages received so far for `target`.
    pub(crate) fn messages(&self, target: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|e| e["event"] == "message" && e["target"] == target)
            .map(|e| e["data"].clone())
            .collect()
    }

    /// Stops the client and waits for its process to end.
    pub(crate) async fn stop(mut self) {
        self.script.send(json!({"stop": true})).await;
        self.script.wait(Duration::from_secs(10)).await;
    }
}
