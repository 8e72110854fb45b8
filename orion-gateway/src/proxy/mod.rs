//! The proxy: one request in, its caller checked and counted, a replica chosen, headers made
//! right, the exchange retried where that is safe, the answer streamed back; WebSocket upgrades
//! become tunnels. Split by concern: [`attempt`] sends one request to one replica and says how
//! it went, [`headers`] is header hygiene, [`body`] what may be sent twice, [`access_log`] what
//! is logged and counted, [`tunnel`] the upgraded connections.

mod access_log;
mod attempt;
mod body;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use orion_auth::TokenKeys;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::retry::budget::{Budget, TpsBudget};
use tracing::Instrument;

use crate::config::{Config, Network};
use crate::edge_auth::{self, Caller, EdgeAuth, VouchedKeys};
use crate::limits::{RateLimits, Verdict};
use crate::problem::{problem, unauthorized};
use crate::upstream::{Backend, Upstreams};

use access_log::Record;
pub use access_log::route_label;
use attempt::Outcome;
pub use body::honours_idempotency_key;
use body::{Payload, body_length, is_replayable};

/// Bodies up to this size are kept so that a request can be sent again; larger or unsized bodies
/// stream straight through and are never retried. The API refuses bodies above 64 KiB anyway.
const REPLAYABLE_BODY: usize = 64 * 1024;

/// How long the API's word that a key is valid counts; every answer it authenticates with the
/// key renews it, and a `401` ends it at once.
const VOUCHED_FOR: Duration = Duration::from_secs(300);

/// Attempts per request at most (the first and two retries).
const MAX_ATTEMPTS: usize = 3;

/// The answer to a request refused before any replica sees it (boxed: an answer is large next
/// to what the functions return otherwise).
type Refusal = Box<Response<Body>>;

/// The rate-limit headers every answer to an admitted request carries.
type RateHeaders = Vec<(&'static str, HeaderValue)>;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Everything a request needs.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) upstreams: Arc<Upstreams>,
    /// For the gateway's own requests (health checks); each serving thread has its own.
    pub(crate) client: UpstreamClient,
    auth: EdgeAuth,
    /// API keys the API has accepted lately.
    vouched: VouchedKeys,
    pub(crate) limits: RateLimits,
    /// How long a client has to send a whole request body.
    body_timeout: Duration,
    trusted: Vec<Network>,
    response_timeout: Duration,
    request_timeout: Duration,
    eject_after: u32,
    eject_base: Duration,
    /// Retries as a share of requests (tower's budget: deposits expire, with a floor).
    retries: TpsBudget,
    pub(crate) tunnels: TaskTracker,
    pub(crate) closing: CancellationToken,
    pub(crate) draining: AtomicBool,
    /// Looked up once rather than in the registry twice per request.
    in_flight: metrics::Gauge,
}

impl Gateway {
    /// Everything set up from the configuration; refuses rate policies it cannot enforce.
    pub(crate) fn new(config: &Config) -> crate::Result<Gateway> {
        let client = upstream_client(Config::ms(config.connect_timeout_ms));
        let mut key_salt = [0u8; 16];
        fastrand::fill(&mut key_salt);
        Ok(Gateway {
            upstreams: Arc::new(Upstreams::new(config.upstreams.clone(), config.balance)),
            client,
            auth: EdgeAuth::new(
                TokenKeys::new(
                    config.jwt.current(),
                    &config.jwt.previous(),
                    time::Duration::minutes(15),
                ),
                key_salt,
            ),
            vouched: VouchedKeys::new(VOUCHED_FOR),
            body_timeout: config.http.body_timeout(),
            limits: RateLimits::new(
                config.rate_login,
                config.rate_anonymous,
                config.rate_authenticated,
            )
            .map_err(|e| crate::Error::Config(orion_config::Error::Invalid(e)))?,
            trusted: config.trusted_proxies.clone(),
            response_timeout: Config::ms(config.response_timeout_ms),
            request_timeout: Config::ms(config.request_timeout_ms),
            eject_after: config.eject_after,
            eject_base: Config::ms(config.eject_base_ms),
            retries: retry_budget(config.retry_budget_percent),
            tunnels: TaskTracker::new(),
            closing: CancellationToken::new(),
            draining: AtomicBool::new(false),
            in_flight: metrics::gauge!("gateway_in_flight"),
        })
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A pool of keep-alive connections to the replicas. Shared by reference count: it goes into
/// every request's extensions, and the client itself is several counted references.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient(Arc<Client<HttpConnector, Body>>);

impl UpstreamClient {
    pub(crate) fn request(
        &self,
        request: axum::http::Request<Body>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.0.request(request)
    }
}

/// A client whose connections belong to the runtime it is first used on.
pub(crate) fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    UpstreamClient(Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(connector),
    ))
}

/// Retries as `percent` of requests over the last ten seconds, and at least ten a second so that
/// a quiet gateway can still retry.
fn retry_budget(percent: u32) -> TpsBudget {
    #[allow(clippy::cast_precision_loss)]
    let ratio = percent as f32 / 100.0;
    TpsBudget::new(Duration::from_secs(10), 10, ratio)
}

/// One proxied request, from the client's request to the answer on its way back.
pub(crate) async fn serve(
    gateway: &Arc<Gateway>,
    peer: SocketAddr,
    scheme: Scheme,
    client: &UpstreamClient,
    mut request: Request,
) -> Response<Body> {
    let trusted_peer = gateway.trusted.iter().any(|n| n.contains(peer.ip()));
    let route = route_label(request.uri().path());
    let client_ip =
        headers::client_ip(peer.ip(), request.headers(), &gateway.trusted, trusted_peer);
    // The gateway's server span: a child of the caller's trace if it sent one, and the parent
    // the replicas continue.
    let span = orion_telemetry::propagation::http_server_span(
        request.method().as_str(),
        route,
        request.uri().path(),
        request
            .headers()
            .get(headers::TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    span.record("client.address", tracing::field::display(client_ip));
    let record = Record {
        method: request.method().clone(),
        route,
        path: request.uri().path().to_owned(),
        query: edge_auth::redacted_query(request.uri()),
        request_id: headers::request_id(request.headers()),
        traceparent: orion_telemetry::propagation::traceparent(&span),
        peer: peer.ip(),
        client_ip,
        started: Instant::now(),
    };
    gateway.in_flight.increment(1.0);
    let (mut response, upstream) =
        forward(gateway, client, &mut request, &record, scheme, trusted_peer)
            .instrument(span.clone())
            .await;
    gateway.in_flight.decrement(1.0);
    span.record("http.response.status_code", response.status().as_u16());
    span.in_scope(|| record.finish(&mut response, upstream));
    response
}

async fn forward(
    gateway: &Arc<Gateway>,
    client: &UpstreamClient,
    request: &mut Request,
    record: &Record,
    scheme: Scheme,
    trusted_peer: bool,
) -> (Response<Body>, Option<Arc<Backend>>) {
    let (caller, rate_headers) = match admit(gateway, request, record) {
        Ok(admitted) => admitted,
        Err(refusal) => return (*refusal, None),
    };
    let exchange = match Exchange::prepare(gateway, request, record, scheme, trusted_peer).await {
        Ok(exchange) => exchange,
        Err(refusal) => return (*refusal, None),
    };
    gateway.retries.deposit();
    exchange
        .run(gateway, client, &caller, &rate_headers, record.started)
        .await
}

/// Who calls, checked at the edge, and its rate limits counted; or the answer refusing it.
fn admit(
    gateway: &Gateway,
    request: &Request,
    record: &Record,
) -> Result<(Caller, RateHeaders), Refusal> {
    let caller = gateway
        .auth
        .identify(request.method(), request.uri(), request.headers())
        .map_err(|refusal| {
            metrics::counter!("gateway_jwt_failures_total", "reason" => refusal.as_str())
                .increment(1);
            Box::new(unauthorized(match refusal {
                edge_auth::Refusal::Missing => {
                    "this route needs an access token (Authorization: Bearer) or an API key"
                }
                edge_auth::Refusal::Invalid => {
                    "the access token is invalid or expired; sign in again"
                }
            }))
        })?;
    let login = edge_auth::is_login(request.method(), request.uri().path());
    match gateway
        .limits
        .check(&caller, record.client_ip, login, &gateway.vouched)
    {
        Verdict::Allowed(headers) => Ok((caller, headers)),
        Verdict::Refused(response) => Err(Box::new(response)),
    }
}

/// The request as it goes to the replicas, as often as it may.
struct Exchange {
    method: Method,
    target: PathAndQuery,
    headers: HeaderMap,
    payload: Payload,
    /// May go to a second replica after an answer or a timeout (not only a refused connect).
    replayable_method: bool,
    /// The client's side of a WebSocket upgrade.
    client_upgrade: Option<tunnel::ClientUpgrade>,
}

impl Exchange {
    /// Reads what the replicas will get: the headers made right, and a small body in full
    /// (within the body timeout), so that it can be sent again.
    async fn prepare(
        gateway: &Gateway,
        request: &mut Request,
        record: &Record,
        scheme: Scheme,
        trusted_peer: bool,
    ) -> Result<Exchange, Refusal> {
        let websocket = tunnel::is_websocket(request.headers());
        let client_upgrade = websocket.then(|| tunnel::ClientUpgrade {
            upgrade: hyper::upgrade::on(&mut *request),
            admitted: request
                .extensions()
                .get::<Arc<orion_http::Admitted>>()
                .cloned(),
        });
        let method = request.method().clone();
        let replayable_method = is_replayable(&method, request.uri().path(), request.headers());
        let target = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let headers =
            headers::upstream_headers(request.headers(), record, scheme, trusted_peer, websocket);
        let body = std::mem::take(request.body_mut());
        let payload = match body_length(request.headers(), &method) {
            // Most requests: nothing to read, and no timer to set for it.
            Some(0) => Payload::Replayable(axum::body::Bytes::new()),
            Some(length) if length <= REPLAYABLE_BODY => {
                let read = axum::body::to_bytes(body, REPLAYABLE_BODY);
                match tokio::time::timeout(gateway.body_timeout, read).await {
                    Ok(Ok(bytes)) => Payload::Replayable(bytes),
                    Ok(Err(error)) => {
                        return Err(Box::new(problem(
                            StatusCode::BAD_REQUEST,
                            "bad-request",
                            format!("cannot read the request body: {error}"),
                        )));
                    }
                    Err(_) => {
                        return Err(Box::new(body_timed_out(format!(
                            "the request body did not arrive within {} ms",
                            gateway.body_timeout.as_millis()
                        ))));
                    }
                }
            }
            // A body too large to keep streams through, with the same bound between its chunks.
            _ => Payload::Stream(Some(Body::new(tower_http::timeout::TimeoutBody::new(
                gateway.body_timeout,
                body,
            )))),
        };
        Ok(Exchange {
            method,
            target,
            headers,
            payload,
            replayable_method,
            client_upgrade,
        })
    }

    /// Tries replicas until one answers, no retry is allowed, or none is left; answers with the
    /// last failure in the end.
    async fn run(
        mut self,
        gateway: &Arc<Gateway>,
        client: &UpstreamClient,
        caller: &Caller,
        rate_headers: &[(&'static str, HeaderValue)],
        started: Instant,
    ) -> (Response<Body>, Option<Arc<Backend>>) {
        let deadline = started + gateway.request_timeout;
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last: Option<(Response<Body>, Arc<Backend>)> = None;
        while let Some(backend) = gateway.upstreams.pick(&tried) {
            tried.push(backend.addr);
            let Some(body) = self.payload.take() else {
                break;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = gateway.response_timeout.min(left);
            let outcome = attempt::send(
                client,
                &backend,
                &self.method,
                &self.target,
                &self.headers,
                body,
                wait,
            )
            .await;
            let (failure, connect) = match outcome {
                Outcome::Answered {
                    response,
                    in_flight,
                } => {
                    if let Some(key) = &caller.key {
                        gateway.vouched.learn(
                            key,
                            response.status().as_u16(),
                            response.headers().contains_key(edge_auth::KEY_ACCEPTED),
                        );
                    }
                    if !attempt::is_gateway_error(response.status()) {
                        backend.record_success();
                        let upgrade = self.client_upgrade.take();
                        let answer =
                            attempt::respond(gateway, response, in_flight, upgrade, rate_headers);
                        return (answer, Some(backend));
                    }
                    eject(gateway, &backend);
                    let answer = attempt::respond(gateway, response, in_flight, None, rate_headers);
                    (answer, false)
                }
                Outcome::NoAnswer { failure, connect } => {
                    eject(gateway, &backend);
                    (failure, connect)
                }
                Outcome::ClientFailed(failure) => return (failure, Some(backend)),
            };
            let retry = tried.len() < MAX_ATTEMPTS
                && self.payload.is_replayable()
                && self.client_upgrade.is_none()
                && (connect || self.replayable_method)
                && Instant::now() < deadline
                && gateway.retries.withdraw();
            if !retry {
                return (failure, Some(backend));
            }
            metrics::counter!("gateway_retries_total").increment(1);
            last = Some((failure, backend));
        }
        match last {
            Some((failure, backend)) => (failure, Some(backend)),
            None => {
                let detail = if tried.is_empty() {
                    "no API replica is configured or resolvable"
                } else {
                    "no API replica could answer"
                };
                (
                    problem(StatusCode::BAD_GATEWAY, "bad-gateway", detail),
                    None,
                )
            }
        }
    }
}

/// A `408` for a body that did not arrive in time; the connection closes after it, since the
/// rest of the body may still be on its way.
fn body_timed_out(detail: impl Into<String>) -> Response<Body> {
    let mut response = problem(StatusCode::REQUEST_TIMEOUT, "body-timeout", detail);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn eject(gateway: &Gateway, backend: &Backend) {
    if backend.record_failure(gateway.eject_after, gateway.eject_base) {
        metrics::counter!("gateway_ejections_total", "upstream" => backend.addr.to_string())
            .increment(1);
        tracing::warn!(upstream = %backend.addr, "replica ejected after repeated failures");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_budget_runs_out() {
        let budget = retry_budget(0);
        let granted = (0..200).filter(|_| budget.withdraw()).count();
        // No deposits: only the floor of ten a second, kept for the budget's ten seconds.
        assert!((10..=101).contains(&granted), "{granted}");
        assert!(!budget.withdraw());
    }
}
