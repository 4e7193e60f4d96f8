//! The built-in test processor, so the whole flow runs offline. It behaves like a hosted
//! provider: its own card form and tokenisation endpoint under `/testpay`, its own tables, and
//! only documented test cards (see docs/payments.md). Card numbers live only in the request that
//! tokenises them; what is stored is brand, last 4, expiry, country and a keyed fingerprint.

use super::{Authorization, BoxFuture, CardSummary, PaymentProvider};
use crate::platform::clock::SharedClock;
use crate::platform::db::Db;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::extract::ApiJson;
use crate::platform::http::page::{
    FormErrors, PageCtx, local_path, render, render_with_status, see_other,
};
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use clipcart_domain::error::Errors;
use clipcart_domain::money::Money;
use clipcart_domain::{DomainError, ids};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};

/// A token must be used within this time.
pub const TOKEN_TTL_MS: i64 = 30 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Approve,
    Decline,
    InsufficientFunds,
    StolenCard,
    ExpiredCard,
    IncorrectCvc,
}

impl Behaviour {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Decline => "generic_decline",
            Self::InsufficientFunds => "insufficient_funds",
            Self::StolenCard => "stolen_card",
            Self::ExpiredCard => "expired_card",
            Self::IncorrectCvc => "incorrect_cvc",
        }
    }
    fn decline_message(s: &str) -> Option<&'static str> {
        match s {
            "generic_decline" => Some("the card was declined"),
            "insufficient_funds" => Some("the card has insufficient funds"),
            "stolen_card" => Some("the card was declined"),
            "expired_card" => Some("the card has expired"),
            "incorrect_cvc" => Some("the card's security code is incorrect"),
            _ => None,
        }
    }
}

/// The documented test cards: number, brand, issuing country, behaviour.
const TEST_CARDS: &[(&str, &str, &str, Behaviour)] = &[
    ("4242424242424242", "visa", "US", Behaviour::Approve),
    ("5555555555554444", "mastercard", "US", Behaviour::Approve),
    ("4000002760000016", "visa", "DE", Behaviour::Approve),
    ("4000000000000002", "visa", "US", Behaviour::Decline),
    (
        "4000000000009995",
        "visa",
        "US",
        Behaviour::InsufficientFunds,
    ),
    ("4000000000009979", "visa", "US", Behaviour::StolenCard),
    ("4000000000000069", "visa", "US", Behaviour::ExpiredCard),
    ("4000000000000127", "visa", "US", Behaviour::IncorrectCvc),
];

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

pub struct TestProcessor {
    db: Db,
    clock: SharedClock,
    fingerprint_key: SecretSlice<u8>,
}

/// Card details as typed. The number is a secret: it never reaches `Debug` output or logs.
pub struct CardInput {
    pub number: SecretString,
    pub exp_month: String,
    pub exp_year: String,
    pub cvc: SecretString,
}

impl TestProcessor {
    pub fn new(db: Db, clock: SharedClock, fingerprint_key: SecretSlice<u8>) -> Self {
        Self {
            db,
            clock,
            fingerprint_key,
        }
    }

    fn fingerprint(&self, number: &str) -> String {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.fingerprint_key.expose_secret())
                .expect("HMAC takes any key length");
        mac.update(number.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Validates a card and returns a single-use token.
    pub async fn tokenize(&self, card: &CardInput) -> AppResult<(String, CardSummary)> {
        let mut e = Errors::new();
        let number: String = card
            .number
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let known = if !(12..=19).contains(&number.len())
            || !number.bytes().all(|b| b.is_ascii_digit())
            || !luhn(&number)
        {
            e.add("number", "enter a valid card number");
            None
        } else {
            let found = TEST_CARDS.iter().find(|(n, ..)| *n == number);
            if found.is_none() {
                e.add("number", "this test processor accepts only the documented test cards, e.g. 4242 4242 4242 4242");
            }
            found
        };
        let month: i64 = card.exp_month.trim().parse().unwrap_or(0);
        let mut year: i64 = card.exp_year.trim().parse().unwrap_or(0);
        if (0..100).contains(&year) && !card.exp_year.trim().is_empty() {
            year += 2000;
        }
        let (now_year, now_month) = year_month(self.clock.now_ms());
        if !(1..=12).contains(&month) {
            e.add("exp_month", "enter the expiry month, 1 to 12");
        } else if year < now_year || (year == now_year && month < now_month) || year > now_year + 20
        {
            e.add(
                "exp_year",
                "the card's expiry date is in the past or not valid",
            );
        }
        let cvc = card.cvc.expose_secret().trim();
        if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            e.add("cvc", "enter the 3 or 4 digit security code");
        }
        e.finish()?;
        let (_, brand, country, behaviour) =
            known.ok_or_else(|| DomainError::invalid("number", "unknown card"))?;
        let summary = CardSummary {
            brand: (*brand).into(),
            last4: number[number.len() - 4..].to_string(),
            exp_month: month,
            exp_year: year,
            country: (*country).into(),
            fingerprint: self.fingerprint(&number),
        };
        let token = ids::new_id(ids::PAYMENT_TOKEN);
        sqlx::query(
            "INSERT INTO testpay_tokens (id, brand, last4, exp_month, exp_year, country, fingerprint, behaviour, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token)
        .bind(&summary.brand)
        .bind(&summary.last4)
        .bind(summary.exp_month)
        .bind(summary.exp_year)
        .bind(&summary.country)
        .bind(&summary.fingerprint)
        .bind(behaviour.as_str())
        .bind(self.clock.now_ms())
        .execute(&self.db.write)
        .await?;
        Ok((token, summary))
    }

    async fn authorize_impl(
        &self,
        token: &str,
        amount: Money,
        reference: &str,
    ) -> AppResult<Authorization> {
        let now = self.clock.now_ms();
        let mut tx = self.db.write.begin().await?;
        // Claim the token first: a token pays once, whatever happens next.
        let claimed = sqlx::query("UPDATE testpay_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND created_at > $3")
            .bind(now)
            .bind(token)
            .bind(now - TOKEN_TTL_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !claimed {
            return Err(DomainError::PaymentDeclined(
                "the payment token is unknown, expired or already used; enter the card again"
                    .into(),
            )
            .into());
        }
        let (card, behaviour): (CardSummary, String) = {
            let row: (String, String, i64, i64, String, String, String) = sqlx::query_as(
                "SELECT brand, last4, exp_month, exp_year, country, fingerprint, behaviour FROM testpay_tokens WHERE id = $1",
            )
            .bind(token)
            .fetch_one(&mut *tx)
            .await?;
            (
                CardSummary {
                    brand: row.0,
                    last4: row.1,
                    exp_month: row.2,
                    exp_year: row.3,
                    country: row.4,
                    fingerprint: row.5,
                },
                row.6,
            )
        };
        if let Some(message) = Behaviour::decline_message(&behaviour) {
            tx.commit().await?;
            tracing::info!(reason = %behaviour, "test payment declined");
            return Err(DomainError::PaymentDeclined(message.into()).into());
        }
        let id = ids::new_id("auth");
        sqlx::query(
            "INSERT INTO testpay_authorizations (id, token_id, amount_minor, currency, reference, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'authorized', $6)",
        )
        .bind(&id)
        .bind(token)
        .bind(amount.minor)
        .bind(amount.currency.code())
        .bind(reference)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Authorization { id, card })
    }

    async fn set_status(&self, id: &str, from: &str, to: &str) -> AppResult<()> {
        let moved = sqlx::query(
            "UPDATE testpay_authorizations SET status = $1 WHERE id = $2 AND status = $3",
        )
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(&self.db.write)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Err(DomainError::Conflict(format!(
                "authorisation {id} is not {from}; it cannot become {to}"
            ))
            .into());
        }
        Ok(())
    }
}

fn year_month(ms: i64) -> (i64, i64) {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (i64::from(t.year()), i64::from(u8::from(t.month())))
}

impl PaymentProvider for TestProcessor {
    fn authorize<'a>(
        &'a self,
        token: &'a str,
        amount: Money,
        reference: &'a str,
    ) -> BoxFuture<'a, AppResult<Authorization>> {
        Box::pin(self.authorize_impl(token, amount, reference))
    }
    fn capture<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(self.set_status(id, "authorized", "captured"))
    }
    fn void<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(self.set_status(id, "authorized", "voided"))
    }
    fn describe<'a>(&'a self, token: &'a str) -> BoxFuture<'a, AppResult<Option<CardSummary>>> {
        Box::pin(async move {
            let now = self.clock.now_ms();
            Ok(sqlx::query_as(
                "SELECT brand, last4, exp_month, exp_year, country, fingerprint FROM testpay_tokens \
                 WHERE id = $1 AND used_at IS NULL AND created_at > $2",
            )
            .bind(token)
            .bind(now - TOKEN_TTL_MS)
            .fetch_optional(&self.db.read)
            .await?)
        })
    }
}

// ---- HTTP: the processor's own endpoints, as a hosted provider would serve them ----

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/testpay/v1/tokens", post(create_token))
        .route("/testpay/pay", get(pay_form).post(pay))
}

fn processor(state: &AppState) -> AppResult<&TestProcessor> {
    state
        .testpay
        .as_deref()
        .ok_or_else(|| AppError::Domain(DomainError::NotFound))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    number: SecretString,
    exp_month: String,
    exp_year: String,
    cvc: SecretString,
}

#[derive(Serialize)]
struct TokenResponse {
    token: String,
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
    country: String,
}

async fn create_token(
    State(state): State<AppState>,
    ApiJson(r): ApiJson<TokenRequest>,
) -> AppResult<(StatusCode, Json<TokenResponse>)> {
    let card = CardInput {
        number: r.number,
        exp_month: r.exp_month,
        exp_year: r.exp_year,
        cvc: r.cvc,
    };
    let (token, c) = processor(&state)?.tokenize(&card).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            brand: c.brand,
            last4: c.last4,
            exp_month: c.exp_month,
            exp_year: c.exp_year,
            country: c.country,
        }),
    ))
}

#[derive(Template)]
#[template(path = "payments/pay.html")]
struct PayPage {
    ctx: PageCtx,
    return_to: String,
    amount: String,
    exp_month: String,
    exp_year: String,
    errors: FormErrors,
}

#[derive(Deserialize)]
struct PayQuery {
    return_to: Option<String>,
    amount: Option<String>,
}

async fn pay_form(Extension(csrf): Extension<CsrfToken>, Query(q): Query<PayQuery>) -> Response {
    render(&PayPage {
        ctx: PageCtx::new("Pay with card", None, &csrf),
        return_to: local_path(q.return_to.as_deref()),
        amount: q.amount.unwrap_or_default().chars().take(40).collect(),
        exp_month: String::new(),
        exp_year: String::new(),
        errors: FormErrors::default(),
    })
}

#[derive(Deserialize)]
struct PayForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    cvc: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    amount: String,
}

async fn pay(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    CsrfForm(f): CsrfForm<PayForm>,
) -> Result<Response, crate::platform::http::page::PageError> {
    let return_to = local_path(Some(&f.return_to));
    let card = CardInput {
        number: SecretString::from(f.number),
        exp_month: f.exp_month.clone(),
        exp_year: f.exp_year.clone(),
        cvc: SecretString::from(f.cvc),
    };
    match processor(&state)?.tokenize(&card).await {
        Ok((token, _)) => {
            let sep = if return_to.contains('?') { '&' } else { '?' };
            Ok(see_other(&format!("{return_to}{sep}payment_token={token}")))
        }
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            // The number and CVC are never echoed back into the page.
            let page = PayPage {
                ctx: PageCtx::new("Pay with card", None, &csrf),
                return_to,
                amount: f.amount,
                exp_month: f.exp_month,
                exp_year: f.exp_year,
                errors,
            };
            Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_cards_pass_luhn() {
        for (n, ..) in super::TEST_CARDS {
            assert!(super::luhn(n), "{n}");
        }
        assert!(!super::luhn("4242424242424241"));
    }
}
