//! The `Order` aggregate: its lines, its total and the only status changes it allows.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::events::{DomainEvent, OrderPlaced, OrderStatusChanged};
use crate::{CustomerId, Error, Money, OrderId, Quantity, Result, Sku};

/// Most lines one order may have.
pub const MAX_LINES: usize = 50;
/// Most units of one SKU one order may ask for.
pub const MAX_LINE_QUANTITY: u32 = 1000;

/// Why an order failed; `null` on the wire for orders that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    OutOfStock,
    PaymentDeclined,
    Timeout,
}

impl FailureReason {
    pub const ALL: [FailureReason; 3] = [Self::OutOfStock, Self::PaymentDeclined, Self::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::Timeout => "timeout",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The reason in words a customer understands.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OutOfStock => "some items in your order are out of stock",
            Self::PaymentDeclined => "the payment was declined",
            Self::Timeout => "the order could not be processed in time",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Reserved,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
    Failed(FailureReason),
}

impl OrderStatus {
    /// Every status name as stored and sent on the wire.
    pub const NAMES: [&'static str; 7] = [
        "pending",
        "reserved",
        "confirmed",
        "shipped",
        "delivered",
        "cancelled",
        "failed",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Reserved => "reserved",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Failed(_) => "failed",
        }
    }

    pub fn failure_reason(self) -> Option<FailureReason> {
        match self {
            Self::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Rebuilds a status from its stored columns; `None` for a combination that cannot exist.
    pub fn from_parts(status: &str, failure_reason: Option<&str>) -> Option<Self> {
        let status = match (status, failure_reason) {
            ("pending", None) => Self::Pending,
            ("reserved", None) => Self::Reserved,
            ("confirmed", None) => Self::Confirmed,
            ("shipped", None) => Self::Shipped,
            ("delivered", None) => Self::Delivered,
            ("cancelled", None) => Self::Cancelled,
            ("failed", Some(reason)) => Self::Failed(FailureReason::parse(reason)?),
            _ => return None,
        };
        Some(status)
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled | Self::Failed(_))
    }

    pub fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Reserved | Self::Confirmed)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One priced line of an order. The price is the catalog price at the time of placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn subtotal(&self) -> Result<Money> {
        self.unit_price.checked_mul(self.quantity.get())
    }
}

/// An order as its owner placed it and as it has moved since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    id: OrderId,
    customer_id: CustomerId,
    status: OrderStatus,
    lines: Vec<OrderLine>,
    total: Money,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

/// The stored fields of an order, for rebuilding it from persistence.
#[derive(Debug, Clone)]
pub struct OrderParts {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl Order {
    /// Places a new order: 1 to [`MAX_LINES`] lines of distinct SKUs, each of at most
    /// [`MAX_LINE_QUANTITY`] units, all priced in one currency.
    pub fn place(
        id: OrderId,
        customer_id: CustomerId,
        lines: Vec<OrderLine>,
        now: OffsetDateTime,
    ) -> Result<(Order, DomainEvent)> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(Error::LineCount { got: lines.len() });
        }
        let mut seen = HashSet::with_capacity(lines.len());
        for line in &lines {
            if !seen.insert(&line.sku) {
                return Err(Error::DuplicateLine(line.sku.to_string()));
            }
            if line.quantity.get() > MAX_LINE_QUANTITY {
                return Err(Error::LineQuantityTooLarge {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                });
            }
        }
        let total = total_of(&lines)?;
        let order = Order {
            id,
            customer_id,
            status: OrderStatus::Pending,
            lines,
            total,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let event = DomainEvent::OrderPlaced(OrderPlaced {
            order_id: id,
            customer_id,
            items: order.lines.clone(),
            total,
            placed_at: now,
        });
        Ok((order, event))
    }

    /// Rebuilds an order read back from storage.
    pub fn from_parts(parts: OrderParts) -> Result<Order> {
        let total = total_of(&parts.lines)?;
        Ok(Order {
            id: parts.id,
            customer_id: parts.customer_id,
            status: parts.status,
            lines: parts.lines,
            total,
            created_at: parts.created_at,
            updated_at: parts.updated_at,
            version: parts.version,
        })
    }

    pub fn id(&self) -> OrderId {
        self.id
    }
    pub fn customer_id(&self) -> CustomerId {
        self.customer_id
    }
    pub fn status(&self) -> OrderStatus {
        self.status
    }
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }
    pub fn total(&self) -> Money {
        self.total
    }
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
    pub fn updated_at(&self) -> OffsetDateTime {
        self.updated_at
    }
    /// The version this order was loaded or created at; persistence bumps it on every save.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Stock for every line is held.
    pub fn mark_reserved(&mut self, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("reserve", now, |s| {
            (s == OrderStatus::Pending).then_some(OrderStatus::Reserved)
        })
    }

    /// Payment is authorized.
    pub fn confirm(&mut self, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("confirm", now, |s| {
            (s == OrderStatus::Reserved).then_some(OrderStatus::Confirmed)
        })
    }

    pub fn ship(&mut self, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("ship", now, |s| {
            (s == OrderStatus::Confirmed).then_some(OrderStatus::Shipped)
        })
    }

    pub fn deliver(&mut self, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("deliver", now, |s| {
            (s == OrderStatus::Shipped).then_some(OrderStatus::Delivered)
        })
    }

    /// Cancels at the customer's or an admin's request; shipped orders cannot be cancelled.
    pub fn cancel(&mut self, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("cancel", now, |s| {
            s.is_cancellable().then_some(OrderStatus::Cancelled)
        })
    }

    /// Fails the order. Each reason belongs to the step that can produce it: stock is short only
    /// while pending, a payment is declined only once reserved, and a deadline can pass in either.
    pub fn fail(&mut self, reason: FailureReason, now: OffsetDateTime) -> Result<DomainEvent> {
        self.transition("fail", now, |s| {
            let allowed = match reason {
                FailureReason::OutOfStock => s == OrderStatus::Pending,
                FailureReason::PaymentDeclined => s == OrderStatus::Reserved,
                FailureReason::Timeout => matches!(s, OrderStatus::Pending | OrderStatus::Reserved),
            };
            allowed.then_some(OrderStatus::Failed(reason))
        })
    }

    fn transition(
        &mut self,
        action: &'static str,
        now: OffsetDateTime,
        next: impl FnOnce(OrderStatus) -> Option<OrderStatus>,
    ) -> Result<DomainEvent> {
        let previous = self.status;
        let status = next(previous).ok_or(Error::IllegalTransition {
            from: previous,
            action,
        })?;
        self.status = status;
        self.updated_at = now;
        Ok(DomainEvent::order_status_changed(OrderStatusChanged {
            order_id: self.id,
            customer_id: self.customer_id,
            status: status.as_str().to_owned(),
            previous_status: previous.as_str().to_owned(),
            failure_reason: status.failure_reason(),
            at: now,
        }))
    }
}

fn total_of(lines: &[OrderLine]) -> Result<Money> {
    let mut lines_iter = lines.iter();
    let first = lines_iter.next().ok_or(Error::LineCount { got: 0 })?;
    lines_iter.try_fold(first.subtotal()?, |sum, line| {
        sum.checked_add(line.subtotal()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, EventType};
    use proptest::prelude::*;

    fn line(sku: &str, quantity: u32, cents: i64) -> OrderLine {
        OrderLine {
            sku: Sku::parse(sku).unwrap(),
            name: format!("Item {sku}"),
            quantity: Quantity::parse(i64::from(quantity)).unwrap(),
            unit_price: Money::new(cents, Currency::USD).unwrap(),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
    }

    fn placed() -> Order {
        Order::place(
            OrderId::new(),
            CustomerId::new(),
            vec![line("A", 2, 150), line("B", 1, 1000)],
            now(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn placing_computes_total_and_emits_order_placed() {
        let (order, event) = Order::place(
            OrderId::new(),
            CustomerId::new(),
            vec![line("A", 2, 150), line("B", 1, 1000)],
            now(),
        )
        .unwrap();
        assert_eq!(order.status(), OrderStatus::Pending);
        assert_eq!(order.total(), Money::new(1300, Currency::USD).unwrap());
        assert_eq!(event.event_type(), EventType::OrderPlaced);
        assert_eq!(event.subject(), order.id().to_string());
    }

    #[test]
    fn placing_rejects_bad_line_sets() {
        let place =
            |lines| Order::place(OrderId::new(), CustomerId::new(), lines, now()).map(|_| ());
        assert_eq!(place(vec![]), Err(Error::LineCount { got: 0 }));
        let many = (0..51).map(|i| line(&format!("S{i}"), 1, 1)).collect();
        assert_eq!(place(many), Err(Error::LineCount { got: 51 }));
        assert_eq!(
            place(vec![line("A", 1, 1), line("A", 2, 1)]),
            Err(Error::DuplicateLine("A".into()))
        );
        assert!(matches!(
            place(vec![line("A", 1001, 1)]),
            Err(Error::LineQuantityTooLarge { .. })
        ));
        let mut eur = line("B", 1, 1);
        eur.unit_price = Money::new(1, Currency::parse("EUR").unwrap()).unwrap();
        assert!(matches!(
            place(vec![line("A", 1, 1), eur]),
            Err(Error::CurrencyMismatch { .. })
        ));
        assert_eq!(
            place(vec![line("A", 1000, i64::MAX / 10)]),
            Err(Error::AmountOverflow)
        );
    }

    #[test]
    fn happy_path_walks_every_status() {
        let mut order = placed();
        type Transition = fn(&mut Order, OffsetDateTime) -> Result<DomainEvent>;
        let steps: [(Transition, OrderStatus, EventType); 4] = [
            (
                Order::mark_reserved,
                OrderStatus::Reserved,
                EventType::OrderReserved,
            ),
            (
                Order::confirm,
                OrderStatus::Confirmed,
                EventType::OrderConfirmed,
            ),
            (Order::ship, OrderStatus::Shipped, EventType::OrderShipped),
            (
                Order::deliver,
                OrderStatus::Delivered,
                EventType::OrderDelivered,
            ),
        ];
        for (act, status, event_type) in steps {
            let event = act(&mut order, now()).unwrap();
            assert_eq!(order.status(), status);
            assert_eq!(event.event_type(), event_type);
        }
        assert!(order.status().is_terminal());
    }

    #[test]
    fn cancel_is_allowed_until_shipped() {
        for steps in 0..=2 {
            let mut order = placed();
            if steps >= 1 {
                order.mark_reserved(now()).unwrap();
            }
            if steps >= 2 {
                order.confirm(now()).unwrap();
            }
            let event = order.cancel(now()).unwrap();
            assert_eq!(event.event_type(), EventType::OrderCancelled);
            assert_eq!(order.status(), OrderStatus::Cancelled);
        }
        let mut shipped = placed();
        shipped.mark_reserved(now()).unwrap();
        shipped.confirm(now()).unwrap();
        shipped.ship(now()).unwrap();
        assert_eq!(
            shipped.cancel(now()),
            Err(Error::IllegalTransition {
                from: OrderStatus::Shipped,
                action: "cancel"
            })
        );
        assert_eq!(shipped.status(), OrderStatus::Shipped);
    }

    #[test]
    fn failure_reasons_belong_to_their_steps() {
        let mut pending = placed();
        assert!(pending.fail(FailureReason::PaymentDeclined, now()).is_err());
        pending.fail(FailureReason::OutOfStock, now()).unwrap();
        assert_eq!(
            pending.status(),
            OrderStatus::Failed(FailureReason::OutOfStock)
        );

        let mut reserved = placed();
        reserved.mark_reserved(now()).unwrap();
        assert!(reserved.fail(FailureReason::OutOfStock, now()).is_err());
        let event = reserved
            .fail(FailureReason::PaymentDeclined, now())
            .unwrap();
        assert_eq!(event.event_type(), EventType::OrderFailed);

        for reserve_first in [false, true] {
            let mut order = placed();
            if reserve_first {
                order.mark_reserved(now()).unwrap();
            }
            order.fail(FailureReason::Timeout, now()).unwrap();
            assert_eq!(order.status(), OrderStatus::Failed(FailureReason::Timeout));
        }
    }

    #[test]
    fn terminal_statuses_reject_everything() {
        let mut order = placed();
        order.cancel(now()).unwrap();
        assert!(order.mark_reserved(now()).is_err());
        assert!(order.confirm(now()).is_err());
        assert!(order.ship(now()).is_err());
        assert!(order.deliver(now()).is_err());
        assert!(order.cancel(now()).is_err());
        assert!(order.fail(FailureReason::Timeout, now()).is_err());
    }

    #[test]
    fn stored_status_round_trips() {
        let mut all: Vec<OrderStatus> = vec![
            OrderStatus::Pending,
            OrderStatus::Reserved,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ];
        all.extend(FailureReason::ALL.map(OrderStatus::Failed));
        for status in all {
            let reason = status.failure_reason().map(FailureReason::as_str);
            assert_eq!(
                OrderStatus::from_parts(status.as_str(), reason),
                Some(status)
            );
        }
        assert_eq!(OrderStatus::from_parts("failed", None), None);
        assert_eq!(OrderStatus::from_parts("pending", Some("timeout")), None);
        assert_eq!(OrderStatus::from_parts("lost", None), None);
    }

    /// Every edge the design allows; anything else must be refused.
    fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (from, to),
            (Pending, Reserved)
                | (Reserved, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Pending, Failed(FailureReason::OutOfStock))
                | (Reserved, Failed(FailureReason::PaymentDeclined))
                | (Pending | Reserved, Failed(FailureReason::Timeout))
                | (Pending | Reserved | Confirmed, Cancelled)
        )
    }

    #[derive(Debug, Clone, Copy)]
    enum Action {
        Reserve,
        Confirm,
        Ship,
        Deliver,
        Cancel,
        Fail(FailureReason),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Reserve),
            Just(Action::Confirm),
            Just(Action::Ship),
            Just(Action::Deliver),
            Just(Action::Cancel),
            prop::sample::select(FailureReason::ALL.to_vec()).prop_map(Action::Fail),
        ]
    }

    proptest! {
        #[test]
        fn random_actions_only_take_allowed_edges(actions in prop::collection::vec(action(), 0..30)) {
            let mut order = placed();
            for action in actions {
                let before = order.clone();
                let result = match action {
                    Action::Reserve => order.mark_reserved(now()),
                    Action::Confirm => order.confirm(now()),
                    Action::Ship => order.ship(now()),
                    Action::Deliver => order.deliver(now()),
                    Action::Cancel => order.cancel(now()),
                    Action::Fail(reason) => order.fail(reason, now()),
                };
                match result {
                    Ok(event) => {
                        prop_assert!(allowed(before.status(), order.status()), "{:?} -> {:?}", before.status(), order.status());
                        prop_assert_eq!(event.subject(), order.id().to_string());
                    }
                    Err(_) => prop_assert_eq!(&order, &before, "a refused transition changed the order"),
                }
                prop_assert_eq!(order.total(), before.total());
            }
        }
    }
}
