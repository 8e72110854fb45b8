//! The API's closed sets of names as OpenAPI enums, so that generated clients get types instead
//! of strings. The wire carries the domain's own names; these enums exist only for the document,
//! and the tests below hold each to the domain's list, so the two cannot drift apart.

use serde::Serialize;
use utoipa::ToSchema;

/// An order status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Pending,
    Reserved,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
    Failed,
}

/// Why an order failed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReasonName {
    OutOfStock,
    PaymentDeclined,
    Timeout,
}

/// A user's role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Customer,
    Admin,
}

/// What an API key may do.
#[derive(Debug, Serialize, ToSchema)]
pub enum ScopeName {
    #[serde(rename = "orders:read")]
    OrdersRead,
    #[serde(rename = "orders:write")]
    OrdersWrite,
    #[serde(rename = "inventory:read")]
    InventoryRead,
}

/// Where an order's saga is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStepName {
    ReservingStock,
    AuthorizingPayment,
    AwaitingShipment,
    Shipped,
    Completed,
    Failed,
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_auth::{Role, Scope};
    use orion_domain::{FailureReason, OrderStatus, SagaStep};
    use utoipa::PartialSchema;

    /// The values of a string enum's schema, in order.
    fn values<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("not an enum: {schema}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn strings(names: impl IntoIterator<Item = &'static str>) -> Vec<String> {
        names.into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn each_enum_is_exactly_the_domains_set() {
        assert_eq!(values::<StatusName>(), strings(OrderStatus::NAMES));
        assert_eq!(
            values::<FailureReasonName>(),
            strings(FailureReason::ALL.map(FailureReason::as_str))
        );
        assert_eq!(values::<RoleName>(), strings(Role::ALL.map(Role::as_str)));
        assert_eq!(
            values::<ScopeName>(),
            strings(Scope::ALL.map(Scope::as_str))
        );
        assert_eq!(
            values::<SagaStepName>(),
            strings(SagaStep::ALL.map(SagaStep::as_str))
        );
    }
}
