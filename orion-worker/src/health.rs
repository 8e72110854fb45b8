//! Liveness and readiness probes and Prometheus metrics of the worker.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use orion_messaging::{Broker, Readiness};
use orion_persistence::Pool;
use serde_json::{Value, json};

#[derive(Clone)]
struct Probes {
    pool: Pool,
    broker: Arc<Broker>,
}

pub(crate) fn routes(pool: Pool, broker: Arc<Broker>) -> Router {
    let metrics = orion_telemetry::metrics::handle();
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Probes { pool, broker })
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
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database and the broker answer.
async fn ready(State(probes): State<Probes>) -> (StatusCode, Json<Value>) {
    let readiness = Readiness::check(&probes.pool, &probes.broker).await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": readiness.status(), "checks": readiness.checks() })),
    )
}
