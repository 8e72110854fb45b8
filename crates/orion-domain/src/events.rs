//! Domain events: what happened, named by the routing keys of the design.
//!
//! An event is stored as its type name plus a JSON `data` object (outbox, event log) and travels
//! in a CloudEvents-shaped envelope built by the messaging crate.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::inventory::{Shortage, StockLine};
use crate::order::{FailureReason, OrderLine};
use crate::{CustomerId, Money, OrderId, Sku};

/// Every event type, with its routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrderPlaced,
    OrderReserved,
    OrderConfirmed,
    OrderFailed,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
    InventoryReserved,
    InventoryReservationFailed,
    InventoryReleased,
    InventoryAdjusted,
    InventoryLowStock,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    EmailSent,
    EmailFailed,
    AccountRegistrationAttempted,
    WebhookDisabled,
}

impl EventType {
    pub const ALL: [EventType; 19] = [
        Self::OrderPlaced,
        Self::OrderReserved,
        Self::OrderConfirmed,
        Self::OrderFailed,
        Self::OrderCancelled,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::InventoryReserved,
        Self::InventoryReservationFailed,
        Self::InventoryReleased,
        Self::InventoryAdjusted,
        Self::InventoryLowStock,
        Self::PaymentAuthorized,
        Self::PaymentDeclined,
        Self::PaymentVoided,
        Self::EmailSent,
        Self::EmailFailed,
        Self::AccountRegistrationAttempted,
        Self::WebhookDisabled,
    ];

    /// The routing key and the stored `event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPlaced => "order.placed",
            Self::OrderReserved => "order.reserved",
            Self::OrderConfirmed => "order.confirmed",
            Self::OrderFailed => "order.failed",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderShipped => "order.shipped",
            Self::OrderDelivered => "order.delivered",
            Self::InventoryReserved => "inventory.reserved",
            Self::InventoryReservationFailed => "inventory.reservation_failed",
            Self::InventoryReleased => "inventory.released",
            Self::InventoryAdjusted => "inventory.adjusted",
            Self::InventoryLowStock => "inventory.low_stock",
            Self::PaymentAuthorized => "payment.authorized",
            Self::PaymentDeclined => "payment.declined",
            Self::PaymentVoided => "payment.voided",
            Self::EmailSent => "email.sent",
            Self::EmailFailed => "email.failed",
            Self::AccountRegistrationAttempted => "account.registration_attempted",
            Self::WebhookDisabled => "webhook.disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The kind of aggregate whose id is the event's `subject`.
    pub fn aggregate_type(self) -> &'static str {
        match self.as_str().split_once('.').map(|(prefix, _)| prefix) {
            Some("order") => "order",
            Some("inventory") => "inventory_item",
            Some("payment") => "payment",
            Some("account") => "account",
            Some("webhook") => "webhook_endpoint",
            _ => "email",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `order.placed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub items: Vec<OrderLine>,
    pub total: Money,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
}

/// Every later order event: the order moved from one status to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusChanged {
    pub order_id: OrderId,
    /// Carried so that consumers (notifications, email) can route without a lookup.
    pub customer_id: CustomerId,
    pub status: String,
    pub previous_status: String,
    pub failure_reason: Option<FailureReason>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `inventory.reserved` and `inventory.released`: an order's stock was held or given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMovement {
    pub order_id: OrderId,
    pub lines: Vec<StockLine>,
}

/// `inventory.reservation_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationFailed {
    pub order_id: OrderId,
    pub shortages: Vec<Shortage>,
}

/// Why an item's stock or settings changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentReason {
    Created,
    Restocked,
    Repriced,
    Renamed,
    ThresholdChanged,
    Reserved,
    Released,
    Shipped,
}

/// `inventory.adjusted`: the item as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryAdjusted {
    pub sku: Sku,
    pub reason: AdjustmentReason,
    pub available: u32,
    pub reserved: u32,
    pub price: Money,
    pub low_stock_threshold: u32,
}

/// `inventory.low_stock`: available stock fell below the item's threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStock {
    pub sku: Sku,
    pub available: u32,
    pub low_stock_threshold: u32,
}

/// `payment.authorized` and `payment.voided`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentChanged {
    pub order_id: OrderId,
    pub payment_id: Uuid,
    pub amount: Money,
}

/// `payment.declined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    pub order_id: OrderId,
    pub reason: String,
}

/// `email.sent` and `email.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailDelivery {
    pub delivery_id: Uuid,
    pub order_id: Option<OrderId>,
    pub kind: String,
    pub attempts: u32,
    pub error: Option<String>,
}

/// `account.registration_attempted`: someone tried to register with the email of an existing
/// account. The registration answered as if it had worked (so it tells nobody who has an
/// account); the account's owner is told by email instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationAttempted {
    pub user_id: Uuid,
}

/// `webhook.disabled`: Orion stopped delivering to a webhook endpoint on its own (it answered
/// `410 Gone`, or failed for too long); the admins are told by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: Uuid,
    pub url: String,
    pub reason: String,
}

/// A domain event with its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    #[serde(rename = "order.placed")]
    OrderPlaced(OrderPlaced),
    #[serde(rename = "order.reserved")]
    OrderReserved(OrderStatusChanged),
    #[serde(rename = "order.confirmed")]
    OrderConfirmed(OrderStatusChanged),
    #[serde(rename = "order.failed")]
    OrderFailed(OrderStatusChanged),
    #[serde(rename = "order.cancelled")]
    OrderCancelled(OrderStatusChanged),
    #[serde(rename = "order.shipped")]
    OrderShipped(OrderStatusChanged),
    #[serde(rename = "order.delivered")]
    OrderDelivered(OrderStatusChanged),
    #[serde(rename = "inventory.reserved")]
    InventoryReserved(StockMovement),
    #[serde(rename = "inventory.reservation_failed")]
    InventoryReservationFailed(ReservationFailed),
    #[serde(rename = "inventory.released")]
    InventoryReleased(StockMovement),
    #[serde(rename = "inventory.adjusted")]
    InventoryAdjusted(InventoryAdjusted),
    #[serde(rename = "inventory.low_stock")]
    InventoryLowStock(LowStock),
    #[serde(rename = "payment.authorized")]
    PaymentAuthorized(PaymentChanged),
    #[serde(rename = "payment.declined")]
    PaymentDeclined(PaymentDeclined),
    #[serde(rename = "payment.voided")]
    PaymentVoided(PaymentChanged),
    #[serde(rename = "email.sent")]
    EmailSent(EmailDelivery),
    #[serde(rename = "email.failed")]
    EmailFailed(EmailDelivery),
    #[serde(rename = "account.registration_attempted")]
    AccountRegistrationAttempted(RegistrationAttempted),
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled(WebhookDisabled),
}

/// A stored or received event whose type or data does not match any known event.
#[derive(Debug, thiserror::Error)]
#[error("undecodable {event_type} event: {source}")]
pub struct UndecodableEvent {
    pub event_type: String,
    #[source]
    pub source: serde_json::Error,
}

impl DomainEvent {
    /// The event for an order that moved to `change.status`.
    pub(crate) fn order_status_changed(change: OrderStatusChanged) -> DomainEvent {
        match change.status.as_str() {
            "reserved" => Self::OrderReserved(change),
            "confirmed" => Self::OrderConfirmed(change),
            "failed" => Self::OrderFailed(change),
            "cancelled" => Self::OrderCancelled(change),
            "shipped" => Self::OrderShipped(change),
            _ => Self::OrderDelivered(change),
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Self::OrderPlaced(_) => EventType::OrderPlaced,
            Self::OrderReserved(_) => EventType::OrderReserved,
            Self::OrderConfirmed(_) => EventType::OrderConfirmed,
            Self::OrderFailed(_) => EventType::OrderFailed,
            Self::OrderCancelled(_) => EventType::OrderCancelled,
            Self::OrderShipped(_) => EventType::OrderShipped,
            Self::OrderDelivered(_) => EventType::OrderDelivered,
            Self::InventoryReserved(_) => EventType::InventoryReserved,
            Self::InventoryReservationFailed(_) => EventType::InventoryReservationFailed,
            Self::InventoryReleased(_) => EventType::InventoryReleased,
            Self::InventoryAdjusted(_) => EventType::InventoryAdjusted,
            Self::InventoryLowStock(_) => EventType::InventoryLowStock,
            Self::PaymentAuthorized(_) => EventType::PaymentAuthorized,
            Self::PaymentDeclined(_) => EventType::PaymentDeclined,
            Self::PaymentVoided(_) => EventType::PaymentVoided,
            Self::EmailSent(_) => EventType::EmailSent,
            Self::EmailFailed(_) => EventType::EmailFailed,
            Self::AccountRegistrationAttempted(_) => EventType::AccountRegistrationAttempted,
            Self::WebhookDisabled(_) => EventType::WebhookDisabled,
        }
    }

    /// The id of the aggregate the event is about: the CloudEvents `subject`, and the key that
    /// keeps events of one aggregate in order.
    pub fn subject(&self) -> String {
        match self {
            Self::OrderPlaced(e) => e.order_id.to_string(),
            Self::OrderReserved(e)
            | Self::OrderConfirmed(e)
            | Self::OrderFailed(e)
            | Self::OrderCancelled(e)
            | Self::OrderShipped(e)
            | Self::OrderDelivered(e) => e.order_id.to_string(),
            Self::InventoryReserved(e) | Self::InventoryReleased(e) => e.order_id.to_string(),
            Self::InventoryReservationFailed(e) => e.order_id.to_string(),
            Self::InventoryAdjusted(e) => e.sku.to_string(),
            Self::InventoryLowStock(e) => e.sku.to_string(),
            Self::PaymentAuthorized(e) | Self::PaymentVoided(e) => e.order_id.to_string(),
            Self::PaymentDeclined(e) => e.order_id.to_string(),
            Self::EmailSent(e) | Self::EmailFailed(e) => e.delivery_id.to_string(),
            Self::AccountRegistrationAttempted(e) => e.user_id.to_string(),
            Self::WebhookDisabled(e) => e.webhook_id.to_string(),
        }
    }

    /// The order this event belongs to, if any: what the order timeline is keyed by.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::OrderPlaced(e) => Some(e.order_id),
            Self::OrderReserved(e)
            | Self::OrderConfirmed(e)
            | Self::OrderFailed(e)
            | Self::OrderCancelled(e)
            | Self::OrderShipped(e)
            | Self::OrderDelivered(e) => Some(e.order_id),
            Self::InventoryReserved(e) | Self::InventoryReleased(e) => Some(e.order_id),
            Self::InventoryReservationFailed(e) => Some(e.order_id),
            Self::PaymentAuthorized(e) | Self::PaymentVoided(e) => Some(e.order_id),
            Self::PaymentDeclined(e) => Some(e.order_id),
            Self::EmailSent(e) | Self::EmailFailed(e) => e.order_id,
            Self::InventoryAdjusted(_)
            | Self::InventoryLowStock(_)
            | Self::AccountRegistrationAttempted(_)
            | Self::WebhookDisabled(_) => None,
        }
    }

    /// The payload alone, as stored in the `data` column and sent as the envelope's `data`.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or_default(),
            // Every payload is a plain struct of serialisable fields.
            _ => serde_json::Value::Null,
        }
    }

    /// Rebuilds an event from its stored type name and payload.
    pub fn from_parts(
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<DomainEvent, UndecodableEvent> {
        serde_json::from_value(serde_json::json!({ "type": event_type, "data": data })).map_err(
            |source| UndecodableEvent {
                event_type: event_type.to_owned(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn sample_events() -> Vec<DomainEvent> {
        let order_id = OrderId::new();
        let customer_id = CustomerId::new();
        let sku = Sku::parse("SKU-1").unwrap();
        let money = Money::new(100, Currency::USD).unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let change = |status: &str| OrderStatusChanged {
            order_id,
            customer_id,
            status: status.to_owned(),
            previous_status: "pending".to_owned(),
            failure_reason: (status == "failed").then_some(FailureReason::Timeout),
            at: now,
        };
        let lines = vec![StockLine {
            sku: sku.clone(),
            quantity: crate::Quantity::parse(2).unwrap(),
        }];
        let payment = PaymentChanged {
            order_id,
            payment_id: Uuid::nil(),
            amount: money,
        };
        let email = EmailDelivery {
            delivery_id: Uuid::nil(),
            order_id: Some(order_id),
            kind: "order_confirmed".into(),
            attempts: 1,
            error: None,
        };
        vec![
            DomainEvent::OrderPlaced(OrderPlaced {
                order_id,
                customer_id,
                items: vec![],
                total: money,
                placed_at: now,
            }),
            DomainEvent::order_status_changed(change("reserved")),
            DomainEvent::order_status_changed(change("confirmed")),
            DomainEvent::order_status_changed(change("failed")),
            DomainEvent::order_status_changed(change("cancelled")),
            DomainEvent::order_status_changed(change("shipped")),
            DomainEvent::order_status_changed(change("delivered")),
            DomainEvent::InventoryReserved(StockMovement {
                order_id,
                lines: lines.clone(),
            }),
            DomainEvent::InventoryReservationFailed(ReservationFailed {
                order_id,
                shortages: vec![],
            }),
            DomainEvent::InventoryReleased(StockMovement { order_id, lines }),
            DomainEvent::InventoryAdjusted(InventoryAdjusted {
                sku: sku.clone(),
                reason: AdjustmentReason::Restocked,
                available: 1,
                reserved: 0,
                price: money,
                low_stock_threshold: 0,
            }),
            DomainEvent::InventoryLowStock(LowStock {
                sku,
                available: 1,
                low_stock_threshold: 5,
            }),
            DomainEvent::PaymentAuthorized(payment.clone()),
            DomainEvent::PaymentDeclined(PaymentDeclined {
                order_id,
                reason: "declined".into(),
            }),
            DomainEvent::PaymentVoided(payment),
            DomainEvent::EmailSent(email.clone()),
            DomainEvent::EmailFailed(EmailDelivery {
                error: Some("refused".into()),
                ..email
            }),
            DomainEvent::AccountRegistrationAttempted(RegistrationAttempted {
                user_id: Uuid::now_v7(),
            }),
            DomainEvent::WebhookDisabled(WebhookDisabled {
                webhook_id: Uuid::now_v7(),
                url: "https://example.com/hooks".into(),
                reason: "it answered 410 Gone".into(),
            }),
        ]
    }

    #[test]
    fn every_event_type_has_a_sample_and_round_trips_through_its_stored_form() {
        let events = sample_events();
        let types: Vec<EventType> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, EventType::ALL.to_vec());
        for event in events {
            let event_type = event.event_type();
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
            let back = DomainEvent::from_parts(event_type.as_str(), event.data()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn unknown_types_and_bad_data_are_errors() {
        assert!(DomainEvent::from_parts("order.teleported", serde_json::json!({})).is_err());
        assert!(
            DomainEvent::from_parts("order.placed", serde_json::json!({"order_id": 5})).is_err()
        );
    }

    #[test]
    fn aggregate_types_follow_the_routing_key_prefix() {
        assert_eq!(EventType::OrderPlaced.aggregate_type(), "order");
        assert_eq!(
            EventType::InventoryLowStock.aggregate_type(),
            "inventory_item"
        );
        assert_eq!(EventType::PaymentVoided.aggregate_type(), "payment");
        assert_eq!(EventType::EmailFailed.aggregate_type(), "email");
        assert_eq!(
            EventType::AccountRegistrationAttempted.aggregate_type(),
            "account"
        );
    }
}
