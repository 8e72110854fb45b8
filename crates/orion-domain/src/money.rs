//! Money as integer minor units of one ISO 4217 currency. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A three-letter ISO 4217 currency code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(code: &str) -> Result<Self> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(Error::InvalidCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A non-negative amount in minor units (cents for USD) of one currency.
///
/// On the wire: `{"amount": 4200, "currency": "USD"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoney {
    amount: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = Error;

    fn try_from(raw: RawMoney) -> Result<Self> {
        Money::new(raw.amount, raw.currency)
    }
}

impl Money {
    /// `amount` is in minor units and must not be negative.
    pub fn new(amount: i64, currency: Currency) -> Result<Self> {
        if amount < 0 {
            return Err(Error::NegativeAmount(amount));
        }
        Ok(Self { amount, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: 0,
            currency,
        }
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money> {
        if self.currency != other.currency {
            return Err(Error::CurrencyMismatch {
                left: self.currency.to_string(),
                right: other.currency.to_string(),
            });
        }
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(Error::AmountOverflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    pub fn checked_mul(self, factor: u32) -> Result<Money> {
        let amount = self
            .amount
            .checked_mul(i64::from(factor))
            .ok_or(Error::AmountOverflow)?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {}",
            self.amount / 100,
            self.amount % 100,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_must_be_three_upper_case_letters() {
        assert!(Currency::parse("USD").is_ok());
        for bad in ["usd", "US", "USDD", "", "U1D", "ÜSD"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn negative_amounts_are_rejected() {
        assert_eq!(
            Money::new(-1, Currency::USD),
            Err(Error::NegativeAmount(-1))
        );
    }

    #[test]
    fn adding_different_currencies_fails() {
        let eur = Currency::parse("EUR").unwrap();
        let sum = Money::new(1, Currency::USD)
            .unwrap()
            .checked_add(Money::new(1, eur).unwrap());
        assert!(matches!(sum, Err(Error::CurrencyMismatch { .. })));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let big = Money::new(i64::MAX, Currency::USD).unwrap();
        assert_eq!(big.checked_mul(2), Err(Error::AmountOverflow));
        assert_eq!(
            big.checked_add(Money::new(1, Currency::USD).unwrap()),
            Err(Error::AmountOverflow)
        );
    }

    #[test]
    fn wire_shape_round_trips_and_rejects_bad_values() {
        let money = Money::new(4200, Currency::USD).unwrap();
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(json, serde_json::json!({"amount": 4200, "currency": "USD"}));
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        assert!(serde_json::from_str::<Money>(r#"{"amount": -5, "currency": "USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 5, "currency": "usd"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 5.5, "currency": "USD"}"#).is_err());
    }

    #[test]
    fn displays_major_units() {
        assert_eq!(
            Money::new(66600, Currency::USD).unwrap().to_string(),
            "666.00 USD"
        );
    }
}
