//! Payment authorization: the `PaymentProvider` port and the deterministic decision of the
//! built-in simulator (the worker wraps it in a provider that remembers idempotency keys).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{Money, OrderId};

/// What a provider is asked to authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub order_id: OrderId,
    pub amount: Money,
    /// An opaque token from the client's payment form, if it sent one.
    pub token: Option<String>,
    /// The same for every call about this order: the provider authorizes a key once, and
    /// answers a repeated call with its first answer.
    pub idempotency_key: String,
}

impl PaymentRequest {
    pub fn new(order_id: OrderId, amount: Money, token: Option<String>) -> Self {
        Self {
            order_id,
            amount,
            token,
            idempotency_key: idempotency_key(order_id),
        }
    }
}

/// The provider-side idempotency key of an order's authorization.
pub fn idempotency_key(order_id: OrderId) -> String {
    format!("orion-order-{order_id}")
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum PaymentDecision {
    Authorized { authorization_id: String },
    Declined { reason: String },
}

/// The provider could not be reached or did not answer; the caller may retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderUnavailable(pub String);

/// A payment service, keyed by idempotency key so that every call can be repeated safely: after
/// a crash, a lost answer or an outage the caller simply asks again. Orion ships a simulator; a
/// real provider implements this trait in its own crate. Futures rather than a runtime keep this
/// crate free of I/O.
pub trait PaymentProvider: Send + Sync {
    /// A short name recorded with every payment.
    fn name(&self) -> &'static str;

    /// Authorizes `request` once per idempotency key; a repeated call returns the first answer.
    fn authorize(
        &self,
        request: &PaymentRequest,
    ) -> impl Future<Output = Result<PaymentDecision, ProviderUnavailable>> + Send;

    /// The answer the provider gave for `idempotency_key`, if it ever got the request.
    fn lookup(
        &self,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Option<PaymentDecision>, ProviderUnavailable>> + Send;

    /// Releases whatever the provider holds for `idempotency_key` (nothing, an authorization,
    /// or one already voided). Returns the authorization it voided now, if any.
    fn void(
        &self,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Option<String>, ProviderUnavailable>> + Send;
}

/// The simulator's deterministic decision: declines an order whose total is exactly 666.00 (in any currency,
/// as the original Orion did) or whose token starts with `tok_decline`; authorizes everything else.
/// Latency, where wanted, is added by the process that owns a clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedPayments;

impl SimulatedPayments {
    /// The total that is always declined, in minor units.
    pub const DECLINED_TOTAL: i64 = 66_600;
    /// Tokens starting with this are always declined.
    pub const DECLINED_TOKEN_PREFIX: &'static str = "tok_decline";

    pub fn decide(&self, request: &PaymentRequest) -> PaymentDecision {
        if request.amount.amount() == Self::DECLINED_TOTAL {
            PaymentDecision::Declined {
                reason: "card declined: amount refused by issuer".to_owned(),
            }
        } else if request
            .token
            .as_deref()
            .is_some_and(|t| t.starts_with(Self::DECLINED_TOKEN_PREFIX))
        {
            PaymentDecision::Declined {
                reason: "card declined: token refused".to_owned(),
            }
        } else {
            PaymentDecision::Authorized {
                authorization_id: format!("sim_auth_{}", request.order_id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn request(amount: i64, token: Option<&str>) -> PaymentRequest {
        PaymentRequest::new(
            OrderId::new(),
            Money::new(amount, Currency::USD).unwrap(),
            token.map(str::to_owned),
        )
    }

    #[test]
    fn declines_exactly_666() {
        let sim = SimulatedPayments;
        assert!(matches!(
            sim.decide(&request(66600, None)),
            PaymentDecision::Declined { .. }
        ));
        assert!(matches!(
            sim.decide(&request(66601, None)),
            PaymentDecision::Authorized { .. }
        ));
        assert!(matches!(
            sim.decide(&request(666, None)),
            PaymentDecision::Authorized { .. }
        ));
    }

    #[test]
    fn declines_decline_tokens() {
        let sim = SimulatedPayments;
        assert!(matches!(
            sim.decide(&request(100, Some("tok_decline_insufficient"))),
            PaymentDecision::Declined { .. }
        ));
        assert!(matches!(
            sim.decide(&request(100, Some("tok_visa"))),
            PaymentDecision::Authorized { .. }
        ));
        assert!(matches!(
            sim.decide(&request(100, Some("TOK_DECLINE"))),
            PaymentDecision::Authorized { .. }
        ));
    }

    #[test]
    fn decisions_are_deterministic() {
        let req = request(1234, Some("tok_visa"));
        assert_eq!(
            SimulatedPayments.decide(&req),
            SimulatedPayments.decide(&req)
        );
    }
}
