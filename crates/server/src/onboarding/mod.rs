//! Seller onboarding: a seller applies with business details; a platform admin decides.

pub mod api;
pub mod pages;
pub mod service;
pub mod store;
