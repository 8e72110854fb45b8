//! The one error type of the domain: every rule a caller can break, in the domain's own words.

use crate::order::OrderStatus;
use crate::saga::SagaStep;

/// Result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A broken domain rule. Each variant is a distinct, user-explainable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid SKU {0:?}: 1 to 64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    InvalidSku(String),
    #[error("invalid quantity {0}: must be between 1 and {max}", max = crate::values::Quantity::MAX)]
    InvalidQuantity(i64),
    #[error("invalid email address {0:?}")]
    InvalidEmail(String),
    #[error("invalid currency {0:?}: expected a three-letter ISO 4217 code such as USD")]
    InvalidCurrency(String),
    #[error("invalid amount {0}: money amounts are non-negative integer minor units")]
    NegativeAmount(i64),
    #[error("currency mismatch: {left} and {right} cannot be combined")]
    CurrencyMismatch { left: String, right: String },
    #[error("amount overflow")]
    AmountOverflow,
    #[error("an order needs between 1 and {max} lines, got {got}", max = crate::order::MAX_LINES)]
    LineCount { got: usize },
    #[error("SKU {0} appears more than once in the order")]
    DuplicateLine(String),
    #[error("quantity {quantity} of {sku} exceeds the per-line limit of {max}", max = crate::order::MAX_LINE_QUANTITY)]
    LineQuantityTooLarge { sku: String, quantity: u32 },
    #[error("cannot {action} an order that is {from}")]
    IllegalTransition {
        from: OrderStatus,
        action: &'static str,
    },
    #[error("not enough stock of {sku}: requested {requested}, available {available}")]
    InsufficientStock {
        sku: String,
        requested: u32,
        available: u32,
    },
    #[error("cannot release {requested} of {sku}: only {reserved} reserved")]
    ReleaseExceedsReserved {
        sku: String,
        requested: u32,
        reserved: u32,
    },
    #[error("stock counter of {sku} would overflow")]
    StockOverflow { sku: String },
    #[error("the saga of order {order_id} cannot handle {event} in step {step}")]
    UnexpectedSagaEvent {
        order_id: String,
        step: SagaStep,
        event: &'static str,
    },
    #[error("the deadline of step {step} has not passed yet")]
    DeadlineNotReached { step: SagaStep },
}
