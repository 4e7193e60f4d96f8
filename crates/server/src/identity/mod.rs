//! Identity: accounts, password sign-in, sessions for pages, bearer tokens for the API.

pub mod api;
pub mod pages;
pub mod password;
pub mod second_factor;
pub mod second_factor_store;
pub mod service;
pub mod store;
pub mod throttle;
