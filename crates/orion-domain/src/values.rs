//! Small value objects that parse their input once, so the rest of the code can trust them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A stock-keeping unit: 1–64 characters of ASCII letters, digits, `-`, `_` or `.`, starting with
/// a letter or digit. Case is kept as given; `SKU-1` and `sku-1` are different items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self> {
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if first_ok && rest_ok && raw.len() <= Self::MAX_LEN {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::InvalidSku(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = Error;

    fn try_from(raw: String) -> Result<Self> {
        Sku::parse(&raw)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> String {
        sku.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive number of units. Bounded so that any sum of a few of them fits the database's
/// 32-bit stock counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(raw: i64) -> Result<Self> {
        match u32::try_from(raw) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(Error::InvalidQuantity(raw)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = Error;

    fn try_from(raw: i64) -> Result<Self> {
        Quantity::parse(raw)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address, trimmed and lower-cased so that one mailbox is one account.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self> {
        let normalized = raw.trim().to_lowercase();
        // The crate accepts quoted local parts and IP-literal domains; a shop wants a plain
        // mailbox at a dotted domain, which is also what SMTP relays accept without surprises.
        let plain = normalized.len() <= Self::MAX_LEN
            && !normalized.contains(['"', '[', ']', ' '])
            && normalized.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if plain && email_address::EmailAddress::is_valid(&normalized) {
            Ok(Self(normalized))
        } else {
            Err(Error::InvalidEmail(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: first character of the mailbox and the domain.
    pub fn redacted(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first = local.chars().next().unwrap_or('*');
                format!("{first}***@{domain}")
            }
            None => "***".to_owned(),
        }
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = Error;

    fn try_from(raw: String) -> Result<Self> {
        Email::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sku_accepts_catalog_style_codes() {
        for ok in ["SKU-1", "a", "TSHIRT_RED.XL", &"X".repeat(64)] {
            assert!(Sku::parse(ok).is_ok(), "{ok:?} rejected");
        }
    }

    #[test]
    fn sku_rejects_empty_long_and_odd_characters() {
        for bad in [
            "",
            "-SKU",
            "SKU 1",
            "SKU/1",
            "ÄBC",
            &"X".repeat(65),
            "sku\n",
        ] {
            assert!(Sku::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quantity_is_positive_and_bounded() {
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(i64::from(Quantity::MAX)).is_ok());
        for bad in [0, -1, i64::from(Quantity::MAX) + 1, i64::MAX] {
            assert_eq!(Quantity::parse(bad), Err(Error::InvalidQuantity(bad)));
        }
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("2.5").is_err());
    }

    #[test]
    fn email_is_normalized() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
        assert_eq!(email.redacted(), "a***@example.com");
        assert!(!format!("{email:?}").contains("lovelace"));
    }

    #[test]
    fn email_rejects_non_mailboxes() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "ada@@example.com",
            "a b@example.com",
            "\"a\"@example.com",
            "ada@example.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn parsed_skus_round_trip(raw in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
            let sku = Sku::parse(&raw).unwrap();
            prop_assert_eq!(sku.as_str(), raw.as_str());
            let json = serde_json::to_string(&sku).unwrap();
            prop_assert_eq!(serde_json::from_str::<Sku>(&json).unwrap(), sku);
        }

        #[test]
        fn sku_parse_never_panics(raw in ".*") {
            let _ = Sku::parse(&raw);
        }

        #[test]
        fn email_parse_never_panics_and_is_idempotent(raw in ".*") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email);
            }
        }
    }
}
