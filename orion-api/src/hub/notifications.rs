//! What the hub tells whom about each domain event: the messages of the original .NET hub, with
//! the camelCase names its clients read (`orderId`, `status`).

use orion_domain::events::{OrderPlaced, OrderStatusChanged};
use orion_domain::{DomainEvent, Money};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Administrators only (the stock's news).
    Admins,
    /// Administrators and the API keys that read every order (news of all orders).
    OrderWatchers,
    /// The customer who owns the order, and administrators.
    Owner(Uuid),
}

/// One message for the clients of one audience, its argument already serialised once for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) target: &'static str,
    pub(crate) audience: Audience,
    /// A JSON object; the connection adds its `sequence` to it.
    pub(crate) payload: String,
}

pub(crate) const ORDER_STATUS_UPDATED: &str = "OrderStatusUpdated";
pub(crate) const ORDER_PLACED: &str = "OrderPlaced";
pub(crate) const INVENTORY_UPDATED: &str = "InventoryUpdated";
pub(crate) const LOW_STOCK_ALERT: &str = "LowStockAlert";

/// The routing keys the hub needs from the events exchange.
pub(crate) const BINDINGS: &[&str] = &["order.*", "inventory.adjusted", "inventory.low_stock"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderStatusUpdated<'a> {
    order_id: Uuid,
    customer_id: Uuid,
    status: &'a str,
    /// Lets a client notice it missed a change: it is not the status the client last saw.
    previous_status: Option<&'a str>,
    failure_reason: Option<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderPlacedMessage {
    order_id: Uuid,
    customer_id: Uuid,
    status: &'static str,
    total: Money,
    item_count: u64,
    #[serde(with = "time::serde::rfc3339")]
    placed_at: OffsetDateTime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InventoryUpdated<'a> {
    sku: &'a str,
    available: u32,
    reserved: u32,
    low_stock_threshold: u32,
    price: Money,
    reason: orion_domain::events::AdjustmentReason,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LowStockAlert<'a> {
    sku: &'a str,
    available: u32,
    low_stock_threshold: u32,
}

/// The hub's messages for one event; none for events clients are not told about.
pub(crate) fn for_event(event: &DomainEvent) -> Vec<Notification> {
    match event {
        DomainEvent::OrderPlaced(placed) => placed_messages(placed),
        DomainEvent::OrderReserved(change)
        | DomainEvent::OrderConfirmed(change)
        | DomainEvent::OrderFailed(change)
        | DomainEvent::OrderCancelled(change)
        | DomainEvent::OrderShipped(change)
        | DomainEvent::OrderDelivered(change) => vec![status_message(change)],
        DomainEvent::InventoryAdjusted(item) => vec![notification(
            INVENTORY_UPDATED,
            Audience::Admins,
            &InventoryUpdated {
                sku: item.sku.as_str(),
                available: item.available,
                reserved: item.reserved,
                low_stock_threshold: item.low_stock_threshold,
                price: item.price,
                reason: item.reason,
            },
        )],
        DomainEvent::InventoryLowStock(low) => vec![notification(
            LOW_STOCK_ALERT,
            Audience::Admins,
            &LowStockAlert {
                sku: low.sku.as_str(),
                available: low.available,
                low_stock_threshold: low.low_stock_threshold,
            },
        )],
        _ => Vec::new(),
    }
}

fn placed_messages(placed: &OrderPlaced) -> Vec<Notification> {
    let customer_id = placed.customer_id.as_uuid();
    let item_count = placed
        .items
        .iter()
        .map(|line| u64::from(line.quantity.get()))
        .sum();
    vec![
        notification(
            ORDER_PLACED,
            Audience::OrderWatchers,
            &OrderPlacedMessage {
                order_id: placed.order_id.as_uuid(),
                customer_id,
                status: "pending",
                total: placed.total,
                item_count,
                placed_at: placed.placed_at,
            },
        ),
        notification(
            ORDER_STATUS_UPDATED,
            Audience::Owner(customer_id),
            &OrderStatusUpdated {
                order_id: placed.order_id.as_uuid(),
                customer_id,
                status: "pending",
                previous_status: None,
                failure_reason: None,
                at: placed.placed_at,
            },
        ),
    ]
}

fn status_message(change: &OrderStatusChanged) -> Notification {
    notification(
        ORDER_STATUS_UPDATED,
        Audience::Owner(change.customer_id.as_uuid()),
        &OrderStatusUpdated {
            order_id: change.order_id.as_uuid(),
            customer_id: change.customer_id.as_uuid(),
            status: &change.status,
            previous_status: Some(&change.previous_status),
            failure_reason: change.failure_reason.map(|r| r.as_str()),
            at: change.at,
        },
    )
}

fn notification(
    target: &'static str,
    audience: Audience,
    payload: &impl Serialize,
) -> Notification {
    Notification {
        target,
        audience,
        // These structs have only plain fields: serialising them cannot fail.
        payload: serde_json::to_string(payload).unwrap_or_else(|_| "{}".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_domain::events::{AdjustmentReason, InventoryAdjusted, LowStock, PaymentDeclined};
    use orion_domain::{Currency, CustomerId, FailureReason, OrderId, Quantity, Sku};
    use serde_json::{Value, json};

    fn payload(notification: &Notification) -> Value {
        serde_json::from_str(&notification.payload).unwrap()
    }

    #[test]
    fn a_placed_order_tells_admins_and_its_owner() {
        let order_id = OrderId::new();
        let customer_id = CustomerId::new();
        let price = Money::new(1250, Currency::USD).unwrap();
        let line = |sku: &str, quantity| orion_domain::OrderLine {
            sku: Sku::parse(sku).unwrap(),
            name: sku.to_owned(),
            quantity: Quantity::parse(quantity).unwrap(),
            unit_price: price,
        };
        let messages = for_event(&DomainEvent::OrderPlaced(OrderPlaced {
            order_id,
            customer_id,
            items: vec![line("SKU-1", 2), line("SKU-2", 3)],
            total: Money::new(6250, Currency::USD).unwrap(),
            placed_at: OffsetDateTime::UNIX_EPOCH,
        }));
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].target, ORDER_PLACED);
        assert_eq!(messages[0].audience, Audience::OrderWatchers);
        assert_eq!(
            payload(&messages[0]),
            json!({"orderId": order_id.to_string(), "customerId": customer_id.to_string(),
                "status": "pending", "total": {"amount": 6250, "currency": "USD"},
                "itemCount": 5, "placedAt": "1970-01-01T00:00:00Z"})
        );
        assert_eq!(messages[1].target, ORDER_STATUS_UPDATED);
        assert_eq!(messages[1].audience, Audience::Owner(customer_id.as_uuid()));
        assert_eq!(payload(&messages[1])["status"], "pending");
        assert_eq!(payload(&messages[1])["previousStatus"], Value::Null);
    }

    #[test]
    fn a_status_change_goes_to_its_owner_with_the_reason() {
        let customer_id = CustomerId::new();
        let order_id = OrderId::new();
        let messages = for_event(&DomainEvent::OrderFailed(OrderStatusChanged {
            order_id,
            customer_id,
            status: "failed".into(),
            previous_status: "reserved".into(),
            failure_reason: Some(FailureReason::PaymentDeclined),
            at: OffsetDateTime::UNIX_EPOCH,
        }));
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].audience, Audience::Owner(customer_id.as_uuid()));
        assert_eq!(
            payload(&messages[0]),
            json!({"orderId": order_id.to_string(), "customerId": customer_id.to_string(),
                "status": "failed", "previousStatus": "reserved",
                "failureReason": "payment_declined", "at": "1970-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn stock_news_is_for_admins_and_the_rest_is_not_sent() {
        let sku = Sku::parse("SKU-9").unwrap();
        let adjusted = for_event(&DomainEvent::InventoryAdjusted(InventoryAdjusted {
            sku: sku.clone(),
            reason: AdjustmentReason::Restocked,
            available: 12,
            reserved: 3,
            price: Money::new(999, Currency::USD).unwrap(),
            low_stock_threshold: 5,
        }));
        assert_eq!(adjusted[0].target, INVENTORY_UPDATED);
        assert_eq!(adjusted[0].audience, Audience::Admins);
        let body = payload(&adjusted[0]);
        assert_eq!(
            (
                body["sku"].clone(),
                body["available"].clone(),
                body["reserved"].clone()
            ),
            (json!("SKU-9"), json!(12), json!(3))
        );
        let low = for_event(&DomainEvent::InventoryLowStock(LowStock {
            sku,
            available: 2,
            low_stock_threshold: 5,
        }));
        assert_eq!(low[0].target, LOW_STOCK_ALERT);
        assert_eq!(
            payload(&low[0]),
            json!({"sku": "SKU-9", "available": 2, "lowStockThreshold": 5})
        );
        let declined = DomainEvent::PaymentDeclined(PaymentDeclined {
            order_id: OrderId::new(),
            reason: "declined".into(),
        });
        assert!(for_event(&declined).is_empty());
    }
}
