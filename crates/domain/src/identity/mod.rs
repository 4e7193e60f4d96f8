//! Accounts: who a user is and what kind of account they hold. Password hashing is I/O-free
//! but CPU-heavy, so it lives in the server behind a bounded pool; the rules live here, in
//! `password` (length, the shipped list of common passwords, context words, zxcvbn feedback).

pub mod device;
pub mod second_factor;
pub mod staff;
pub mod throttle;

mod password;

pub use password::{
    MAX_PASSWORD, MIN_PASSWORD_SINGLE_FACTOR, MIN_PASSWORD_WITH_SECOND_FACTOR, PasswordAssessment,
    PasswordContext, PasswordRefusal, STRENGTH_CHARS, Strength, assess_password,
    check_new_password, common_password_count, is_common_password, password_refusals, strength,
};

use crate::DomainError;
use serde::{Deserialize, Serialize};

/// The kind of account. Staff of a shop are `Seller` accounts whose place in the shop is a
/// `staff::ShopAccess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Seller,
    Buyer,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Seller => "seller",
            Role::Buyer => "buyer",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "admin" => Ok(Role::Admin),
            "seller" => Ok(Role::Seller),
            "buyer" => Ok(Role::Buyer),
            _ => Err(DomainError::invalid(
                "account_type",
                "choose either buyer or seller",
            )),
        }
    }
}

/// A display name (already trimmed): 1 to 80 characters, no control characters.
pub fn check_display_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "display_name",
            "enter a name of 1 to 80 characters",
        ));
    }
    Ok(())
}

/// An email address, trimmed and lower-cased; only its rough shape is checked here because
/// the verification mail is what proves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let e = raw.trim().to_ascii_lowercase();
        let bad =
            || DomainError::invalid("email", "enter an email address such as name@example.com");
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains('@')
        {
            return Err(bad());
        }
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_checked() {
        assert!(check_display_name("Ann Lee").is_ok());
        for bad in ["", "a\u{7}b"] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_display_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").expect("ok").as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "ann@", "@x.com", "a@b", "a b@c.com", "a@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
