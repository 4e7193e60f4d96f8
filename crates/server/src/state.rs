//! The application state shared by every handler.

use crate::identity::password::PasswordHasher;
use crate::payments::PaymentProvider;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use crate::platform::db::Db;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub clock: SharedClock,
    pub config: Config,
    pub hasher: PasswordHasher,
    /// Keys the hash that names an email in the sign-in throttle (shared by every node through
    /// `platform_secrets`), so the throttle tables do not reveal which emails were tried.
    pub sign_in_key: secrecy::SecretSlice<u8>,
    pub payments: Arc<dyn PaymentProvider>,
    /// The built-in test processor's own endpoints, when it is the provider.
    pub testpay: Option<Arc<crate::payments::testpay::TestProcessor>>,
    /// `__Host-` prefixed when the cookie can be Secure (see `Config::cookies_can_be_secure`).
    pub session_cookie: &'static str,
    pub csrf_cookie: &'static str,
    pub secure_cookies: bool,
    /// The long-lived cookie that recognises a browser for new-device alerts, named like the
    /// session cookie (`__Host-` when it can be Secure). See `identity::alerts`.
    pub device_cookie: &'static str,
    /// The outbox's delivery side: the SMTP transport, if any, and the delivery task's wake-up.
    pub mail: crate::platform::mail::Mailer,
    /// Encrypts and decrypts the personal and financial columns (`platform::crypto`).
    pub vault: Arc<crate::platform::crypto::Vault>,
    /// Set when this start generated `<data dir>/master.key` (the binary says so).
    pub generated_master_key: Option<crate::platform::crypto::GeneratedKey>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
