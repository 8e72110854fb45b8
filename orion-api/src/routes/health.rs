//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orion_messaging::Readiness;

use crate::AppState;
use crate::models::Health;

/// Liveness.
///
/// The process is up and serving; it checks nothing else.
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "check_liveness",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: None,
    })
}

/// Readiness.
///
/// The process can do its work: the database and the broker answer. 503 with each dependency's
/// state otherwise, and while the process drains before stopping. (The gateway answers its own
/// `/health/ready`, about its replicas, with the status word only.)
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "check_readiness",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down, or the replica is shutting down", body = Health),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let readiness = Readiness::check(&state.pool, &state.broker).await;
    // While shutting down, load balancers should send new clients elsewhere.
    let draining = state.hub.is_shutting_down();
    let status = if readiness.is_ready() && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if draining {
            "draining".into()
        } else {
            readiness.status().into()
        },
        checks: Some(readiness.checks()),
    };
    (status, Json(body))
}
