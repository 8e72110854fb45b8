//! Orion's public shapes of an order: what `GET /api/orders/{id}` answers and what an order's
//! webhook carries, defined once for both. With the `openapi` feature they also describe
//! themselves for the API's document.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{FailureReason, Money, Order, OrderLine};

/// Declares a schema-only type: a string enum of `values`, described by `description`, so that
/// generated clients get types instead of strings.
#[cfg(feature = "openapi")]
#[macro_export]
macro_rules! names {
    ($name:ident, $description:literal, $values:expr) => {
        #[doc = $description]
        #[derive(Debug)]
        pub struct $name;

        impl $crate::public::utoipa::PartialSchema for $name {
            fn schema() -> $crate::public::utoipa::openapi::RefOr<
                $crate::public::utoipa::openapi::schema::Schema,
            > {
                $crate::public::utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type($crate::public::utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl $crate::public::utoipa::ToSchema for $name {}
    };
}

#[cfg(feature = "openapi")]
#[doc(hidden)]
pub use utoipa;

#[cfg(feature = "openapi")]
names!(StatusName, "An order status.", crate::OrderStatus::NAMES);
#[cfg(feature = "openapi")]
names!(
    FailureReasonName,
    "Why an order failed.",
    FailureReason::ALL.map(FailureReason::as_str)
);

/// An amount in minor units (cents) of a currency. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"amount": 4200, "currency": "USD"})))]
pub struct MoneyBody {
    /// Minor units, e.g. cents; not negative.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z]{3}$", example = "USD"))]
    pub currency: String,
}

impl From<Money> for MoneyBody {
    fn from(money: Money) -> Self {
        Self {
            amount: money.amount(),
            currency: money.currency().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderItemResponse {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: MoneyBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderResponse {
    pub id: Uuid,
    pub customer_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = StatusName))]
    pub status: String,
    /// Set for failed orders, else null.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<FailureReasonName>))]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub failure_reason: Option<String>,
    pub items: Vec<OrderItemResponse>,
    pub total: MoneyBody,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&OrderLine> for OrderItemResponse {
    fn from(line: &OrderLine) -> Self {
        Self {
            sku: line.sku.to_string(),
            name: line.name.clone(),
            quantity: line.quantity.get(),
            unit_price: line.unit_price.into(),
        }
    }
}

impl From<&Order> for OrderResponse {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id().as_uuid(),
            customer_id: order.customer_id().as_uuid(),
            status: order.status().as_str().to_owned(),
            failure_reason: order
                .status()
                .failure_reason()
                .map(|r| r.as_str().to_owned()),
            items: order.lines().iter().map(OrderItemResponse::from).collect(),
            total: order.total().into(),
            created_at: order.created_at(),
            updated_at: order.updated_at(),
        }
    }
}

impl OrderResponse {
    /// The order as it stood when it entered `status` at `at` (with `reason` if it failed): an
    /// event's webhook shows the order of its moment, even when the order has moved on since.
    pub fn as_of(
        mut self,
        status: &str,
        reason: Option<FailureReason>,
        at: OffsetDateTime,
    ) -> Self {
        status.clone_into(&mut self.status);
        self.failure_reason = reason.map(|r| r.as_str().to_owned());
        self.updated_at = at;
        self
    }
}

/// The data of an `inventory.low_stock` webhook: an item whose available stock fell below its
/// threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LowStockAlert {
    pub sku: String,
    pub name: String,
    pub available: u32,
    pub low_stock_threshold: u32,
}
