//! Orion's gateway as a library: `run` serves plain HTTP on a listener the caller binds (and
//! HTTPS when configured) in front of the orion-api replicas, until the caller's shutdown future
//! completes; then it drains.
//!
//! Per request: the gateway's own endpoints (`/health/*`, `/metrics`) answer directly; everything
//! else is authenticated at the edge where the route needs it, rate limited, and proxied to a
//! healthy replica chosen by the configured balancing, with retries where they are safe.

mod config;
mod edge_auth;
mod health;
mod limits;
mod problem;
mod proxy;
mod tls;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

pub use config::{Balance, Config, Network, RatePolicy};
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
}

/// Binds HTTPS as configured, then serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let https = match config.https_listen {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    run_with(
        config,
        Listeners {
            http: listener,
            https,
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
    orion_config::check_jwt_secret(config.common.env, &config.jwt_secret)?;
    let tls = match listeners.https {
        Some(_) => Some(tls::server_config(&config)?),
        None => None,
    };
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

    let app = router(gateway.clone());
    let stop_accepting = CancellationToken::new();
    let http_address = listeners.http.local_addr()?;
    let http = {
        let app = app.clone().layer(Extension(Scheme::Http));
        let stop = stop_accepting.clone();
        axum::serve(
            listeners.http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
    };
    let https = match (listeners.https, tls) {
        (Some(listener), Some(tls)) => {
            tracing::info!(address = %listener.local_addr()?, "orion-gateway serving HTTPS");
            Some(tokio::spawn(serve_tls(
                listener,
                tls,
                app.layer(Extension(Scheme::Https)),
                stop_accepting.clone(),
            )))
        }
        _ => None,
    };
    tracing::info!(address = %http_address, upstreams = ?config.upstreams, "orion-gateway listening");
    let http = tokio::spawn(async move { http.await });

    shutdown.await;
    gateway.draining.store(true, Ordering::Relaxed);
    tracing::info!(
        delay_s = config.drain_delay_seconds,
        "draining: readiness now reports 503"
    );
    tokio::time::sleep(Duration::from_secs(config.drain_delay_seconds)).await;
    stop_accepting.cancel();
    let deadline = Duration::from_secs(config.shutdown_timeout_seconds);
    let finished = tokio::time::timeout(deadline, async {
        let _ = http.await;
        if let Some(https) = https {
            let _ = https.await;
        }
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
    background.cancel();
    tracing::info!("orion-gateway stopped");
    Ok(())
}

fn router(gateway: Arc<Gateway>) -> Router {
    let metrics = orion_telemetry::metrics::handle();
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
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
        .fallback(proxy::proxy)
        .with_state(gateway)
}

/// Ready while not draining and at least one replica is available.
async fn ready(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
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
    (
        status,
        Json(json!({"status": word, "upstreams": upstreams})),
    )
}

/// The HTTPS accept loop: TLS handshake, then HTTP/1.1 or HTTP/2 (by ALPN) with upgrades.
async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move { app.call(request.map(Body::new)).await }
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "HTTPS connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
