//! Prometheus metrics: request counts and latency histograms by route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

pub(crate) use orion_telemetry::metrics::handle;

/// Counts and times every request under its route template (`/api/orders/{id}`, not the id).
/// Every label comes from a closed set: a client cannot mint a new series with a made-up method
/// or path.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard methods by name, anything else `other`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        for raw in ["X1", "X2", "BREW"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap_or(Method::GET);
            assert_eq!(method_label(&method), "other", "{raw}");
        }
    }
}
