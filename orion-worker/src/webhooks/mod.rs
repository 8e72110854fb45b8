//! Webhooks, the worker's half: the `orion.webhooks` consumer fans each event out into one
//! delivery row per subscribed endpoint ([`fan_out`]), and a delivery loop sends what is due,
//! signed, and moves each delivery on by its answer ([`delivery`]). The rows are the durable
//! queue: an outage of the receiver, the broker or this worker delays a delivery, never loses it.

pub mod delivery;
pub mod fan_out;

pub use delivery::{DeliverySettings, WebhookDelivery};
pub use fan_out::WebhookFanOut;
