//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::AppState;
use crate::models::Health;

/// The process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: None,
    })
}

/// The process can do its work: the database and the broker answer.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down", body = Health),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (database, broker) =
        tokio::join!(orion_persistence::ping(&state.pool), state.broker.check());
    if let Err(error) = &database {
        tracing::warn!(%error, "readiness: database unreachable");
    }
    if let Err(error) = &broker {
        tracing::warn!(%error, "readiness: broker unreachable");
    }
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let ready = database.is_ok() && broker.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ready { "ok" } else { "unavailable" }.into(),
        checks: Some(json!({ "database": word(database.is_ok()), "broker": word(broker.is_ok()) })),
    };
    (status, Json(body))
}
