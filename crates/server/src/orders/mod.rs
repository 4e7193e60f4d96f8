//! Buying and fulfilling: the cart, checkout (one payment split into one order per shop), and
//! the order life cycle from payment to completion.

pub mod api;
pub mod checkout;
pub mod pages;
pub mod service;
pub mod store;
