//! Orion's domain: what an order, a stock item and an order saga are, and which changes are legal.
//!
//! Nothing here performs I/O or depends on a runtime: time is an argument, identifiers and prices are
//! values that parse rather than validate, and every state change returns the events it produced.

mod error;
pub mod events;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod payment;
pub mod public;
pub mod saga;
pub mod values;

pub use error::{Error, Result};
pub use events::{DomainEvent, EventType};
pub use ids::{CustomerId, OrderId};
pub use inventory::{InventoryItem, Shortage, StockLine};
pub use money::{Currency, Money};
pub use order::{FailureReason, Order, OrderLine, OrderStatus};
pub use payment::{
    PaymentDecision, PaymentProvider, PaymentRequest, ProviderUnavailable, SimulatedPayments,
    idempotency_key,
};
pub use saga::{OrderSaga, SagaCommand, SagaDeadlines, SagaEvent, SagaStep};
pub use values::{Email, Quantity, Sku};
