//! A webhook receiver inside the test: a real HTTP server on a free port that records every
//! delivery as it arrived and answers from a script (then `200`), and the receiver's side of
//! Standard Webhooks: checking a delivery's signatures.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// How the receiver answers one delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    /// The status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Never answers (until the connection goes).
    Hang,
}

/// One delivery as received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) at: Instant,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Whether one of the `webhook-signature` header's signatures is `secret`'s, computed here
    /// from the specification: HMAC-SHA256 over `id.timestamp.body`, keyed by the secret's bytes.
    pub(crate) fn signed_by(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64 secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(
            format!(
                "{}.{}.{}",
                self.header("webhook-id"),
                self.header("webhook-timestamp"),
                self.body
            )
            .as_bytes(),
        );
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.header("webhook-signature")
            .split(' ')
            .any(|signature| signature == expected)
    }

    /// Verifies the delivery with the Standard Webhooks reference library (Python, pinned in
    /// `tests/python`): an implementation that is not Orion's. Returns the body it parsed.
    pub(crate) fn verified_by_reference_library(&self, secret: &str) -> Result<Value, String> {
        use std::io::Write;
        let input = json!({
            "secret": secret,
            "headers": {
                "webhook-id": self.header("webhook-id"),
                "webhook-timestamp": self.header("webhook-timestamp"),
                "webhook-signature": self.header("webhook-signature"),
            },
            "body": self.body,
        });
        let mut child = std::process::Command::new(super::python())
            .arg(super::manifest_dir().join("python/verify_webhook.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() {
            Ok(serde_json::from_str(&printed).expect("the library prints the body"))
        } else {
            Err(format!(
                "{printed}{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

/// A running receiver; it stops when dropped.
pub(crate) struct WebhookReceiver {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver that answers deliveries with `script`, in order, then `200`.
    pub(crate) async fn start(script: &[Answer]) -> WebhookReceiver {
        let shared = Arc::new(Mutex::new(Shared {
            script: script.iter().copied().collect(),
            received: Vec::new(),
        }));
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { answer(&state, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver {
            address,
            shared,
            server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks", self.address)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Waits until `count` deliveries have arrived (at most `limit`), and returns them all.
    pub(crate) async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} deliveries arrived within {limit:?}: {:?}",
                received.len(),
                received.iter().map(|r| r.body.clone()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(shared: &Mutex<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let next = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        shared.script.pop_front().unwrap_or(Answer::Status(200))
    };
    let status = |code: u16| StatusCode::from_u16(code).unwrap();
    match next {
        Answer::Status(code) => status(code).into_response(),
        Answer::RetryAfter(code, seconds) => {
            (status(code), [("retry-after", seconds.to_string())]).into_response()
        }
        Answer::Hang => std::future::pending().await,
    }
}
