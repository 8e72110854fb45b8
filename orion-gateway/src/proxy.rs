//! The proxy: one request in, a replica chosen, headers made right, the exchange retried where
//! that is safe, the answer streamed back; WebSocket upgrades become tunnels.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header,
};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use orion_auth::TokenKeys;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Network};
use crate::edge_auth::{self, EdgeAuth, KEY_ACCEPTED, VouchedKeys};
use crate::limits::{RateLimits, Verdict};
use crate::problem::{problem, unauthorized};
use crate::upstream::{Backend, InFlight, Upstreams};

/// Bodies up to this size are kept so that a request can be sent again; larger or unsized bodies
/// stream straight through and are never retried. The API refuses bodies above 64 KiB anyway.
const REPLAYABLE_BODY: usize = 64 * 1024;

/// How long the API's word that a key is valid counts; every answer it authenticates with the
/// key renews it, and a `401` ends it at once.
const VOUCHED_FOR: Duration = Duration::from_secs(300);

/// Attempts per request at most (the first and two retries).
const MAX_ATTEMPTS: usize = 3;

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1). Names made once:
/// a name given as a string is parsed again at every use.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Identity headers only the gateway's own checks may assert; a client sending them is ignored.
const INTERNAL_IDENTITY: [&str; 5] = [
    "x-user-id",
    "x-user",
    "x-authenticated-user",
    "x-forwarded-user",
    "x-remote-user",
];

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
    retries: RetryBudget,
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
                TokenKeys::new(config.jwt_secret.as_bytes(), time::Duration::minutes(15)),
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
            retries: RetryBudget::new(f64::from(config.retry_budget_percent) / 100.0),
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

/// What the access log and the metrics record of one request.
struct Record {
    method: Method,
    route: &'static str,
    path: String,
    query: Option<String>,
    request_id: String,
    /// The socket's address.
    peer: IpAddr,
    /// The client's address: the socket's, or the one a trusted proxy forwarded.
    client_ip: IpAddr,
    started: Instant,
}

impl Record {
    fn finish(&self, response: &mut Response<Body>, upstream: Option<Arc<Backend>>) {
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
        let status = response.status();
        let upstream = upstream.map_or(metrics::SharedString::const_str("none"), |u| {
            metrics::SharedString::from(u.label.clone())
        });
        let elapsed = self.started.elapsed();
        metrics::counter!("gateway_requests_total", "route" => self.route, "status" => status_label(status), "upstream" => upstream.clone())
            .increment(1);
        metrics::histogram!("gateway_request_duration_seconds", "route" => self.route)
            .record(elapsed.as_secs_f64());
        tracing::info!(
            target: "orion_gateway::access",
            method = %self.method,
            route = self.route,
            path = %self.path,
            query = self.query.as_deref().unwrap_or(""),
            status = status.as_u16(),
            upstream = &*upstream,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = %self.request_id,
            client_ip = %self.client_ip,
            "request"
        );
    }
}

/// The status as a metric label, without allocating for the statuses the API answers.
fn status_label(status: StatusCode) -> metrics::SharedString {
    let known = match status.as_u16() {
        101 => "101",
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return metrics::SharedString::from_owned(other.to_string()),
    };
    metrics::SharedString::const_str(known)
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
    let record = Record {
        method: request.method().clone(),
        route: route_label(request.uri().path()),
        path: request.uri().path().to_owned(),
        query: edge_auth::redacted_query(request.uri()),
        request_id: request_id(request.headers()),
        peer: peer.ip(),
        client_ip: client_ip(peer.ip(), request.headers(), &gateway.trusted, trusted_peer),
        started: Instant::now(),
    };
    gateway.in_flight.increment(1.0);
    let (mut response, upstream) =
        forward(gateway, client, &mut request, &record, scheme, trusted_peer).await;
    gateway.in_flight.decrement(1.0);
    record.finish(&mut response, upstream);
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
    let caller = match gateway
        .auth
        .identify(request.method(), request.uri(), request.headers())
    {
        Ok(caller) => caller,
        Err(refusal) => {
            metrics::counter!("gateway_jwt_failures_total", "reason" => refusal.as_str())
                .increment(1);
            let detail = match refusal {
                edge_auth::Refusal::Missing => {
                    "this route needs an access token (Authorization: Bearer) or an API key"
                }
                edge_auth::Refusal::Invalid => {
                    "the access token is invalid or expired; sign in again"
                }
            };
            return (unauthorized(detail), None);
        }
    };
    let login = edge_auth::is_login(request.method(), request.uri().path());
    let rate_headers =
        match gateway
            .limits
            .check(&caller, record.client_ip, login, &gateway.vouched)
        {
            Verdict::Allowed(headers) => headers,
            Verdict::Refused(response) => return (response, None),
        };
    let websocket = is_websocket(request.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut *request));
    let method = request.method().clone();
    let replayable_method = is_replayable(&method, request.uri().path(), request.headers());
    let target = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let headers = upstream_headers(request.headers(), record, scheme, trusted_peer, websocket);
    let body = std::mem::take(request.body_mut());
    let mut payload = match body_length(request.headers(), &method) {
        Some(length) if length <= REPLAYABLE_BODY => {
            let read = axum::body::to_bytes(body, REPLAYABLE_BODY);
            match tokio::time::timeout(gateway.body_timeout, read).await {
                Ok(Ok(bytes)) => Payload::Replayable(bytes),
                Ok(Err(error)) => {
                    return (
                        problem(
                            StatusCode::BAD_REQUEST,
                            "bad-request",
                            format!("cannot read the request body: {error}"),
                        ),
                        None,
                    );
                }
                Err(_) => return (body_timed_out(gateway.body_timeout), None),
            }
        }
        // A body too large to keep streams through, with the same bound between its chunks.
        _ => Payload::Stream(Some(Body::new(tower_http::timeout::TimeoutBody::new(
            gateway.body_timeout,
            body,
        )))),
    };
    gateway.retries.deposit();

    let deadline = record.started + gateway.request_timeout;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut last_tried: Option<Arc<Backend>> = None;
    // What the previous attempt got, answered if no other replica is left to try.
    let mut last_failure: Option<Response<Body>> = None;
    loop {
        let Some(backend) = gateway.upstreams.pick(&tried) else {
            if let Some(failure) = last_failure {
                return (failure, last_tried);
            }
            let detail = if tried.is_empty() {
                "no API replica is configured or resolvable"
            } else {
                "no API replica could answer"
            };
            return (
                problem(StatusCode::BAD_GATEWAY, "bad-gateway", detail),
                last_tried,
            );
        };
        tried.push(backend.addr);
        last_tried = Some(backend.clone());
        let Some(body) = payload.take() else {
            return (
                problem(
                    StatusCode::BAD_GATEWAY,
                    "bad-gateway",
                    "no API replica could answer",
                ),
                Some(backend.clone()),
            );
        };
        let uri = backend.uri(&target);
        let mut outgoing = axum::http::Request::new(body);
        *outgoing.method_mut() = method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.headers_mut() = headers.clone();
        let in_flight = backend.start_request();
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = gateway.response_timeout.min(left);
        let outcome = tokio::time::timeout(wait, client.request(outgoing)).await;
        let can_retry = |connect_failure: bool| {
            tried.len() < MAX_ATTEMPTS
                && payload.is_replayable()
                && !websocket
                && (connect_failure || replayable_method)
                && Instant::now() < deadline
                && gateway.retries.withdraw()
        };
        let failure = match outcome {
            Ok(Ok(response)) => {
                let status = response.status();
                if let Some(key) = &caller.key {
                    let accepted = response.headers().contains_key(KEY_ACCEPTED);
                    gateway.vouched.learn(key, status.as_u16(), accepted);
                }
                let gateway_error = matches!(status.as_u16(), 502..=504);
                if gateway_error {
                    eject(gateway, &backend);
                    if can_retry(false) {
                        metrics::counter!("gateway_retries_total").increment(1);
                        last_failure =
                            Some(respond(gateway, response, in_flight, None, &rate_headers));
                        continue;
                    }
                } else {
                    backend.record_success();
                }
                return (
                    respond(gateway, response, in_flight, client_upgrade, &rate_headers),
                    Some(backend.clone()),
                );
            }
            Ok(Err(error)) => {
                let connect = error.is_connect();
                eject(gateway, &backend);
                tracing::warn!(upstream = %backend.addr, %error, connect, "upstream request failed");
                let failure = problem(
                    StatusCode::BAD_GATEWAY,
                    "bad-gateway",
                    "the API replica did not answer",
                );
                if can_retry(connect) {
                    metrics::counter!("gateway_retries_total").increment(1);
                    last_failure = Some(failure);
                    continue;
                }
                failure
            }
            Err(_) => {
                eject(gateway, &backend);
                let failure = problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    format!(
                        "the API replica did not answer within {} ms",
                        wait.as_millis()
                    ),
                );
                if can_retry(false) {
                    metrics::counter!("gateway_retries_total").increment(1);
                    last_failure = Some(failure);
                    continue;
                }
                failure
            }
        };
        return (failure, Some(backend));
    }
}

/// A body that did not arrive within the body timeout.
fn body_timed_out(timeout: Duration) -> Response<Body> {
    let mut response = problem(
        StatusCode::REQUEST_TIMEOUT,
        "body-timeout",
        format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        ),
    );
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

/// The request body: kept for another attempt, or a stream that can go out once.
enum Payload {
    Replayable(Bytes),
    Stream(Option<Body>),
}

impl Payload {
    fn take(&mut self) -> Option<Body> {
        match self {
            Self::Replayable(bytes) => Some(Body::from(bytes.clone())),
            Self::Stream(body) => body.take(),
        }
    }

    fn is_replayable(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }
}

/// The body's announced length; a bodiless method without one has none.
/// Whether a request may be sent to a second replica after the first failed: HTTP's idempotent
/// methods, and the commands the API deduplicates by `Idempotency-Key` when they carry one. Any
/// other POST with the header would be applied twice, so it is not retried.
fn is_replayable(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    method.is_idempotent()
        || (*method == Method::POST
            && headers.contains_key("idempotency-key")
            && honours_idempotency_key(path))
}

/// The API's commands that honour `Idempotency-Key`: placing an order and restocking an item.
fn honours_idempotency_key(path: &str) -> bool {
    path == "/api/orders"
        || path
            .strip_prefix("/api/inventory/")
            .and_then(|rest| rest.strip_suffix("/restock"))
            .is_some_and(|sku| !sku.is_empty() && !sku.contains('/'))
}

fn body_length(headers: &HeaderMap, method: &Method) -> Option<usize> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(value) => value.to_str().ok()?.parse().ok(),
        None if matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
        ) =>
        {
            Some(0)
        }
        None => None,
    }
}

/// The replica's answer, on its way back: hop-by-hop headers out, rate-limit headers in, the
/// replica's in-flight count held until the body ends, and a tunnel for a 101.
fn respond(
    gateway: &Arc<Gateway>,
    mut response: Response<Incoming>,
    in_flight: InFlight,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    rate_headers: &[(&'static str, HeaderValue)],
) -> Response<Body> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let closing = gateway.closing.clone();
            gateway
                .tunnels
                .spawn(tunnel(client_upgrade, upstream_upgrade, closing, in_flight));
        }
        let (parts, _) = response.into_parts();
        let mut response = Response::from_parts(parts, Body::empty());
        for (name, value) in rate_headers {
            response.headers_mut().insert(*name, value.clone());
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(KEY_ACCEPTED);
    for (name, value) in rate_headers {
        parts.headers.insert(*name, value.clone());
    }
    Response::from_parts(
        parts,
        Body::new(Tracked {
            inner: body,
            _in_flight: in_flight,
        }),
    )
}

/// Copies bytes both ways until either side closes, or the gateway shuts down (then the client
/// gets a WebSocket close frame, 1001 "going away").
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    closing: CancellationToken,
    in_flight: InFlight,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%error, "WebSocket upgrade failed");
            return;
        }
    };
    metrics::gauge!("gateway_open_tunnels").increment(1.0);
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(%error, "tunnel ended with an error");
            }
        }
        () = closing.cancelled() => {
            use tokio::io::AsyncWriteExt;
            // An unmasked server close frame: code 1001, going away.
            let _ = client.write_all(&[0x88, 0x02, 0x03, 0xE9]).await;
            let _ = client.shutdown().await;
            let _ = upstream.shutdown().await;
        }
    }
    metrics::gauge!("gateway_open_tunnels").decrement(1.0);
    drop(in_flight);
}

/// A response body that keeps its replica's in-flight count until it ends.
struct Tracked {
    inner: Incoming,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers the replica gets.
fn upstream_headers(
    incoming: &HeaderMap,
    record: &Record,
    scheme: Scheme,
    trusted_peer: bool,
    websocket: bool,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with("x-orion-") || INTERNAL_IDENTITY.contains(&name)
        })
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let forwarded_for = match incoming.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(chain) if trusted_peer => format!("{chain}, {}", record.peer),
        _ => record.peer.to_string(),
    };
    insert(&mut headers, X_FORWARDED_FOR, &forwarded_for);
    let proto = incoming
        .get(X_FORWARDED_PROTO)
        .filter(|_| trusted_peer)
        .cloned()
        .unwrap_or(HeaderValue::from_static(scheme.as_str()));
    headers.insert(X_FORWARDED_PROTO, proto);
    let host = incoming
        .get(X_FORWARDED_HOST)
        .filter(|_| trusted_peer)
        .or_else(|| incoming.get(header::HOST))
        .cloned();
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    insert(&mut headers, X_REQUEST_ID, &record.request_id);
    insert(&mut headers, TRACEPARENT, &traceparent(incoming));
    headers
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The caller's request id if it is a sane one, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        // Unique, not secret: a fast generator rather than a system call per request.
        .map_or_else(|| format!("{:032x}", fastrand::u128(..)), str::to_owned)
}

/// The client's address: the socket's, or, behind a trusted proxy, the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Network], trusted_peer: bool) -> IpAddr {
    if !trusted_peer {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !trusted.iter().any(|n| n.contains(**ip)))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Continues the caller's W3C trace (same trace, the gateway as the new parent) or starts one.
fn traceparent(headers: &HeaderMap) -> String {
    let span = format!("{:016x}", fastrand::u64(1..));
    let incoming = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            let parts: Vec<&str> = value.trim().split('-').collect();
            let hex = |s: &str, n: usize| {
                s.len() == n
                    && s.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            };
            match parts.as_slice() {
                [version, trace, parent, flags]
                    if hex(version, 2)
                        && *version != "ff"
                        && hex(trace, 32)
                        && hex(parent, 16)
                        && hex(flags, 2)
                        && trace.bytes().any(|b| b != b'0')
                        && parent.bytes().any(|b| b != b'0') =>
                {
                    Some(format!("00-{trace}-{span}-{flags}"))
                }
                _ => None,
            }
        });
    incoming.unwrap_or_else(|| format!("00-{:032x}-{span}-01", fastrand::u128(1..)))
}

/// A bounded set of route labels for metrics: ids replaced by placeholders.
pub(crate) fn route_label(path: &str) -> &'static str {
    // Every labelled route has at most five segments; a longer path only needs its first five.
    let mut segments = [""; 5];
    let mut count = 0;
    for (slot, segment) in segments
        .iter_mut()
        .zip(path.trim_end_matches('/').split('/').skip(1))
    {
        *slot = segment;
        count += 1;
    }
    match &segments[..count] {
        ["api", "orders"] => "/api/orders",
        ["api", "orders", _] => "/api/orders/{id}",
        ["api", "orders", _, "timeline"] => "/api/orders/{id}/timeline",
        ["api", "orders", _, "cancel"] => "/api/orders/{id}/cancel",
        ["api", "orders", _, "ship"] => "/api/orders/{id}/ship",
        ["api", "orders", _, "deliver"] => "/api/orders/{id}/deliver",
        ["api", "inventory"] => "/api/inventory",
        ["api", "inventory", _] => "/api/inventory/{sku}",
        ["api", "inventory", _, "restock"] => "/api/inventory/{sku}/restock",
        ["api", "auth", "login"] => "/api/auth/login",
        ["api", "auth", "register"] => "/api/auth/register",
        ["api", "auth", "refresh"] => "/api/auth/refresh",
        ["api", "auth", "me"] => "/api/auth/me",
        ["api", "admin", "stats"] => "/api/admin/stats",
        ["api", "admin", "api-keys", ..] => "/api/admin/api-keys",
        ["api", "admin", "dead-letters", ..] => "/api/admin/dead-letters",
        ["api", "admin", "email-deliveries"] => "/api/admin/email-deliveries",
        ["api", ..] => "/api/other",
        ["hubs", ..] => "/hubs",
        ["admin", ..] => "/admin",
        ["docs", ..] | ["api-docs", ..] => "/docs",
        ["health", ..] => "/health",
        _ => "other",
    }
}

/// Retries as a share of requests: each request deposits `ratio` of a token, each retry takes
/// one; a floor of ten tokens a second keeps a quiet gateway able to retry.
#[derive(Debug)]
struct RetryBudget {
    ratio: f64,
    state: std::sync::Mutex<(f64, Instant)>,
}

impl RetryBudget {
    const CAP: f64 = 100.0;
    const FLOOR_PER_SECOND: f64 = 10.0;

    fn new(ratio: f64) -> RetryBudget {
        RetryBudget {
            ratio,
            state: std::sync::Mutex::new((10.0, Instant::now())),
        }
    }

    fn refill(&self, add: f64) -> std::sync::MutexGuard<'_, (f64, Instant)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + add + elapsed * Self::FLOOR_PER_SECOND).min(Self::CAP);
        state.1 = now;
        state
    }

    fn deposit(&self) {
        drop(self.refill(self.ratio));
    }

    fn withdraw(&self) -> bool {
        let mut state = self.refill(0.0);
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_idempotent_methods_and_keyed_commands_the_api_deduplicates_are_replayed() {
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", "k-1".parse().unwrap());
        let plain = HeaderMap::new();
        assert!(is_replayable(&Method::GET, "/api/orders", &plain));
        assert!(is_replayable(
            &Method::DELETE,
            "/api/admin/api-keys/1",
            &plain
        ));
        assert!(is_replayable(&Method::POST, "/api/orders", &keyed));
        assert!(is_replayable(
            &Method::POST,
            "/api/inventory/SKU-1/restock",
            &keyed
        ));
        assert!(!is_replayable(&Method::POST, "/api/orders", &plain));
        // The API ignores the key here: a retry would apply the command twice.
        assert!(!is_replayable(&Method::POST, "/api/admin/api-keys", &keyed));
        assert!(!is_replayable(
            &Method::POST,
            "/api/orders/1/cancel",
            &keyed
        ));
        assert!(!is_replayable(
            &Method::POST,
            "/api/inventory/a/b/restock",
            &keyed
        ));
        assert!(!is_replayable(
            &Method::PATCH,
            "/api/inventory/SKU-1",
            &keyed
        ));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-secret-hop", "1".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("accept", "application/json".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn the_client_ip_comes_from_the_socket_unless_the_peer_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.5".parse().unwrap());
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[], false), peer);
        let trusted = [crate::config::parse_network("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(peer, &headers, &trusted, true),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn traceparent_is_continued_or_started() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let continued = traceparent(&headers);
        assert!(continued.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!continued.contains("00f067aa0ba902b7"));
        headers.insert("traceparent", "garbage".parse().unwrap());
        let started = traceparent(&headers);
        assert_eq!(started.len(), 55);
        assert!(!started.contains("4bf92f"));
    }

    #[test]
    fn request_ids_are_passed_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert("x-request-id", "has spaces".parse().unwrap());
        assert_ne!(request_id(&headers), "has spaces");
    }

    #[test]
    fn routes_are_labelled_without_ids() {
        assert_eq!(
            route_label("/api/orders/0192f0c2-aaaa/cancel"),
            "/api/orders/{id}/cancel"
        );
        assert_eq!(route_label("/api/inventory/SKU-1"), "/api/inventory/{sku}");
        assert_eq!(route_label("/random/thing"), "other");
    }

    #[test]
    fn the_retry_budget_runs_out() {
        let budget = RetryBudget::new(0.0);
        let granted = (0..50).filter(|_| budget.withdraw()).count();
        assert!((10..15).contains(&granted), "{granted}");
    }
}
