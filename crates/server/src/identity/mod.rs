//! Identity: accounts, password sign-in, sessions for pages, bearer tokens for the API.

pub mod alerts;
pub mod api;
pub mod email;
pub mod email_api;
pub mod email_pages;
pub mod email_store;
pub mod pages;
pub mod passkey;
pub mod passkey_api;
pub mod passkey_pages;
pub mod passkey_store;
pub mod password;
pub mod second_factor;
pub mod second_factor_store;
pub mod service;
pub mod staff;
pub mod staff_api;
pub mod staff_pages;
pub mod staff_store;
pub mod step_up;
pub mod store;
pub mod throttle;
