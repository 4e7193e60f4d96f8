//! Clipcart's business rules. Everything here is pure: no I/O, no async, and no clock reads —
//! the current time is always a parameter, so every deadline is testable by passing a value.

pub mod catalog;
pub mod checkout;
pub mod error;
pub mod identity;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod onboarding;
pub mod orders;
pub mod page;

pub use error::{DomainError, FieldError};
pub use money::{Currency, Money};
