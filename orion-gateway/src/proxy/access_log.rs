//! What the access log and the metrics record of one request, with labels from closed sets:
//! routes from the API's route templates, statuses by number.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Response, StatusCode};

use super::headers::X_REQUEST_ID;
use crate::upstream::Backend;

/// What the access log and the metrics record of one request.
pub(super) struct Record {
    pub(super) method: Method,
    pub(super) route: &'static str,
    pub(super) path: String,
    pub(super) query: Option<String>,
    pub(super) request_id: String,
    /// The `traceparent` naming the gateway's span, when spans carry trace context.
    pub(super) traceparent: Option<String>,
    /// The socket's address.
    pub(super) peer: IpAddr,
    /// The client's address: the socket's, or the one a trusted proxy forwarded.
    pub(super) client_ip: IpAddr,
    pub(super) started: Instant,
}

impl Record {
    pub(super) fn finish(&self, response: &mut Response<Body>, upstream: Option<Arc<Backend>>) {
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

/// A bounded set of route labels for metrics: the API's route templates (ids replaced by their
/// placeholders, as the API's OpenAPI document names them; a test holds the two together),
/// `/api/other` for the rest of `/api`, and a few groups outside it.
pub fn route_label(path: &str) -> &'static str {
    // Every labelled route has at most seven segments; one slot more keeps a longer path from
    // passing for a labelled route by its first seven.
    let mut segments = [""; 8];
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
        ["api", "admin", "api-keys"] => "/api/admin/api-keys",
        ["api", "admin", "api-keys", _] => "/api/admin/api-keys/{id}",
        ["api", "admin", "dead-letters"] => "/api/admin/dead-letters",
        ["api", "admin", "dead-letters", _, "replay"] => "/api/admin/dead-letters/{id}/replay",
        ["api", "admin", "email-deliveries"] => "/api/admin/email-deliveries",
        ["api", "admin", "webhooks"] => "/api/admin/webhooks",
        ["api", "admin", "webhooks", _] => "/api/admin/webhooks/{id}",
        ["api", "admin", "webhooks", _, "rotate-secret"] => {
            "/api/admin/webhooks/{id}/rotate-secret"
        }
        ["api", "admin", "webhooks", _, "test"] => "/api/admin/webhooks/{id}/test",
        ["api", "admin", "webhooks", _, "deliveries"] => "/api/admin/webhooks/{id}/deliveries",
        ["api", "admin", "webhooks", _, "deliveries", _, "replay"] => {
            "/api/admin/webhooks/{id}/deliveries/{delivery_id}/replay"
        }
        ["api", ..] => "/api/other",
        ["hubs", ..] => "/hubs",
        ["admin", ..] => "/admin",
        ["docs", ..] | ["api-docs", ..] => "/docs",
        ["health", ..] => "/health",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn routes_are_labelled_without_ids() {
        assert_eq!(
            route_label("/api/orders/0192f0c2-aaaa/cancel"),
            "/api/orders/{id}/cancel"
        );
        assert_eq!(route_label("/api/inventory/SKU-1"), "/api/inventory/{sku}");
        assert_eq!(route_label("/random/thing"), "other");
    }
}
