//! Background work: active health checks of every replica, re-resolution of the upstream names,
//! and the purge of idle rate-limit keys.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Uri};
use tokio_util::sync::CancellationToken;

use crate::proxy::Gateway;

/// Settings of the active checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) fails: u32,
    pub(crate) passes: u32,
}

/// Checks `GET /health/ready` of every replica each interval until `stop`.
pub(crate) async fn check_replicas(gateway: Arc<Gateway>, checks: Checks, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(checks.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let backends = gateway.upstreams.backends();
        let probes = backends.iter().map(|backend| {
            let gateway = gateway.clone();
            async move {
                let uri = format!("http://{}/health/ready", backend.addr)
                    .parse::<Uri>()
                    .unwrap_or_default();
                let request = Request::get(uri).body(Body::empty());
                let ok = match request {
                    Ok(request) => matches!(
                        tokio::time::timeout(checks.timeout, gateway.client.request(request)).await,
                        Ok(Ok(response)) if response.status().is_success()
                    ),
                    Err(_) => false,
                };
                if let Some(healthy) = backend.record_check(ok, checks.fails, checks.passes) {
                    if healthy {
                        tracing::info!(upstream = %backend.addr, "replica is healthy again");
                    } else {
                        tracing::warn!(upstream = %backend.addr, "replica failed its health checks");
                    }
                }
                metrics::gauge!("gateway_upstream_healthy", "upstream" => backend.addr.to_string())
                    .set(if backend.is_healthy() { 1.0 } else { 0.0 });
            }
        });
        futures_util::future::join_all(probes).await;
        // Counts over the replicas resolved now: the per-replica gauge of a replica that left
        // DNS (a pod scaled away) keeps its last value, so alerts read these instead.
        let healthy = backends.iter().filter(|b| b.is_healthy()).count();
        metrics::gauge!("gateway_upstreams_known").set(backends.len() as f64);
        metrics::gauge!("gateway_upstreams_healthy").set(healthy as f64);
    }
}

/// Resolves the upstream names again each `interval` until `stop`.
pub(crate) async fn resolve_upstreams(
    gateway: Arc<Gateway>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => gateway.upstreams.resolve().await,
        }
    }
}

/// Forgets idle rate-limit keys every minute until `stop`.
pub(crate) async fn purge_rate_limits(gateway: Arc<Gateway>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                gateway.limits.purge();
            }
        }
    }
}
