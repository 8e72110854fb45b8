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
use crate::webhook_docs::WebhookDocs;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orion API",
        description = "Orders, inventory and accounts of the Orion order-processing suite. \
            Errors are RFC 7807 `application/problem+json` documents whose `type` is stable per kind.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
        contact(name = "Orion maintainers"),
    ),
    servers(
        (url = "/", description = "The address that served this document"),
        (url = "http://127.0.0.1:8080", description = "The gateway, as `cargo xtask up` starts it"),
        (url = "https://127.0.0.1:8443", description = "The gateway over TLS (its development certificate)"),
    ),
    modifiers(&SecuritySchemes, &WebhookDocs),
    components(schemas(
        crate::names::StatusName,
        crate::models::OrderWebhook,
        crate::models::LowStockWebhook
    )),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "orders", description = "Placing, following and changing orders"),
        (name = "inventory", description = "The catalog and its stock"),
        (name = "admin", description = "Sales figures and API keys"),
        (name = "webhooks", description = "Signed event deliveries to integrators' endpoints (Standard Webhooks)"),
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
/// body, and the edge's and the dependencies' answers (rate limits, an unreachable replica, an
/// unavailable database), which the gateway — the address every client uses — gives for any
/// route. Also the headers every answer carries, the `Idempotency-Key` rule, and `security: []`
/// on public operations. Applied once the routes have added their paths.
pub(crate) struct CommonResponses;

/// The shared answers: status, name under `components.responses`, description, and the headers
/// they carry besides `X-Request-Id`.
const SHARED: [(&str, &str, &str, &[&str]); 5] = [
    (
        "429",
        "TooManyRequests",
        "Rate limited at the gateway (per user, API key or client address); retry after `Retry-After`",
        &["Retry-After", "RateLimit-Policy", "RateLimit"],
    ),
    (
        "500",
        "InternalError",
        "An unexpected error; quote the answer's `X-Request-Id` when reporting it",
        &[],
    ),
    (
        "502",
        "BadGateway",
        "No API replica could be reached; retry",
        &[],
    ),
    (
        "503",
        "Unavailable",
        "The database is unavailable, or the server is at its connection limit; retry after `Retry-After`",
        &["Retry-After"],
    ),
    ("504", "GatewayTimeout", "The request took too long", &[]),
];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, header) in shared_headers() {
            components.headers.insert(name.to_owned(), header.into());
        }
        for (_, name, description, headers) in SHARED {
            let mut response = problem(description);
            for header in std::iter::once(&REQUEST_ID).chain(headers) {
                response
                    .headers
                    .insert((*header).to_owned(), header_ref(header));
            }
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
        let examples: std::collections::HashMap<&str, serde_json::Value> =
            crate::examples::by_schema().into_iter().collect();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                // An operation that names no scheme is public: say so, as an empty list.
                operation.security.get_or_insert_with(Vec::new);
                let keyed = describe_idempotency_key(operation);
                if path.starts_with("/api/") {
                    add_common_responses(operation);
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    response
                        .headers
                        .insert(REQUEST_ID.to_owned(), header_ref(REQUEST_ID));
                    if keyed && status.starts_with('2') {
                        response
                            .headers
                            .insert(REPLAYED.to_owned(), header_ref(REPLAYED));
                    }
                    if status.starts_with('2') {
                        add_example(response, &examples);
                    }
                }
            }
        }
    }
}

/// An example on each JSON answer whose schema has one in `crate::examples` (a real value of
/// the answer's type, serialized), unless the operation gives its own.
fn add_example(
    response: &mut utoipa::openapi::Response,
    examples: &std::collections::HashMap<&str, serde_json::Value>,
) {
    use utoipa::openapi::RefOr;
    for content in response.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        let Some(RefOr::Ref(reference)) = &content.schema else {
            continue;
        };
        let name = reference
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if content.example.is_none()
            && let Some(example) = examples.get(name)
        {
            content.example = Some(example.clone());
        }
    }
}

/// The answers every `/api` operation can give, where its handler names none of its own.
fn add_common_responses(operation: &mut utoipa::openapi::path::Operation) {
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description).into());
    };
    add("400", "Malformed path, query, header or body");
    if has_body {
        add("413", "Body larger than 64 KiB");
        add("415", "Body is not `application/json`");
        add("422", "Body is JSON but not a valid request");
    }
    for (status, name, _, _) in SHARED {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| utoipa::openapi::Ref::from_response_name(name).into());
    }
}

const REQUEST_ID: &str = "X-Request-Id";
const REPLAYED: &str = "Idempotent-Replayed";

/// A reference to one of [`shared_headers`].
fn header_ref(name: &str) -> utoipa::openapi::RefOr<utoipa::openapi::header::Header> {
    utoipa::openapi::RefOr::Ref(utoipa::openapi::Ref::new(format!(
        "#/components/headers/{name}"
    )))
}

/// A problem+json answer.
fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The headers answers carry, described once.
fn shared_headers() -> [(&'static str, utoipa::openapi::header::Header); 5] {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let header = |schema: ObjectBuilder, description: &str| {
        HeaderBuilder::new()
            .schema(Some(schema))
            .description(Some(description))
            .build()
    };
    let text = || ObjectBuilder::new().schema_type(Type::String);
    [
        (
            REQUEST_ID,
            header(
                text(),
                "The request's id: the client's own `X-Request-Id` when it is usable, else one the gateway made; quote it when reporting a problem",
            ),
        ),
        (
            REPLAYED,
            header(
                text().enum_values(Some(["true"])),
                "Present when this is the stored answer to an earlier request with the same `Idempotency-Key`",
            ),
        ),
        (
            "Retry-After",
            header(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
                "Seconds to wait before retrying",
            ),
        ),
        (
            "RateLimit-Policy",
            header(
                text(),
                "The limit that applies (IETF RateLimit headers), e.g. `\"authenticated\";q=600;w=60`",
            ),
        ),
        (
            "RateLimit",
            header(
                text(),
                "What is left of that limit, e.g. `\"authenticated\";r=0;t=12`",
            ),
        ),
    ]
}

/// Gives the operation's `Idempotency-Key` header, if it takes one, the rule the API checks
/// (1 to 255 visible ASCII characters; optional, never null). Whether it takes one.
fn describe_idempotency_key(operation: &mut utoipa::openapi::path::Operation) -> bool {
    use utoipa::openapi::Required;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let mut keyed = false;
    for parameter in operation.parameters.iter_mut().flatten() {
        let utoipa::openapi::RefOr::T(parameter) = parameter else {
            continue;
        };
        if parameter.name == "Idempotency-Key" {
            keyed = true;
            parameter.required = Required::False;
            parameter.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[!-~]+$"))
                    .examples(["0f8fad5b-d9cb-469f-a165-70867728950e"])
                    .into(),
            );
        }
    }
    keyed
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

/// The hub's messages as an AsyncAPI 3.0 document (written by hand beside the hub's code; a test
/// holds the messages the hub sends to it).
const ASYNCAPI: &str = include_str!("../assets/asyncapi.json");

/// `/api-docs/openapi.json`, `/api-docs/asyncapi.json` and the UI under `/docs`.
pub(crate) fn routes(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let json = document.to_pretty_json().unwrap_or_default();
    Router::new()
        .route(
            "/api-docs/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }),
        )
        .route(
            "/api-docs/asyncapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], ASYNCAPI) }),
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
