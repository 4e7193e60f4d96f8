//! Clipcart's integration suite: one binary, every test against a real server on a random port
//! with a fresh database, on SQLite and on PostgreSQL.

mod support;
mod support_dump;
mod support_passkey;
mod support_smtp;
mod webdriver;

mod access;
mod browser;
mod browser_passkeys;
mod browser_security;
mod browser_staff;
mod concurrency;
mod data_protection;
mod email;
mod identity;
mod passkeys;
mod password_change;
mod passwords;
mod platform;
mod sale;
mod second_factor;
mod security_baseline;
mod sign_in_security;
mod staff;
