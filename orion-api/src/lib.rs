//! Orion's REST API as a library: `run` serves it on a listener the caller binds, until the
//! caller's shutdown future completes, so tests run the real service in-process on port 0.

mod accounts;
mod api_keys;
mod config;
mod docs;
mod error;
mod examples;
mod extract;
#[doc(hidden)]
pub mod fuzzing;
mod hashing;
mod hub;
mod metrics;
pub mod models;
pub mod names;
mod panel;
mod routes;
mod state;
mod throttle;
mod webhook_docs;

use std::future::Future;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::IntoResponse;
use axum::{BoxError, Router};
use orion_messaging::{OutboxRelay, RelaySettings};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use accounts::create_admin;
pub use config::{Cli, Command, Config};
pub use error::{ApiError, Error, Problem, Result};
pub use hub::{Hub, HubSettings};
pub use state::AppState;

pub(crate) use orion_persistence::now;

/// Largest accepted request body. Orders of 50 lines are a few kilobytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Database connections of a replica unless configured: requests wait at most the pool's acquire
/// timeout for one, then get `503` with `Retry-After`.
const API_POOL_SIZE: u32 = 10;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Connects to the database, applies migrations, seeds demo data in dev mode, then serves HTTP on
/// `listener` until `shutdown` completes and in-flight requests have finished.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.check()?;
    let pool = orion_persistence::connect(
        &config.database.database_url,
        config.database.max_connections(API_POOL_SIZE),
    )
    .await?;
    orion_persistence::migrate(&pool).await?;
    if config.common.env.is_dev() {
        accounts::seed_dev_data(&pool).await?;
    }
    let state = AppState::new(config, pool);
    // Every process relays the outbox unless told not to; the relays share the work safely.
    let relay = state.config.outbox_relay.then(|| {
        OutboxRelay::new(
            state.pool.clone(),
            state.publisher.clone(),
            "orion-api",
            RelaySettings::default(),
        )
        .spawn()
    });
    // The backplane reports its state from its first moment: the recorder must be there.
    metrics::handle();
    let backplane = hub::Backplane::spawn(
        state.hub.clone(),
        state.broker.clone(),
        state.publisher.topology().clone(),
        state.instance_id(),
    );
    let address = listener.local_addr()?;
    tracing::info!(%address, instance = %state.instance_id(), "orion-api listening");
    // WebSockets leave the HTTP server once upgraded, so the hub closes its own before the server
    // drains the rest.
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        hub.shut_down(Duration::from_secs(5)).await;
    };
    let limits = state.config.http.clone();
    let served = orion_http::serve(listener, router(state), &limits, shutdown).await;
    backplane.stop().await;
    if let Some(relay) = relay {
        relay.stop().await;
    }
    served?;
    tracing::info!("orion-api stopped");
    Ok(())
}

/// Applies pending migrations and exits.
pub async fn migrate(config: &Config) -> Result<()> {
    let pool = orion_persistence::connect(&config.database.database_url, 2).await?;
    orion_persistence::migrate(&pool).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// The API's routes and their OpenAPI document, both from the handlers.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::{admin, auth, health, inventory, orders, webhooks};
    let (router, mut document) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::me))
        .routes(routes!(orders::place_order, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::timeline))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::ship_order))
        .routes(routes!(orders::deliver_order))
        .routes(routes!(inventory::list_items, inventory::create_item))
        .routes(routes!(inventory::get_item, inventory::patch_item))
        .routes(routes!(inventory::restock))
        .routes(routes!(admin::stats))
        .routes(routes!(admin::create_api_key, admin::list_api_keys))
        .routes(routes!(admin::revoke_api_key))
        .routes(routes!(admin::list_dead_letters))
        .routes(routes!(admin::replay_dead_letter))
        .routes(routes!(admin::list_email_deliveries))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(webhooks::list_webhook_deliveries))
        .routes(routes!(webhooks::replay_webhook_delivery))
        .routes(routes!(hub::negotiate))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .split_for_parts();
    utoipa::Modify::modify(&docs::CommonResponses, &mut document);
    (router, document)
}

/// The OpenAPI document, as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// Every route of the API with its middleware: request ids, tracing, metrics, timeouts, body
/// limits, CORS, and problem+json for unknown routes and methods.
pub fn router(state: AppState) -> Router {
    let (api, document) = api();
    // Install the recorder before the first request is counted.
    let metrics = metrics::handle();
    let timeout = Duration::from_secs(state.config.request_timeout_seconds);
    // A body trickled in byte by byte is cut off rather than holding a handler (and the
    // request timeout bounds the whole request).
    let body_timeout = state.config.http.body_timeout();
    let cors = cors(&state.config.cors_origins);
    let timeouts = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |error: BoxError| async move {
            if error.is::<tower::timeout::error::Elapsed>() {
                ApiError::Timeout(timeout.as_secs()).into_response()
            } else {
                ApiError::Internal(error).into_response()
            }
        }))
        .timeout(timeout);
    api.merge(docs::routes(document))
        .merge(hub::routes())
        .merge(panel::routes())
        .route(
            "/metrics",
            axum::routing::get(move || metrics::render(metrics.clone())),
        )
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this resource does not support that method".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(timeouts)
        .layer(axum::middleware::from_fn(extract::mark_key_accepted))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(cors)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            let request_id = request
                                .extensions()
                                .get::<RequestId>()
                                .and_then(|id| id.header_value().to_str().ok())
                                .unwrap_or_default();
                            let route = request
                                .extensions()
                                .get::<axum::extract::MatchedPath>()
                                .map_or("unmatched", axum::extract::MatchedPath::as_str);
                            // The API's server span, a child of the gateway's (or the caller's) span.
                            let span = orion_telemetry::propagation::http_server_span(
                                request.method().as_str(),
                                route,
                                request.uri().path(),
                                request
                                    .headers()
                                    .get("traceparent")
                                    .and_then(|v| v.to_str().ok()),
                            );
                            span.record("request_id", request_id);
                            span
                        })
                        .on_response(
                            |response: &axum::response::Response,
                             latency: Duration,
                             span: &tracing::Span| {
                                span.record(
                                    "http.response.status_code",
                                    response.status().as_u16(),
                                );
                                tracing::debug!(
                                    status = response.status().as_u16(),
                                    latency_ms = latency.as_millis(),
                                    "response"
                                );
                            },
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let any = origins.contains(&"*");
    let allow = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-api-key"),
            // What SignalR's JavaScript client sends with negotiate.
            HeaderName::from_static("x-requested-with"),
            HeaderName::from_static("x-signalr-user-agent"),
        ])
        .expose_headers([header::LOCATION, REQUEST_ID])
        // SignalR's browser client negotiates with credentials; allowed for listed origins only.
        .allow_credentials(!any)
        .max_age(Duration::from_secs(600))
}
