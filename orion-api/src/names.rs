//! The API's closed sets of names as OpenAPI enums, so that generated clients get types instead
//! of strings. The wire carries the domain's own names, and each enum's values are the domain's
//! own list: a variant added there is in the document without a change here.

use orion_auth::{Role, Scope};
use orion_domain::SagaStep;
use orion_domain::names;
pub use orion_domain::public::{FailureReasonName, StatusName};
use orion_persistence::emails::{DeliveryStatus, EmailKind};
use orion_persistence::webhooks::Outcome;

names!(RoleName, "A user's role.", Role::ALL.map(Role::as_str));
names!(
    ScopeName,
    "What an API key may do.",
    Scope::ALL.map(Scope::as_str)
);
names!(
    EmailKindName,
    "A kind of email Orion sends.",
    EmailKind::ALL.map(EmailKind::as_str)
);
names!(
    EmailStatusName,
    "Where an email delivery stands.",
    DeliveryStatus::ALL.map(DeliveryStatus::as_str)
);
names!(
    WebhookEventName,
    "An event a webhook can subscribe to, or `*` for all.",
    std::iter::once(orion_webhooks::ALL_EVENTS).chain(orion_webhooks::EVENT_TYPES)
);
names!(
    OrderEventName,
    "An order's event, as a webhook's `type`.",
    orion_webhooks::EVENT_TYPES
        .into_iter()
        .filter(|event| event.starts_with("order."))
);
names!(
    WebhookOutcomeName,
    "Where a webhook delivery stands.",
    Outcome::ALL.map(Outcome::as_str)
);
names!(
    SagaStepName,
    "Where an order's saga is.",
    SagaStep::ALL.map(SagaStep::as_str)
);

#[cfg(test)]
mod tests {
    use super::*;
    use orion_domain::{FailureReason, OrderStatus};
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
