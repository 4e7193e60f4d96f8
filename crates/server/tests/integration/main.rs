//! Clipcart's integration suite: one binary, every test against a real server on a random port
//! with a fresh database, on SQLite and on PostgreSQL.

mod support;
mod support_dump;
mod webdriver;

mod browser;
mod browser_security;
mod concurrency;
mod identity;
mod password_change;
mod passwords;
mod platform;
mod sale;
mod second_factor;
mod sign_in_security;
