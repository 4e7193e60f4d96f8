//! HTTP plumbing shared by every capability: the one error mapping, extractors, middleware.

pub mod auth;
pub mod client;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod page;

pub use error::{AppError, AppResult};
