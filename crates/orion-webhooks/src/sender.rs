//! One delivery attempt: a signed `POST` with the Standard Webhooks headers, a timeout, no
//! redirects (a redirect could lead past the address guard) and no proxy. Plain hyper with
//! rustls over ring and Mozilla's roots (no system store needed in a slim image): the process's
//! other HTTP clients are left as they are.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::address::{AddressPolicy, GuardedResolver, literal_ip};
use crate::signature::{self, Secret};
use crate::{Error, Result};

/// Seconds a receiver has to answer, unless the operators set another.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 15;

/// Most of a receiver's answer kept for the deliveries list.
const ERROR_EXCERPT: usize = 200;

/// Most of an answer's body read (the rest is not needed to judge it).
const MAX_ANSWER: usize = 64 * 1024;

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// Sends deliveries.
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client<Connector, Full<Bytes>>,
    policy: AddressPolicy,
    timeout: Duration,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status code; `None` when no answer came (refused, timed out).
    pub status: Option<u16>,
    pub latency: Duration,
    /// The receiver's `Retry-After`, on `429` and `503` only.
    pub retry_after: Option<Duration>,
    /// Why it failed, for the deliveries list; `None` on success.
    pub error: Option<String>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// `410 Gone`: the receiver says the endpoint is no more; it is disabled.
    Gone,
    /// Try again later (at the receiver's `Retry-After`, if it gave one).
    Failed,
}

impl Attempt {
    pub fn verdict(&self) -> Verdict {
        match self.status {
            Some(code) if (200..300).contains(&code) => Verdict::Delivered,
            Some(410) => Verdict::Gone,
            _ => Verdict::Failed,
        }
    }
}

impl Sender {
    /// A sender whose attempts give up after `timeout`.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Sender> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { policy });
        // The HTTPS layer sees `https` URLs; the connector must let them through to it.
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| Error::Client(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Sender {
            client,
            policy,
            timeout,
        })
    }

    /// Posts `body` to `url` as event `id`, signed with each of `secrets`.
    pub async fn send(&self, url: &str, id: &str, body: &str, secrets: &[Secret]) -> Attempt {
        let started = Instant::now();
        let failed = |error: String| Attempt {
            status: None,
            latency: started.elapsed(),
            retry_after: None,
            error: Some(error),
        };
        let url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => return failed(format!("not a URL: {e}")),
        };
        // A literal address meets no resolver, so the guard looks at it here.
        if let Some(ip) = literal_ip(&url)
            && !self.policy.permits(ip)
        {
            return failed(format!(
                "{ip} is a private or reserved address; webhooks reach only public ones"
            ));
        }
        let timestamp = unix_now();
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(HOST, host_header(&url))
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("Orion-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature::header(secrets, id, timestamp, body),
            )
            .body(Full::new(Bytes::from(body.to_owned())));
        let request = match request {
            Ok(request) => request,
            Err(e) => return failed(format!("cannot build the request: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, answer) = response.into_parts();
            // The body is read for the deliveries list only; a receiver that sends too much or
            // breaks off still answered with its status.
            let text = match Limited::new(answer, MAX_ANSWER).collect().await {
                Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Ok::<_, hyper_util::client::legacy::Error>((parts.status, parts.headers, text))
        };
        let (status, headers, text) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return failed("no answer within the timeout".into()),
            Ok(Err(error)) => return failed(describe(&error)),
            Ok(Ok(answer)) => answer,
        };
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                retry_after(&headers)
            }
            _ => None,
        };
        let error = (!status.is_success()).then(|| {
            let excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
            format!("answered {status}: {excerpt}").trim().to_owned()
        });
        Attempt {
            status: Some(status.as_u16()),
            latency: started.elapsed(),
            retry_after,
            error,
        }
    }
}

/// `Host`, with the port when it is not the scheme's own.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// A transport error in words an admin can act on: the innermost cause says which (refused,
/// unreachable, a forbidden address, a certificate).
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{error}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let read = retry_after(&headers).unwrap();
        assert!(read > Duration::from_secs(110) && read <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_2xx_is_delivered_a_410_gone_and_the_rest_failed() {
        let attempt = |status| Attempt {
            status,
            latency: Duration::ZERO,
            retry_after: None,
            error: None,
        };
        assert_eq!(attempt(Some(204)).verdict(), Verdict::Delivered);
        assert_eq!(attempt(Some(410)).verdict(), Verdict::Gone);
        assert_eq!(attempt(Some(500)).verdict(), Verdict::Failed);
        assert_eq!(attempt(Some(301)).verdict(), Verdict::Failed);
        assert_eq!(attempt(None).verdict(), Verdict::Failed);
    }

    /// The TLS side builds with the ring provider alone: no process-wide provider needed.
    #[test]
    fn a_sender_builds_without_a_process_wide_tls_provider() {
        Sender::new(
            AddressPolicy {
                allow_private: false,
            },
            Duration::from_secs(1),
        )
        .unwrap();
    }
}
