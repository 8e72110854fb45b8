//! The OpenAPI document, generated from the handlers, and the interactive UI at `/docs`.
//!
//! The UI is Swagger UI with its files embedded in the binary, so it works without internet
//! access at build time and at run time.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orion API",
        description = "Orders, inventory and accounts of the Orion order-processing suite. \
            Errors are RFC 7807 `application/problem+json` documents whose `type` is stable per kind.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(crate::models::StatusName)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "orders", description = "Placing, following and changing orders"),
        (name = "inventory", description = "The catalog and its stock"),
        (name = "admin", description = "Sales figures and API keys"),
        (name = "hub", description = "Live order and stock updates over SignalR (WebSockets)"),
        (name = "health", description = "Probes"),
    )
)]
pub(crate) struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /api/auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An integrator's API key (also accepted as `Authorization: ApiKey <key>` or `Authorization: Bearer <key>`)",
            ))),
        );
    }
}

/// Answers any operation can give that its handler does not name: malformed input, an unusable
/// body, and an overloaded or unreachable dependency. Applied once the routes have added their
/// paths.
pub(crate) struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description).into());
                };
                add("400", "Malformed path, query, header or body");
                if operation.request_body.is_some() {
                    add("413", "Body larger than 64 KiB");
                    add("415", "Body is not `application/json`");
                    add("422", "Body is JSON but not a valid request");
                }
                add("503", "The database is unavailable; retry");
                add("504", "The request took too long");
            }
        }
    }
}

const SWAGGER_JS: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");
const INDEX: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Orion API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"##;

/// Starts the UI: a file of its own, so that the page's policy allows no inline script.
const INIT: &str = r##"window.ui = SwaggerUIBundle({ url: "/api-docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
"##;

/// The docs page loads only its own files and the document. Swagger UI sets inline styles on
/// its elements, hence `'unsafe-inline'` for styles (never for scripts).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn index() -> axum::response::Response {
    crate::panel::protected(Html(INDEX).into_response(), CONTENT_SECURITY_POLICY)
}

/// `/api-docs/openapi.json` and the UI under `/docs`.
pub(crate) fn routes(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let json = document.to_pretty_json().unwrap_or_default();
    Router::new()
        .route(
            "/api-docs/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }),
        )
        .route("/docs", get(index))
        .route("/docs/", get(index))
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript", INIT) }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript", SWAGGER_JS) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css", SWAGGER_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
