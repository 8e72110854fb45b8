//! The admin panel at `/admin` and the customer's order page at `/orders/{id}` (where lifecycle
//! emails link): one static page and its files, embedded in the binary, that use only the public
//! REST API and the hub.
//!
//! The script is native ES modules, served as they are (no build step): the page loads
//! `/admin/app.js`, which imports its siblings by relative path, so every module it names must be
//! in [`FILES`].

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiPath;

const INDEX: &str = include_str!("../assets/admin/index.html");

const JAVASCRIPT: &str = "text/javascript";
const CSS: &str = "text/css";

/// A file of `assets/admin/`, embedded: its name (as served under `/admin/`), content type and
/// contents.
macro_rules! embedded {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_str!(concat!("../assets/admin/", $name)),
        )
    };
}

/// Every file served under `/admin/`.
const FILES: &[(&str, &str, &str)] = &[
    // The entry module and the modules it imports.
    embedded!("app.js", JAVASCRIPT),
    embedded!("admin.js", JAVASCRIPT),
    embedded!("api.js", JAVASCRIPT),
    embedded!("customer.js", JAVASCRIPT),
    embedded!("dead-letters.js", JAVASCRIPT),
    embedded!("dom.js", JAVASCRIPT),
    embedded!("format.js", JAVASCRIPT),
    embedded!("hub.js", JAVASCRIPT),
    embedded!("login.js", JAVASCRIPT),
    embedded!("orders.js", JAVASCRIPT),
    embedded!("problem.js", JAVASCRIPT),
    embedded!("session.js", JAVASCRIPT),
    embedded!("stats.js", JAVASCRIPT),
    embedded!("stock.js", JAVASCRIPT),
    embedded!("timeline.js", JAVASCRIPT),
    embedded!("toast.js", JAVASCRIPT),
    embedded!("webhook-deliveries.js", JAVASCRIPT),
    embedded!("webhooks.js", JAVASCRIPT),
    // A classic script (it sets the global `signalR`), loaded before the modules.
    embedded!("signalr.min.js", JAVASCRIPT),
    embedded!("app.css", CSS),
];

/// The page may load only its own files and talk only to its own origin (REST and WebSocket).
/// `script-src 'self'` covers module scripts and their imports from the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/", get(page))
        .route("/orders", get(page))
        .route("/orders/{id}", get(page))
        .route("/admin/{file}", get(file))
}

async fn page() -> Response {
    protected(
        asset(INDEX, "text/html; charset=utf-8"),
        CONTENT_SECURITY_POLICY,
    )
}

async fn file(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let &(_, content_type, body) = FILES
        .iter()
        .find(|(file, ..)| *file == name)
        .ok_or_else(|| ApiError::NotFound("no such file in the admin panel".into()))?;
    Ok(asset(body, content_type))
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

/// Files carry no fingerprint in their names, so browsers revalidate them on every load.
fn asset(body: &'static str, content_type: &'static str) -> Response {
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

#[cfg(test)]
mod tests {
    use super::{FILES, INDEX, JAVASCRIPT};

    /// The relative imports of a module: `./name.js` in `from "./name.js"` or `import "./name.js"`.
    fn imports(source: &str) -> Vec<&str> {
        source
            .lines()
            .map(str::trim_start)
            .filter(|line| line.starts_with("import ") || line.starts_with("} from "))
            .filter_map(|line| {
                let start = line.find("\"./")? + 3;
                let end = start + line[start..].find('"')?;
                Some(&line[start..end])
            })
            .collect()
    }

    #[test]
    fn every_module_imported_is_served() {
        for (name, content_type, body) in FILES {
            if *content_type != JAVASCRIPT || *name == "signalr.min.js" {
                continue;
            }
            for import in imports(body) {
                assert!(
                    FILES.iter().any(|(file, ..)| *file == import),
                    "{name} imports ./{import}, which the panel does not serve"
                );
            }
        }
    }

    #[test]
    fn every_module_served_is_imported_and_the_page_loads_the_entry() {
        assert!(INDEX.contains(r#"<script type="module" src="/admin/app.js"></script>"#));
        assert!(INDEX.contains(r#"<script src="/admin/signalr.min.js" defer></script>"#));
        for (name, content_type, _) in FILES {
            if *content_type != JAVASCRIPT || ["app.js", "signalr.min.js"].contains(name) {
                continue;
            }
            assert!(
                FILES
                    .iter()
                    .any(|(_, _, body)| imports(body).contains(name)),
                "{name} is served but no module imports it"
            );
        }
    }
}
