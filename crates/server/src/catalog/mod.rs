//! The catalogue: sellers' products with variants; buyers browse live ones.

pub mod api;
pub mod pages;
pub mod service;
pub mod store;
