//! Money is an integer count of minor units plus an ISO 4217 currency. No floats anywhere.

use crate::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code Clipcart accepts, with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(&'static str, u8);

const CURRENCIES: &[(&str, u8)] = &[
    ("EUR", 2),
    ("USD", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("SEK", 2),
    ("PLN", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("SGD", 2),
    ("MYR", 2),
    ("THB", 2),
    ("PHP", 2),
    ("IDR", 2),
    ("VND", 0),
    ("JPY", 0),
    ("KRW", 0),
    ("MXN", 2),
    ("BRL", 2),
];

impl Currency {
    pub fn parse(code: &str) -> Result<Self, DomainError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(c, d)| Currency(c, d))
            .ok_or_else(|| {
                DomainError::invalid("currency", format!("unsupported currency code {code:?}"))
            })
    }

    pub fn code(&self) -> &'static str {
        self.0
    }

    pub fn minor_digits(&self) -> u8 {
        self.1
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.0.to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The largest amount any single price or total may reach: 10^12 minor units. Keeps every sum of
/// a bounded number of lines far from i64 overflow.
pub const MAX_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, DomainError> {
        if !(0..=MAX_MINOR).contains(&minor) {
            return Err(DomainError::invalid(
                "amount",
                format!("amount must be between 0 and {MAX_MINOR} minor units"),
            ));
        }
        Ok(Self { minor, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        if self.currency != other.currency {
            return Err(DomainError::invalid(
                "currency",
                "amounts in different currencies cannot be added",
            ));
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money {
                minor,
                currency: self.currency,
            })
            .ok_or_else(|| DomainError::invalid("amount", "amount too large"))
    }

    pub fn checked_mul(self, qty: i64) -> Result<Money, DomainError> {
        self.minor
            .checked_mul(qty)
            .map(|minor| Money {
                minor,
                currency: self.currency,
            })
            .ok_or_else(|| DomainError::invalid("amount", "amount too large"))
    }

    /// Parses a decimal string such as "12.50" in this currency's minor units; refuses extra
    /// precision rather than rounding it away.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, DomainError> {
        let bad = || DomainError::invalid("price", "enter an amount such as 12.50");
        let text = text.trim();
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
            return Err(bad());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits = usize::from(currency.minor_digits());
        if frac.len() > digits {
            return Err(DomainError::invalid(
                "price",
                format!("{} allows at most {digits} decimal places", currency.code()),
            ));
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let frac_padded = format!("{frac:0<digits$}");
        let frac: i64 = if digits == 0 {
            0
        } else {
            frac_padded.parse().map_err(|_| bad())?
        };
        let minor = whole
            .checked_mul(10_i64.pow(u32::from(currency.minor_digits())))
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(bad)?;
        Money::new(minor, currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.minor_digits());
        if digits == 0 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let scale = 10_i64.pow(digits);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let scale = scale.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR is supported")
    }

    #[test]
    fn parses_and_formats_decimal_amounts() {
        let m = Money::parse_decimal("12.5", eur()).expect("valid");
        assert_eq!(m.minor, 1250);
        assert_eq!(m.to_string(), "12.50 EUR");
        let yen = Money::parse_decimal("1200", Currency::parse("JPY").expect("JPY")).expect("ok");
        assert_eq!(yen.to_string(), "1200 JPY");
        assert!(Money::parse_decimal("1.234", eur()).is_err());
        assert!(Money::parse_decimal("-1", eur()).is_err());
        assert!(Money::parse_decimal("1e3", eur()).is_err());
        assert!(Money::parse_decimal("", eur()).is_err());
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn refuses_mixed_currencies() {
        let a = Money::zero(eur());
        let b = Money::zero(Currency::parse("USD").expect("USD"));
        assert!(a.checked_add(b).is_err());
    }

    proptest! {
        #[test]
        fn decimal_round_trip(minor in 0i64..MAX_MINOR) {
            let m = Money::new(minor, eur()).expect("in range");
            let text = m.to_string();
            let number = text.split(' ').next().expect("has number");
            prop_assert_eq!(Money::parse_decimal(number, eur()).expect("parses"), m);
        }
    }
}
