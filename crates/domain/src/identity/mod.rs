//! Accounts: who a user is and what kind of account they hold. Password hashing is I/O-free
//! but CPU-heavy, so it lives in the server behind a bounded pool; the rules live here.

use crate::DomainError;
use serde::{Deserialize, Serialize};

/// The three roles of the foundation. Seller staff roles arrive with the account-security work.
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

/// Minimum length of a password that is the only factor (NIST SP 800-63B rev 4).
pub const MIN_PASSWORD_SINGLE_FACTOR: usize = 15;
/// Upper bound on accepted length, well above the required 64, to bound hashing work.
pub const MAX_PASSWORD: usize = 256;

/// Checks a new password: length in characters (not bytes), no composition rules, no
/// truncation; refuses passwords made of context words (email parts, "clipcart").
pub fn check_new_password(password: &str, context: &[&str]) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_SINGLE_FACTOR {
        return Err(DomainError::invalid(
            "password",
            format!(
                "use at least {MIN_PASSWORD_SINGLE_FACTOR} characters; a few random words work well"
            ),
        ));
    }
    if chars > MAX_PASSWORD {
        return Err(DomainError::invalid(
            "password",
            format!("use at most {MAX_PASSWORD} characters"),
        ));
    }
    let lowered = password.to_lowercase();
    let mut rest = lowered.clone();
    for word in context.iter().chain(["clipcart"].iter()) {
        let w = word.trim().to_lowercase();
        if w.len() >= 3 {
            rest = rest.replace(&w, "");
        }
    }
    let distinct = rest
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if rest.chars().count() < 8 || distinct < 4 {
        return Err(DomainError::invalid(
            "password",
            "the password is too close to your email or the site name",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn password_rules_follow_nist() {
        assert!(check_new_password("short", &[]).is_err());
        assert!(check_new_password("correct horse battery", &[]).is_ok());
        // No composition rules: all lowercase letters is fine when long.
        assert!(check_new_password("thisisalongpassphrase", &[]).is_ok());
        // Built from context words.
        assert!(check_new_password("clipcartclipcart1", &[]).is_err());
        assert!(check_new_password("annexample-annexample", &["annexample"]).is_err());
        // Unicode counts characters, not bytes.
        assert!(check_new_password("ééééééééééééé", &[]).is_err());
    }
}
