use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The URL of the per-test database that `#[sqlx::test]` created.
pub(crate) fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options
            .get_database()
            .expect("sqlx::test names its database"),
    )
}

/// A process's `run` serving on an ephemeral port until [`Running::stop`].
pub(crate) struct Running {
    pub(crate) address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    /// Binds port 0, starts `run(listener, shutdown)` and waits until `/health/live` answers.
    pub(crate) async fn start<F, Fut, E>(run: F) -> Running
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel();
        let serving = run(listener, stopped);
        let task = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        let running = Running {
            address,
            stop,
            task,
        };
        running.wait_until_live().await;
        running
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    async fn wait_until_live(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let response = client.get(self.url("/health/live")).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                !self.task.is_finished(),
                "the process exited during start-up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not become live within 10 s", self.address);
    }

    /// Signals shutdown and waits for `run` to return; fails the test if it returned an error or
    /// did not stop within 10 s.
    pub(crate) async fn stop(self) {
        self.stop.send(()).expect("process still running");
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stopped within 10 s")
            .expect("task did not panic");
        if let Err(error) = result {
            panic!("run returned an error: {error}");
        }
    }
}

/// Turns a oneshot receiver into the shutdown future `run` takes.
pub(crate) async fn signal(stopped: oneshot::Receiver<()>) {
    let _ = stopped.await;
}

/// A command line of flag-value pairs `defaults`, with `extra` after them; a flag given in
/// `extra` replaces its default (some flags take several values, which would otherwise add up).
pub(crate) fn command_line(defaults: &[&str], extra: &[&str]) -> Vec<String> {
    defaults
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}
