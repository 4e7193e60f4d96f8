//! The domain's error vocabulary. The server maps each variant to HTTP exactly once
//! (`server::platform::http::error`), so rules never think about status codes.

use serde::Serialize;

/// One rejected input field, shown beside the field on a page and listed in problem JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input that breaks a rule; every offending field is listed.
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// Missing, or belonging to someone else: callers cannot tell the two apart.
    #[error("not found")]
    NotFound,
    /// Signed in, but this role may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Not signed in, or the credentials are wrong.
    #[error("authentication required")]
    Unauthenticated,
    /// The request is valid but the object is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// Not enough stock for a requested line.
    #[error("out of stock")]
    OutOfStock { variant_id: String },
    /// The payment processor refused the payment.
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Collects field errors so a form reports every problem at once, not the first one.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records the error of a parse, returning the value when it parsed.
    pub fn check<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(DomainError::Invalid(mut e)) => {
                self.0.append(&mut e);
                None
            }
            Err(other) => {
                self.0.push(FieldError::new("", other.to_string()));
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self.0))
        }
    }
}
