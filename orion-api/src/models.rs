//! Wire shapes of the REST API (JSON, snake_case), with their OpenAPI schemas.

use orion_domain::InventoryItem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::names::{
    EmailKindName, EmailStatusName, FailureReasonName, OrderEventName, RoleName, SagaStepName,
    ScopeName, StatusName, WebhookEventName, WebhookOutcomeName,
};

pub use orion_domain::public::{MoneyBody, OrderItemResponse, OrderResponse};

// ---- accounts ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "a long passphrase", "name": "Ada"}))]
pub struct RegisterRequest {
    #[schema(max_length = 254)]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "customer@orion.local", "password": "orion-customer-dev"}))]
pub struct LoginRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 512)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(max_length = 512)]
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Single use: exchange it at `/api/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

// ---- orders ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderLine {
    #[schema(example = "SKU-1", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"sku": "SKU-1", "quantity": 2}], "payment_token": "tok_visa"}))]
pub struct PlaceOrderRequest {
    /// 1 to 50 lines, one per SKU.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<PlaceOrderLine>,
    /// Opaque token from the payment form. Tokens starting with `tok_decline` are declined by the
    /// simulated provider.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub payment_token: Option<String>,
    /// The customer to order for: required for API keys, allowed for admins, and for customers
    /// only their own id.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderListQuery {
    /// Only orders in this status; omitted for all (an empty value is no status, and refused).
    #[param(value_type = Option<StatusName>)]
    pub status: Option<String>,
    /// Only the order with this reference: the ten characters shown in emails and the admin
    /// panel (the last ten hex digits of the order's id), any case.
    #[param(pattern = "^[0-9A-Fa-f]{10}$")]
    pub reference: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty for the first.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    pub id: Uuid,
    /// The event type, e.g. `order.placed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The event's payload; its fields depend on `kind`.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub order_id: Uuid,
    /// Every domain event of the order, oldest first.
    pub events: Vec<TimelineEvent>,
    /// The order's saga, once the worker has started it.
    #[schema(required = true)]
    pub saga: Option<SagaView>,
}

/// Where the order's saga is, and every step it took.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaView {
    #[schema(value_type = SagaStepName)]
    pub step: String,
    #[schema(value_type = Option<FailureReasonName>)]
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// When the running step becomes overdue; null when no step is running.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub deadline: Option<OffsetDateTime>,
    /// The order's stock as the saga knows it: `requested`, `held`, `released`, `shipped`, ...
    pub stock: String,
    /// The order's payment as the saga knows it: `requested`, `authorized`, `voided`, ...
    pub payment: String,
    /// Every event the saga handled, oldest first.
    pub transitions: Vec<SagaTransitionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SagaTransitionView {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What happened, e.g. `stock_reserved`, `payment_declined`, `deadline_checked`.
    pub event: String,
    pub from: String,
    pub to: String,
    /// What the saga did in response, e.g. `release_stock`, `fail_order:payment_declined`.
    pub commands: Vec<String>,
}

// ---- dead letters and email ----

/// A message that failed for good and was parked.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterResponse {
    pub id: Uuid,
    /// The event id, if the message had one.
    #[schema(required = true)]
    pub message_id: Option<String>,
    /// The event type, e.g. `order.placed`.
    #[schema(required = true)]
    pub event_type: Option<String>,
    /// The queue the message failed in, where a replay sends it.
    pub queue: String,
    /// The last error.
    pub error: String,
    /// Times it was tried.
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub replayed_at: Option<OffsetDateTime>,
    pub replay_count: i32,
    /// The message body: its JSON when it is JSON (usually an object), else its text as a string.
    pub body: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub items: Vec<DeadLetterResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty for the first.
    pub cursor: Option<String>,
}

/// One email Orion sent or tried to send.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailDeliveryResponse {
    pub id: Uuid,
    #[schema(required = true)]
    pub order_id: Option<Uuid>,
    #[schema(value_type = EmailKindName)]
    pub kind: String,
    pub recipient: String,
    /// `pending` (waiting for a retry), `sending` (in an SMTP conversation), `sent` or `failed`.
    #[schema(value_type = EmailStatusName)]
    pub status: String,
    pub attempts: i32,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(required = true)]
    pub provider_message_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub sent_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailDeliveryList {
    pub items: Vec<EmailDeliveryResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EmailDeliveryQuery {
    /// Only deliveries in this status; omitted for all (an empty value is refused).
    #[param(value_type = Option<EmailStatusName>)]
    pub status: Option<String>,
    /// Most deliveries returned, 1 to 100 (default 50), newest first.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

// ---- inventory ----

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryItemResponse {
    pub sku: String,
    pub name: String,
    pub price: MoneyBody,
    pub available: u32,
    pub reserved: u32,
    pub low_stock_threshold: u32,
}

impl From<&InventoryItem> for InventoryItemResponse {
    fn from(item: &InventoryItem) -> Self {
        Self {
            sku: item.sku().to_string(),
            name: item.name().to_owned(),
            price: item.price().into(),
            available: item.available(),
            reserved: item.reserved(),
            low_stock_threshold: item.low_stock_threshold(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryList {
    pub items: Vec<InventoryItemResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InventoryListQuery {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty for the first.
    #[param(pattern = "^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "SKU-100", "name": "Travel mug", "price": {"amount": 1599, "currency": "USD"}, "available": 40, "low_stock_threshold": 5}))]
pub struct CreateItemRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub sku: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub price: MoneyBody,
    /// Initial stock.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub available: i64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub low_stock_threshold: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 10}))]
pub struct RestockRequest {
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": {"amount": 2499, "currency": "USD"}, "low_stock_threshold": 8}))]
pub struct PatchItemRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default)]
    pub price: Option<MoneyBody>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub low_stock_threshold: Option<i64>,
}

// ---- admin ----

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusCount {
    #[schema(value_type = StatusName)]
    pub status: String,
    pub currency: String,
    pub count: i64,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LowStockEntry {
    pub sku: String,
    pub name: String,
    pub available: i32,
    pub low_stock_threshold: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    /// Orders and their amounts, by current status and currency.
    pub orders_by_status: Vec<StatusCount>,
    /// Revenue per currency: the total of confirmed, shipped and delivered orders.
    pub revenue: Vec<MoneyBody>,
    /// Items whose available stock is below their threshold.
    pub low_stock: Vec<LowStockEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "warehouse sync", "scopes": ["orders:read", "inventory:read"]}))]
pub struct CreateApiKeyRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At least one; repeats count once.
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    /// The visible start of the key, to tell keys apart.
    pub prefix: String,
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key_info: ApiKeyResponse,
    /// The key itself. Shown this once; only its hash is stored.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Each dependency's state, for readiness.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub checks: Option<serde_json::Value>,
}

// ---- webhooks ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/orion/hooks", "events": ["order.confirmed", "order.failed"], "description": "fulfilment"}))]
pub struct CreateWebhookRequest {
    /// Where to deliver: `http` or `https`, a public address.
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    /// Event types to deliver, or `["*"]` for all.
    #[schema(value_type = Vec<WebhookEventName>, min_items = 1, max_items = 7)]
    pub events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<WebhookEventName>>, min_items = 1, max_items = 7)]
    pub events: Option<Vec<String>>,
    /// A new description; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(max_length = 500)]
    pub description: Option<Option<String>>,
    /// Disable or enable deliveries; enabling resumes the deliveries that waited.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A field that, when present, is `Some` even if null: "remove it" differs from "leave it".
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub url: String,
    #[schema(value_type = Vec<WebhookEventName>)]
    pub events: Vec<String>,
    #[schema(required = true)]
    pub description: Option<String>,
    /// Whether events are delivered to it.
    pub enabled: bool,
    /// Why it is disabled: by an admin, `410 Gone`, or failing for too long.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// The signing secret (`whsec_…`). Shown this once.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/=]+$")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    /// The new signing secret (`whsec_…`). Shown this once.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/=]+$")]
    pub secret: String,
    /// Until then the previous secret signs too: each delivery carries both signatures.
    #[serde(with = "time::serde::rfc3339")]
    pub previous_secret_expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookTestSent {
    /// The delivery of the `webhook.test` event, in the endpoint's deliveries.
    pub delivery_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryResponse {
    pub id: Uuid,
    /// The event's id: the `webhook-id` header, the same on every attempt.
    pub event_id: Uuid,
    pub event_type: String,
    /// Attempts made so far.
    pub attempts: i32,
    #[schema(required = true)]
    pub last_status_code: Option<i32>,
    #[schema(required = true)]
    pub last_latency_ms: Option<i32>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[schema(value_type = WebhookOutcomeName)]
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryList {
    pub items: Vec<WebhookDeliveryResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryQuery {
    /// Most deliveries returned, 1 to 100 (default 50), newest first.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The body of every webhook: what happened, when, and the public shape of what it happened to.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderWebhook {
    #[serde(rename = "type")]
    #[schema(value_type = OrderEventName)]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The order as `GET /api/orders/{id}` shows it, as of the event.
    pub data: OrderResponse,
}

/// The body of an `inventory.low_stock` webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct LowStockWebhook {
    /// `inventory.low_stock`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^inventory\\.low_stock$")]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: orion_domain::public::LowStockAlert,
}
