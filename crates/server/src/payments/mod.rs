//! Payments behind a provider interface. Clipcart never sees a card number: the buyer's card
//! goes to the provider's form, which returns a single-use token; checkout authorises the
//! token for the amount, commits the orders, then captures (or voids if the orders failed).

pub mod testpay;

use crate::platform::http::AppError;
use clipcart_domain::money::Money;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What may be kept about a card: never the number or the CVC.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub country: String,
    /// Stable per card number, keyed by the provider's secret; used for fraud velocity.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub id: String,
    pub card: CardSummary,
}

pub trait PaymentProvider: Send + Sync + 'static {
    /// Reserves `amount` on the card behind a single-use `token`.
    fn authorize<'a>(
        &'a self,
        token: &'a str,
        amount: Money,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Authorization, AppError>>;
    fn capture<'a>(&'a self, authorization_id: &'a str) -> BoxFuture<'a, Result<(), AppError>>;
    fn void<'a>(&'a self, authorization_id: &'a str) -> BoxFuture<'a, Result<(), AppError>>;
    /// The card behind an unused token, to show "Visa •••• 4242" before the buyer confirms.
    fn describe<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<CardSummary>, AppError>>;
}
