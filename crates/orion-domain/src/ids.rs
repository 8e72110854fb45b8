//! Identifiers of aggregates: UUID v7, so that they sort by creation time in indexes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an identifier read back from storage or a message.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies an order for its whole life.
    OrderId
);
impl OrderId {
    /// Digits in an order's reference.
    pub const REFERENCE_LEN: usize = 10;

    /// The short reference people read, say and search by: the id's last ten hex digits, in
    /// capitals. A UUID v7 starts with a timestamp (every order of the same minute shares its
    /// first eight digits) and ends with random bits, so the end tells orders apart.
    pub fn reference(&self) -> String {
        let hex = self.0.simple().to_string();
        hex[hex.len() - Self::REFERENCE_LEN..].to_uppercase()
    }
}

uuid_id!(
    /// Identifies a customer (a user account with the `customer` or `admin` role).
    CustomerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_placed_together_have_references_that_differ() {
        let ids: Vec<OrderId> = (0..1000).map(|_| OrderId::new()).collect();
        let references: std::collections::HashSet<String> =
            ids.iter().map(OrderId::reference).collect();
        assert_eq!(references.len(), ids.len());
        let id: OrderId = "01a23473-0000-7000-8000-00c0ffee1234".parse().unwrap();
        assert_eq!(id.reference(), "C0FFEE1234");
    }
}
