//! Seller applications: what a seller must tell us, and the shop's life cycle.

use crate::DomainError;
use crate::error::Errors;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SellerType {
    Individual,
    SoleProprietor,
    Company,
}

impl SellerType {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "individual" => Ok(Self::Individual),
            "sole_proprietor" => Ok(Self::SoleProprietor),
            "company" => Ok(Self::Company),
            _ => Err(DomainError::invalid(
                "seller_type",
                "choose individual, sole_proprietor or company",
            )),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Individual => "individual",
            Self::SoleProprietor => "sole_proprietor",
            Self::Company => "company",
        }
    }
}

/// Where a shop stands. Only `Active` shops sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopStatus {
    /// Applied, waiting for the platform's review.
    Submitted,
    Active,
    Rejected,
    Suspended,
    Closed,
}

impl ShopStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Suspended => "suspended",
            Self::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "submitted" => Ok(Self::Submitted),
            "active" => Ok(Self::Active),
            "rejected" => Ok(Self::Rejected),
            "suspended" => Ok(Self::Suspended),
            "closed" => Ok(Self::Closed),
            _ => Err(DomainError::Conflict(format!("unknown shop status {s}"))),
        }
    }
    pub fn can_sell(&self) -> bool {
        matches!(self, Self::Active)
    }
}

/// A decision on a submitted application.
pub fn decide(current: ShopStatus, approve: bool) -> Result<ShopStatus, DomainError> {
    match current {
        ShopStatus::Submitted => Ok(if approve {
            ShopStatus::Active
        } else {
            ShopStatus::Rejected
        }),
        other => Err(DomainError::Conflict(format!(
            "the application is {} and cannot be decided again",
            other.as_str()
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

fn bounded(errors: &mut Errors, field: &str, value: &str, min: usize, max: usize) -> String {
    let v = value.trim();
    let n = v.chars().count();
    if n < min {
        errors.add(
            field,
            if min == 1 {
                "required".to_string()
            } else {
                format!("at least {min} characters")
            },
        );
    } else if n > max {
        errors.add(field, format!("at most {max} characters"));
    } else if v.chars().any(char::is_control) {
        errors.add(field, "contains control characters");
    }
    v.to_string()
}

impl Address {
    /// Validates every field, prefixing field names with `prefix` (e.g. `address.city`).
    pub fn validate(&self, prefix: &str, errors: &mut Errors) -> Address {
        let f = |name: &str| format!("{prefix}.{name}");
        let country = self.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.add(f("country"), "use a two-letter country code such as DE");
        }
        Address {
            line1: bounded(errors, &f("line1"), &self.line1, 1, 200),
            line2: bounded(errors, &f("line2"), &self.line2, 0, 200),
            city: bounded(errors, &f("city"), &self.city, 1, 100),
            postal_code: bounded(errors, &f("postal_code"), &self.postal_code, 1, 20),
            country,
        }
    }
}

/// What a seller submits to open a shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub business_name: String,
    pub seller_type: SellerType,
    pub address: Address,
    pub tax_id: String,
    pub currency: crate::Currency,
}

/// Raw input, exactly as received.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApplicationInput {
    pub business_name: String,
    pub seller_type: String,
    pub address: AddressInput,
    pub tax_id: String,
    pub currency: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl AddressInput {
    pub fn validate(&self, prefix: &str, errors: &mut Errors) -> Address {
        Address {
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
        }
        .validate(prefix, errors)
    }
}

/// Tax ids: 4–20 letters, digits, spaces or dashes; the per-country formats arrive with the
/// onboarding work. Stored normalised (upper case, no spaces).
pub fn parse_tax_id(raw: &str) -> Result<String, DomainError> {
    let t: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if !(4..=20).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DomainError::invalid(
            "tax_id",
            "enter the tax id as letters and digits (4 to 20)",
        ));
    }
    Ok(t)
}

impl ApplicationInput {
    pub fn parse(&self) -> Result<Application, DomainError> {
        let mut errors = Errors::new();
        let business_name = bounded(&mut errors, "business_name", &self.business_name, 2, 80);
        let seller_type = errors.check(SellerType::parse(&self.seller_type));
        let address = self.address.validate("address", &mut errors);
        let tax_id = errors.check(parse_tax_id(&self.tax_id));
        let currency = errors.check(crate::Currency::parse(self.currency.trim()));
        errors.finish()?;
        match (seller_type, tax_id, currency) {
            (Some(seller_type), Some(tax_id), Some(currency)) => Ok(Application {
                business_name,
                seller_type,
                address,
                tax_id,
                currency,
            }),
            _ => Err(DomainError::invalid("", "invalid application")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ApplicationInput {
        ApplicationInput {
            business_name: "Kite & Co".into(),
            seller_type: "company".into(),
            address: AddressInput {
                line1: "1 Main St".into(),
                line2: String::new(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "de".into(),
            },
            tax_id: "de 123-456-789".into(),
            currency: "EUR".into(),
        }
    }

    #[test]
    fn a_good_application_parses_normalised() {
        let a = input().parse().expect("valid");
        assert_eq!(a.tax_id, "DE123456789");
        assert_eq!(a.address.country, "DE");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut i = input();
        i.business_name = "x".into();
        i.seller_type = "pirate".into();
        i.tax_id = "!".into();
        i.address.city = String::new();
        match i.parse() {
            Err(DomainError::Invalid(errs)) => {
                let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(
                    fields,
                    ["business_name", "seller_type", "address.city", "tax_id"]
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn only_submitted_applications_are_decided() {
        assert_eq!(decide(ShopStatus::Submitted, true), Ok(ShopStatus::Active));
        assert_eq!(
            decide(ShopStatus::Submitted, false),
            Ok(ShopStatus::Rejected)
        );
        assert!(decide(ShopStatus::Active, true).is_err());
        assert!(ShopStatus::Active.can_sell());
        assert!(!ShopStatus::Submitted.can_sell());
    }
}
