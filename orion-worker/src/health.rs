//! Liveness and readiness probes of the worker.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use orion_persistence::Pool;
use serde_json::{Value, json};

pub(crate) fn routes(pool: Pool) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(pool)
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(pool): State<Pool>) -> (StatusCode, Json<Value>) {
    match orion_persistence::ping(&pool).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "checks": { "database": "ok" } })),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "checks": { "database": "unreachable" } })),
            )
        }
    }
}
