//! Everything every capability leans on: database, clock, configuration, HTTP plumbing.

pub mod assets;
pub mod bench;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod mail;
pub mod openapi;
pub mod secrets;
pub mod telemetry;
