//! Everything every capability leans on: database, clock, configuration, HTTP plumbing, the
//! vault (`crypto`, `keys`) and the audit log.

pub mod assets;
pub mod audit;
pub mod audit_pages;
pub mod bench;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod keys;
pub mod mail;
pub mod openapi;
pub mod secrets;
pub mod telemetry;
