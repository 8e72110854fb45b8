//! The API's closed sets of names as OpenAPI enums, so that generated clients get types instead
//! of strings. The wire carries the domain's own names, and each enum's values are the domain's
//! own list: a variant added there is in the document without a change here.

use orion_auth::{Role, Scope};
use orion_domain::{FailureReason, OrderStatus, SagaStep};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Declares a schema-only type: a string enum of `values`, described by `description`.
macro_rules! names {
    ($name:ident, $description:literal, $values:expr) => {
        #[doc = $description]
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

names!(StatusName, "An order status.", OrderStatus::NAMES);
names!(
    FailureReasonName,
    "Why an order failed.",
    FailureReason::ALL.map(FailureReason::as_str)
);
names!(RoleName, "A user's role.", Role::ALL.map(Role::as_str));
names!(
    ScopeName,
    "What an API key may do.",
    Scope::ALL.map(Scope::as_str)
);
names!(
    SagaStepName,
    "Where an order's saga is.",
    SagaStep::ALL.map(SagaStep::as_str)
);

#[cfg(test)]
mod tests {
    use super::*;
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
