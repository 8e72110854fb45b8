//! Orion's gateway as a library: `run` serves plain HTTP on a listener the caller binds (and
//! HTTPS when configured) in front of the orion-api replicas, until the caller's shutdown future
//! completes; then it drains.
//!
//! Per request: the gateway's own endpoints (`/health/live`, `/health/ready`, `/metrics`) answer
//! directly; everything else is authenticated at the edge where the route needs it, rate limited,
//! and proxied to a healthy replica chosen by the configured balancing, with retries where they
//! are safe.

mod config;
mod edge_auth;
mod health;
mod limits;
mod problem;
mod proxy;
mod tls;
mod upstream;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Balance, Config, Network, RatePolicy};

/// Entry point for the fuzz targets (`fuzz/`). Not an API.
#[doc(hidden)]
pub use proxy::fuzzing;

/// The gateway's own copy of what it must know of the API's routes: which are public, which
/// commands may be retried with an `Idempotency-Key`, and their metric labels. Held to the API's
/// OpenAPI document by a test, so that a route added to the API cannot be missed here.
pub mod routes {
    pub use crate::edge_auth::is_public;
    pub use crate::proxy::{honours_idempotency_key, route_label};
}
pub use proxy::Scheme;

use crate::proxy::Gateway;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Config(#[from] orion_config::Error),
}

/// The sockets the gateway serves on.
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<TcpListener>,
    /// Metrics and detailed readiness, for operators only.
    pub ops: Option<TcpListener>,
}

/// Binds HTTPS as configured, then serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // A configuration it cannot run with is refused before anything is bound.
    config.check()?;
    let https = match config.https_listen {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    let ops = match config.ops_listen {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    run_with(
        config,
        Listeners {
            http: listener,
            https,
            ops,
        },
        shutdown,
    )
    .await
}

/// Serves on the given listeners until `shutdown` completes; then reports not-ready for the drain
/// delay, stops accepting, lets requests in flight finish, closes WebSocket tunnels, all within
/// the shutdown timeout.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.check()?;
    let tls = match listeners.https {
        Some(_) => Some(tls::server_config(&config)?),
        None => None,
    };
    // The recorder first: metric handles taken before it exists would record nothing.
    orion_telemetry::metrics::handle();
    let gateway = Arc::new(Gateway::new(&config)?);
    gateway.upstreams.resolve().await;
    let background = CancellationToken::new();
    let checks = health::Checks {
        interval: Config::ms(config.health_interval_ms),
        timeout: Config::ms(config.health_timeout_ms),
        fails: config.health_fails,
        passes: config.health_passes,
    };
    tokio::spawn(health::check_replicas(
        gateway.clone(),
        checks,
        background.clone(),
    ));
    tokio::spawn(health::resolve_upstreams(
        gateway.clone(),
        Duration::from_secs(config.resolve_seconds),
        background.clone(),
    ));
    tokio::spawn(health::purge_rate_limits(
        gateway.clone(),
        background.clone(),
    ));

    if let Some(listener) = listeners.ops {
        tracing::info!(address = %listener.local_addr()?, "orion-gateway operations listener");
        let ops = ops_router(gateway.clone());
        let stop = background.clone();
        tokio::spawn(async move {
            let stopped = async move { stop.cancelled().await };
            if let Err(error) = axum::serve(listener, ops)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "the operations listener failed");
            }
        });
    }
    let app = router(gateway.clone());
    let worker_count = config.worker_count();
    let workers = workers::Workers::start(
        worker_count,
        &gateway,
        &app,
        &config.http,
        Config::ms(config.connect_timeout_ms),
    )?;
    let stop_accepting = CancellationToken::new();
    let http_address = listeners.http.local_addr()?;
    let (hand_tx, mut hand_rx) = tokio::sync::mpsc::unbounded_channel::<workers::Accepted>();
    // One cap over both listeners: a client is one client on either port.
    let connections = Arc::new(config.http.connections(orion_http::PerClient::Default));
    let mut accepting = vec![tokio::spawn(accept(
        listeners.http,
        None,
        connections.clone(),
        hand_tx.clone(),
        stop_accepting.clone(),
    ))];
    if let (Some(listener), Some(tls)) = (listeners.https, tls) {
        tracing::info!(address = %listener.local_addr()?, "orion-gateway serving HTTPS");
        accepting.push(tokio::spawn(accept(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(tls)),
            connections.clone(),
            hand_tx.clone(),
            stop_accepting.clone(),
        )));
    }
    drop(hand_tx);
    tracing::info!(
        address = %http_address,
        upstreams = ?config.upstreams,
        workers = worker_count,
        "orion-gateway listening"
    );
    let handing = tokio::spawn(async move {
        while let Some(accepted) = hand_rx.recv().await {
            workers.hand(accepted);
        }
        workers
    });

    shutdown.await;
    gateway.draining.store(true, Ordering::Relaxed);
    tracing::info!(
        delay_s = config.drain_delay_seconds,
        "draining: readiness now reports 503"
    );
    tokio::time::sleep(Duration::from_secs(config.drain_delay_seconds)).await;
    stop_accepting.cancel();
    for accept in accepting {
        let _ = accept.await;
    }
    let Ok(mut workers) = handing.await else {
        return Err(Error::Io(std::io::Error::other("the accept loop failed")));
    };
    let deadline = Duration::from_secs(config.shutdown_timeout_seconds);
    let finished = tokio::time::timeout(deadline, async {
        workers.drain().await;
        // Live tunnels are told the gateway is going away.
        gateway.closing.cancel();
        gateway.tunnels.close();
        gateway.tunnels.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!("shutdown deadline reached; dropping what is left");
        gateway.closing.cancel();
    }
    workers.finish(Duration::from_secs(5)).await;
    background.cancel();
    tracing::info!("orion-gateway stopped");
    Ok(())
}

/// The public port's own endpoints: liveness, and readiness as one word. Nothing about the
/// replicas behind it, and no metrics: those are on the operations listener.
fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route(
            "/health/ready",
            get(|State(gateway): State<Arc<Gateway>>| async move {
                let (status, word, _) = readiness(&gateway);
                (status, Json(json!({"status": word})))
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                problem::problem(StatusCode::NOT_FOUND, "not-found", "no such resource")
            }),
        )
        .with_state(gateway)
}

/// The operations listener: metrics and the detailed readiness.
fn ops_router(gateway: Arc<Gateway>) -> Router {
    let metrics = orion_telemetry::metrics::handle();
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            orion_telemetry::metrics::CONTENT_TYPE,
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .with_state(gateway)
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The paths `router` answers. The serving threads send everything else straight to the proxy,
/// without the router; the two lists must agree. `/metrics` is among them so that it is never
/// proxied to a replica's own metrics.
pub(crate) fn is_own_endpoint(path: &str) -> bool {
    matches!(path, "/health/live" | "/health/ready" | "/metrics")
}

/// Ready while not draining and at least one replica is available: the status, its word, and
/// each replica's state.
fn readiness(gateway: &Gateway) -> (StatusCode, &'static str, Vec<serde_json::Value>) {
    let now = std::time::Instant::now();
    let backends = gateway.upstreams.backends();
    let available = backends.iter().filter(|b| b.is_available(now)).count();
    let upstreams: Vec<_> = backends
        .iter()
        .map(|b| json!({"address": b.addr.to_string(), "healthy": b.is_healthy(), "available": b.is_available(now), "in_flight": b.outstanding()}))
        .collect();
    let ready = !gateway.is_draining() && available > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if gateway.is_draining() {
        "draining"
    } else if ready {
        "ok"
    } else {
        "no replica available"
    };
    (status, word, upstreams)
}

/// The detailed readiness, on the operations listener.
async fn ready(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let (status, word, upstreams) = readiness(&gateway);
    (
        status,
        Json(json!({"status": word, "upstreams": upstreams})),
    )
}

/// Takes connections off a listener and hands them to the serving threads, until `stop`; a
/// connection over the caps is turned away here, before a serving thread sees it.
async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<orion_http::ConnectionLimits>,
    hand: tokio::sync::mpsc::UnboundedSender<workers::Accepted>,
    stop: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = orion_http::next_connection(&listener) => accepted,
        };
        let admitted = match connections.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(why) => {
                tracing::debug!(%peer, reason = why.as_str(), "connection refused");
                // A TLS client cannot read a plain answer; it is only closed.
                if tls.is_none() {
                    connections.refuse(tcp, why);
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        match tcp.into_std() {
            Ok(stream) => {
                let accepted = workers::Accepted {
                    stream,
                    peer,
                    tls: tls.clone(),
                    admitted,
                };
                if hand.send(accepted).is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(%peer, %error, "cannot hand over a connection"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use clap::Parser;
    use tower::ServiceExt;

    use super::*;

    /// The serving threads trust `is_own_endpoint` to say which paths the router answers.
    #[tokio::test]
    async fn the_router_answers_exactly_the_own_endpoints() {
        let config = Config::parse_from([
            "orion-gateway",
            "--upstreams",
            "127.0.0.1:9",
            "--ops-listen",
            "off",
        ]);
        let app = router(Arc::new(Gateway::new(&config).unwrap()));
        for path in [
            "/health/live",
            "/health/ready",
            "/metrics",
            "/health/other",
            "/api/orders",
        ] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            // A route of the router answers with a body (the public `/metrics` with a 404
            // problem of its own); the router's fallback with an empty 404.
            let answered = response.headers().contains_key("content-type");
            assert_eq!(
                answered,
                is_own_endpoint(path),
                "{path}: {}",
                response.status()
            );
        }
    }
}
