//! Prometheus metrics: request counts and latency histograms by route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

pub(crate) use orion_telemetry::metrics::handle;

/// Counts and times every request under its route template (`/api/orders/{id}`, not the id).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub(crate) async fn render(handle: PrometheusHandle) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            orion_telemetry::metrics::CONTENT_TYPE,
        )],
        handle.render(),
    )
}
