//! The document's `webhooks` section: one entry per event an endpoint can subscribe to, with the
//! body Orion posts and the Standard Webhooks headers, so that generated clients get the payload
//! types and integrators see what to verify.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, ToSchema};

use crate::models::{LowStockWebhook, OrderWebhook};

/// The Standard Webhooks headers of every delivery.
const HEADERS: [(&str, &str); 3] = [
    (
        "webhook-id",
        "The event's id: the same on every attempt and replay, so a receiver drops duplicates by it.",
    ),
    (
        "webhook-timestamp",
        "When this attempt was sent, in seconds since the Unix epoch; refuse one far from your clock.",
    ),
    (
        "webhook-signature",
        "`v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>` keyed by the \
         secret's bytes (after `whsec_`); two, space-separated, while a rotated-out secret still signs.",
    ),
];

pub(crate) struct WebhookDocs;

impl Modify for WebhookDocs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut webhooks = utoipa::openapi::Paths::new();
        let timeout = orion_webhooks::sender::DEFAULT_TIMEOUT_SECONDS;
        let schedule = orion_webhooks::schedule::DEFAULT.replace(',', ", ");
        for event in orion_webhooks::EVENT_TYPES {
            let (schema, what) = if event.starts_with("order.") {
                (
                    OrderWebhook::name(),
                    "the order as `GET /api/orders/{id}` shows it, as of the event",
                )
            } else {
                (
                    LowStockWebhook::name(),
                    "the item whose stock fell below its threshold",
                )
            };
            let mut operation = OperationBuilder::new()
                .operation_id(Some(format!("on_{}", event.replace('.', "_"))))
                .summary(Some(format!("`{event}`")))
                .description(Some(format!(
                    "Orion posts this to every enabled endpoint subscribed to `{event}` (or `*`); \
                     `data` is {what}. Answer 2xx within the timeout ({timeout} s unless the \
                     operators set another). Anything else is retried with jitter, by default \
                     after {schedule} (a longer `Retry-After` on 429 and \
                     503 is honoured); `410 Gone` disables the endpoint. A `webhook.test` event \
                     (sent on an admin's request) has the same envelope, with `data` \
                     `{{\"webhook_id\"}}`."
                )))
                .tag("webhooks")
                // The receiver checks Orion's signature (the headers), not an OpenAPI scheme.
                .securities(Some(Vec::<SecurityRequirement>::new()))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .required(Some(Required::True))
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema.as_ref())))
                                .build(),
                        )
                        .build(),
                ))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("Taken (any 2xx will do)")
                        .build(),
                )
                .response(
                    "410",
                    ResponseBuilder::new()
                        .description("The endpoint is gone: Orion disables it")
                        .build(),
                );
            for (name, description) in HEADERS {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Header)
                        .required(Required::True)
                        .description(Some(description))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
            webhooks.paths.insert(
                event.to_owned(),
                PathItem::new(HttpMethod::Post, operation.build()),
            );
        }
        openapi.webhooks = Some(webhooks);
    }
}
