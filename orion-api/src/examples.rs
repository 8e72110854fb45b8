//! Examples of the API's answers for its OpenAPI document, made by serializing real values of
//! the answer types: an example cannot name a field the API does not send, or miss one it does.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::{Uuid, uuid};

use crate::models::{
    ApiKeyCreated, ApiKeyList, ApiKeyResponse, DeadLetterList, DeadLetterResponse,
    EmailDeliveryList, EmailDeliveryResponse, Health, InventoryItemResponse, InventoryList,
    LowStockEntry, MoneyBody, OrderItemResponse, OrderList, OrderResponse, SagaTransitionView,
    SagaView, SecretRotated, StatsResponse, StatusCount, Timeline, TimelineEvent, TokenResponse,
    UserResponse, WebhookCreated, WebhookDeliveryList, WebhookDeliveryResponse, WebhookList,
    WebhookResponse, WebhookTestSent,
};

const ORDER: Uuid = uuid!("01a23a0c-76eb-76af-9b5c-2a36d6585a06");
const CUSTOMER: Uuid = uuid!("01a23a0c-76c5-700c-850b-3acb3da9033a");
const WEBHOOK: Uuid = uuid!("01a23a05-fd88-7265-816c-dac61ff1d776");
const PLACED: OffsetDateTime = datetime!(2026-12-03 09:15:02.130 UTC);
const CONFIRMED: OffsetDateTime = datetime!(2026-12-03 09:15:02.176 UTC);

fn usd(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "USD".into(),
    }
}

fn order() -> OrderResponse {
    OrderResponse {
        id: ORDER,
        customer_id: CUSTOMER,
        status: "confirmed".into(),
        failure_reason: None,
        items: vec![OrderItemResponse {
            sku: "SKU-1".into(),
            name: "Orion T-shirt".into(),
            quantity: 2,
            unit_price: usd(1999),
        }],
        total: usd(3998),
        created_at: PLACED,
        updated_at: CONFIRMED,
    }
}

fn item() -> InventoryItemResponse {
    InventoryItemResponse {
        sku: "SKU-1".into(),
        name: "Orion T-shirt".into(),
        price: usd(1999),
        available: 98,
        reserved: 2,
        low_stock_threshold: 10,
    }
}

fn user() -> UserResponse {
    UserResponse {
        id: CUSTOMER,
        email: "ada@example.com".into(),
        name: "Ada".into(),
        role: "customer".into(),
    }
}

fn tokens() -> TokenResponse {
    TokenResponse {
        access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl".into(),
        refresh_token: "rt_3q2-7wTnE8KmVfU0YbXc9g".into(),
        token_type: "Bearer".into(),
        expires_in: 900,
    }
}

fn timeline() -> Timeline {
    let event = |id: Uuid, kind: &str, time, data| TimelineEvent {
        id,
        kind: kind.into(),
        time,
        data,
    };
    Timeline {
        order_id: ORDER,
        events: vec![
            event(
                uuid!("01a23a0c-76f0-7000-8000-000000000001"),
                "order.placed",
                PLACED,
                json!({"order_id": ORDER, "customer_id": CUSTOMER}),
            ),
            event(
                uuid!("01a23a0c-7720-7000-8000-000000000002"),
                "order.confirmed",
                CONFIRMED,
                json!({"order_id": ORDER, "status": "confirmed", "previous_status": "reserved"}),
            ),
        ],
        saga: Some(SagaView {
            step: "completed".into(),
            failure_reason: None,
            deadline: None,
            stock: "reserved".into(),
            payment: "authorized".into(),
            transitions: vec![SagaTransitionView {
                time: CONFIRMED,
                event: "payment_authorized".into(),
                from: "authorizing".into(),
                to: "completed".into(),
                commands: vec!["confirm_order".into()],
            }],
        }),
    }
}

fn api_key() -> ApiKeyResponse {
    ApiKeyResponse {
        id: uuid!("01a23a00-1111-7000-8000-000000000003"),
        name: "warehouse sync".into(),
        prefix: "ork_5fQm".into(),
        scopes: vec!["orders:read".into(), "inventory:read".into()],
        created_at: PLACED,
        last_used_at: Some(CONFIRMED),
        revoked_at: None,
    }
}

fn dead_letter() -> DeadLetterResponse {
    DeadLetterResponse {
        id: uuid!("01a23a06-026c-7478-ad7e-a0efdcbdd75e"),
        message_id: Some("01a23a06-024f-7300-830c-f22687c56abf".into()),
        event_type: Some("order.placed".into()),
        queue: "orion.saga".into(),
        error: "the handler panicked: index out of bounds".into(),
        attempts: 5,
        parked_at: CONFIRMED,
        replayed_at: None,
        replay_count: 0,
        body: json!({"type": "order.placed", "data": {"order_id": ORDER}}),
    }
}

fn email() -> EmailDeliveryResponse {
    EmailDeliveryResponse {
        id: uuid!("01a23a0c-7800-7000-8000-000000000004"),
        order_id: Some(ORDER),
        kind: "order_confirmed".into(),
        recipient: "ada@example.com".into(),
        status: "sent".into(),
        attempts: 1,
        last_error: None,
        provider_message_id: Some("<01a23a0c-7800@orion>".into()),
        created_at: CONFIRMED,
        sent_at: Some(CONFIRMED),
    }
}

fn webhook() -> WebhookResponse {
    WebhookResponse {
        id: WEBHOOK,
        url: "https://erp.example.com/orion".into(),
        events: vec!["order.confirmed".into(), "order.failed".into()],
        description: Some("ERP".into()),
        enabled: true,
        disabled_reason: None,
        created_at: PLACED,
        updated_at: PLACED,
    }
}

fn webhook_delivery() -> WebhookDeliveryResponse {
    WebhookDeliveryResponse {
        id: uuid!("01a23a0c-7900-7000-8000-000000000005"),
        event_id: uuid!("01a23a0c-7720-7000-8000-000000000002"),
        event_type: "order.confirmed".into(),
        attempts: 1,
        last_status_code: Some(200),
        last_latency_ms: Some(84),
        last_error: None,
        next_attempt_at: None,
        outcome: "delivered".into(),
        created_at: CONFIRMED,
        updated_at: CONFIRMED,
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn value(answer: impl Serialize) -> Value {
    // Plain structs of strings, numbers and times serialize without fail.
    serde_json::to_value(answer).unwrap_or(Value::Null)
}

/// Each answer schema's example, by schema name.
pub(crate) fn by_schema() -> Vec<(&'static str, Value)> {
    vec![
        ("OrderResponse", value(order())),
        (
            "OrderList",
            value(OrderList {
                items: vec![order()],
                next_cursor: Some("MTc2NDc1MzMwMjEzMDAwMDAwMHwwMWEy".into()),
            }),
        ),
        ("Timeline", value(timeline())),
        ("InventoryItemResponse", value(item())),
        (
            "InventoryList",
            value(InventoryList {
                items: vec![item()],
                next_cursor: None,
            }),
        ),
        ("UserResponse", value(user())),
        ("TokenResponse", value(tokens())),
        (
            "StatsResponse",
            value(StatsResponse {
                orders_by_status: vec![StatusCount {
                    status: "confirmed".into(),
                    currency: "USD".into(),
                    count: 42,
                    amount: 167_916,
                }],
                revenue: vec![usd(167_916)],
                low_stock: vec![LowStockEntry {
                    sku: "SKU-2".into(),
                    name: "Orion hoodie".into(),
                    available: 3,
                    low_stock_threshold: 5,
                }],
            }),
        ),
        (
            "ApiKeyCreated",
            value(ApiKeyCreated {
                key_info: api_key(),
                key: "ork_5fQm9rT2vX8wLkP3sB7nYcHd".into(),
            }),
        ),
        (
            "ApiKeyList",
            value(ApiKeyList {
                items: vec![api_key()],
            }),
        ),
        ("DeadLetterResponse", value(dead_letter())),
        (
            "DeadLetterList",
            value(DeadLetterList {
                items: vec![dead_letter()],
                next_cursor: None,
            }),
        ),
        (
            "EmailDeliveryList",
            value(EmailDeliveryList {
                items: vec![email()],
                next_cursor: None,
            }),
        ),
        (
            "Health",
            value(Health {
                status: "ok".into(),
                checks: Some(json!({"database": "ok", "broker": "ok"})),
            }),
        ),
        ("WebhookResponse", value(webhook())),
        (
            "WebhookCreated",
            value(WebhookCreated {
                webhook: webhook(),
                secret: SECRET.into(),
            }),
        ),
        (
            "WebhookList",
            value(WebhookList {
                items: vec![webhook()],
            }),
        ),
        ("WebhookDeliveryResponse", value(webhook_delivery())),
        (
            "WebhookDeliveryList",
            value(WebhookDeliveryList {
                items: vec![webhook_delivery()],
                next_cursor: None,
            }),
        ),
        (
            "SecretRotated",
            value(SecretRotated {
                secret: SECRET.into(),
                previous_secret_expires_at: datetime!(2026-12-04 09:15:02 UTC),
            }),
        ),
        (
            "WebhookTestSent",
            value(WebhookTestSent {
                delivery_id: uuid!("01a23a0c-7a00-7000-8000-000000000006"),
            }),
        ),
    ]
}
