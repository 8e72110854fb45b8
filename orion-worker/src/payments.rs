//! The payment provider the worker uses: Orion's simulator. It decides as the domain's
//! deterministic `SimulatedPayments` does (declines 666.00 and `tok_decline*` tokens) and behaves
//! like a real provider in what matters under faults: it remembers every idempotency key, answers
//! a repeated call with its first answer, voids by key, and can be told to be slow, to be
//! unreachable, or to time out after it has authorized (for tests and the fault suite).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use orion_domain::{
    PaymentDecision, PaymentProvider, PaymentRequest, ProviderUnavailable, SimulatedPayments,
};

/// A fault the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentFault {
    /// Answers every call.
    #[default]
    None,
    /// Answers no authorization or look-up (a provider outage). Voids still work, so that
    /// compensation never waits on the provider's weather.
    Unavailable,
    /// Records every authorization, then fails the call as if its answer was lost on the way
    /// back: only a look-up by key finds out what happened.
    TimeoutAfterAuthorize,
}

impl FromStr for PaymentFault {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "none" => Ok(Self::None),
            "unavailable" => Ok(Self::Unavailable),
            "timeout-after-authorize" => Ok(Self::TimeoutAfterAuthorize),
            other => Err(format!(
                "unknown payment fault {other:?}: expected none, unavailable or timeout-after-authorize"
            )),
        }
    }
}

/// What the simulator holds for one idempotency key.
#[derive(Debug, Clone)]
struct Entry {
    decision: PaymentDecision,
    voided: bool,
}

/// The simulated provider, with its ledger of keys.
#[derive(Debug, Default)]
pub struct SimulatedProvider {
    latency: Duration,
    fault: PaymentFault,
    ledger: Mutex<HashMap<String, Entry>>,
}

impl SimulatedProvider {
    pub fn new(latency: Duration, fault: PaymentFault) -> Self {
        Self {
            latency,
            fault,
            ledger: Mutex::new(HashMap::new()),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written: recover the map.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self) -> Result<(), ProviderUnavailable> {
        match self.fault {
            PaymentFault::Unavailable => Err(ProviderUnavailable(
                "simulated outage: the provider does not answer".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn authorize(
        &self,
        request: &PaymentRequest,
    ) -> Result<PaymentDecision, ProviderUnavailable> {
        self.unavailable()?;
        // Decided and remembered when the request arrives; the answer then takes the latency
        // to come back, and a caller that gives up earlier still leaves the authorization held.
        let (decision, new) = {
            let mut ledger = self.ledger();
            match ledger.get(&request.idempotency_key) {
                Some(entry) => (entry.decision.clone(), false),
                None => {
                    let decision = SimulatedPayments.decide(request);
                    ledger.insert(
                        request.idempotency_key.clone(),
                        Entry {
                            decision: decision.clone(),
                            voided: false,
                        },
                    );
                    (decision, true)
                }
            }
        };
        if new && matches!(decision, PaymentDecision::Authorized { .. }) {
            metrics::counter!("simulated_provider_authorizations_total").increment(1);
        }
        tokio::time::sleep(self.latency).await;
        if self.fault == PaymentFault::TimeoutAfterAuthorize {
            return Err(ProviderUnavailable(
                "simulated timeout: authorized, but the answer was lost".to_owned(),
            ));
        }
        Ok(decision)
    }

    async fn lookup(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<PaymentDecision>, ProviderUnavailable> {
        self.unavailable()?;
        Ok(self
            .ledger()
            .get(idempotency_key)
            .map(|entry| entry.decision.clone()))
    }

    async fn void(&self, idempotency_key: &str) -> Result<Option<String>, ProviderUnavailable> {
        let mut ledger = self.ledger();
        let Some(entry) = ledger.get_mut(idempotency_key) else {
            return Ok(None);
        };
        match &entry.decision {
            PaymentDecision::Authorized { authorization_id } if !entry.voided => {
                entry.voided = true;
                metrics::counter!("simulated_provider_voids_total").increment(1);
                Ok(Some(authorization_id.clone()))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use orion_domain::{Currency, Money, OrderId};

    use super::*;

    fn request(amount: i64) -> PaymentRequest {
        PaymentRequest::new(
            OrderId::new(),
            Money::new(amount, Currency::USD).unwrap(),
            None,
        )
    }

    #[tokio::test]
    async fn a_key_is_authorized_once_and_voided_once() {
        let provider = SimulatedProvider::default();
        let request = request(1_000);
        let first = provider.authorize(&request).await.unwrap();
        assert_eq!(provider.authorize(&request).await.unwrap(), first);
        assert_eq!(
            provider.lookup(&request.idempotency_key).await.unwrap(),
            Some(first.clone())
        );
        let PaymentDecision::Authorized { authorization_id } = first else {
            panic!("authorized expected");
        };
        assert_eq!(
            provider.void(&request.idempotency_key).await.unwrap(),
            Some(authorization_id)
        );
        assert_eq!(provider.void(&request.idempotency_key).await.unwrap(), None);
        assert_eq!(provider.void("never-seen").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_lost_answer_is_found_by_key() {
        let provider = SimulatedProvider::new(Duration::ZERO, PaymentFault::TimeoutAfterAuthorize);
        let request = request(1_000);
        assert!(provider.authorize(&request).await.is_err());
        assert!(matches!(
            provider.lookup(&request.idempotency_key).await.unwrap(),
            Some(PaymentDecision::Authorized { .. })
        ));
    }

    #[tokio::test]
    async fn an_unavailable_provider_answers_nothing_but_still_voids() {
        let provider = SimulatedProvider::new(Duration::ZERO, PaymentFault::Unavailable);
        let request = request(1_000);
        assert!(provider.authorize(&request).await.is_err());
        assert!(provider.lookup(&request.idempotency_key).await.is_err());
        assert_eq!(provider.void(&request.idempotency_key).await.unwrap(), None);
        assert!("bogus".parse::<PaymentFault>().is_err());
    }
}
