//! The admin panel at `/admin` and the customer's order page at `/orders/{id}` (where lifecycle
//! emails link): one static page and its script, embedded in the binary, that use only the public
//! REST API and the hub.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../assets/admin/index.html");
const SCRIPT: &str = include_str!("../assets/admin/app.js");
const STYLES: &str = include_str!("../assets/admin/app.css");
const SIGNALR: &str = include_str!("../assets/admin/signalr.min.js");

/// The page may load only its own files and talk only to its own origin (REST and WebSocket).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/", get(page))
        .route("/orders", get(page))
        .route("/orders/{id}", get(page))
        .route("/admin/app.js", get(|| asset(SCRIPT, "text/javascript")))
        .route("/admin/app.css", get(|| asset(STYLES, "text/css")))
        .route(
            "/admin/signalr.min.js",
            get(|| asset(SIGNALR, "text/javascript")),
        )
}

async fn page() -> Response {
    protected(
        asset(INDEX, "text/html; charset=utf-8").await,
        CONTENT_SECURITY_POLICY,
    )
}

/// A page with its content-security policy, never framed (clickjacking), and no referrer sent
/// from it. The admin panel and the API docs page are served so.
pub(crate) fn protected(mut page: Response, policy: &'static str) -> Response {
    let headers = page.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    page
}

/// Assets carry no fingerprint in their names, so browsers revalidate them on every load.
async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
