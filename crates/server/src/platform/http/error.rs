//! The one place where errors become HTTP: problem JSON (RFC 9457) for the API, and the same
//! status and wording on an HTML error page for people.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clipcart_domain::{DomainError, FieldError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The request could not be read (malformed JSON, wrong content type).
    #[error("{1}")]
    BadRequest(StatusCode, String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A request with this Idempotency-Key is still being processed.
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    #[error("the form expired or came from another site; reload the page and try again")]
    CsrfRejected,
    /// The password was right; this account also needs its second factor (`otp`).
    #[error(
        "this account uses two-factor authentication: send the code from the authenticator app, or a recovery code, as `otp`, or a passkey assertion as `passkey`"
    )]
    SecondFactorRequired,
    /// A sensitive change needs a recent proof: a second factor (or, for an account without
    /// one, the password) within the step-up window, or a code or password sent with this
    /// request.
    #[error(
        "confirm it is you first: send a current code from the authenticator app (or a recovery code) as `otp`, or, without two-factor authentication, your password as `current_password`; or step up beforehand with `POST /me/step-up` or a passkey (`POST /me/step-up/passkey/challenges`, then `POST /me/step-up/passkey`)"
    )]
    StepUpRequired,
    /// Platform admins must have a passkey; this one has none yet.
    #[error(
        "platform admins must sign in with a passkey: register one (POST /api/v1/me/passkeys/registrations, then POST /api/v1/me/passkeys, or on the account security page) before using admin operations"
    )]
    PasskeyRequired,
    /// The account's email address is not verified yet, and this needs it (applying to sell,
    /// checking out).
    #[error(
        "verify your email address first: open the link we sent you, or ask for a new one on the security page (POST /api/v1/me/verification-email)"
    )]
    EmailNotVerified,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(e.into())
    }
}

/// RFC 9457 problem details, with Clipcart's `errors` extension listing bad fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem; documented at `/docs/problems`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Domain(d) => match d {
                DomainError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                DomainError::NotFound => StatusCode::NOT_FOUND,
                DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
                DomainError::Unauthenticated => StatusCode::UNAUTHORIZED,
                DomainError::Conflict(_) | DomainError::OutOfStock { .. } => StatusCode::CONFLICT,
                DomainError::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            },
            AppError::BadRequest(s, _) => *s,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::IdempotencyInProgress => StatusCode::CONFLICT,
            AppError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::CsrfRejected => StatusCode::FORBIDDEN,
            AppError::SecondFactorRequired => StatusCode::UNAUTHORIZED,
            AppError::StepUpRequired => StatusCode::FORBIDDEN,
            AppError::PasskeyRequired => StatusCode::FORBIDDEN,
            AppError::EmailNotVerified => StatusCode::FORBIDDEN,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem type slug.
    pub fn slug(&self) -> &'static str {
        match self {
            AppError::Domain(d) => match d {
                DomainError::Invalid(_) => "validation-failed",
                DomainError::NotFound => "not-found",
                DomainError::Forbidden(_) => "forbidden",
                DomainError::Unauthenticated => "unauthenticated",
                DomainError::Conflict(_) => "conflict",
                DomainError::OutOfStock { .. } => "out-of-stock",
                DomainError::PaymentDeclined(_) => "payment-declined",
            },
            AppError::BadRequest(..) => "malformed-request",
            AppError::PayloadTooLarge => "payload-too-large",
            AppError::IdempotencyInProgress => "idempotency-in-progress",
            AppError::IdempotencyMismatch => "idempotency-key-reused",
            AppError::CsrfRejected => "csrf-rejected",
            AppError::SecondFactorRequired => "second-factor-required",
            AppError::StepUpRequired => "step-up-required",
            AppError::PasskeyRequired => "passkey-required",
            AppError::EmailNotVerified => "email-not-verified",
            AppError::TooManyRequests { .. } => "too-many-requests",
            AppError::Internal(_) => "internal-error",
        }
    }

    pub fn title(&self) -> &'static str {
        match self.slug() {
            "validation-failed" => "Some fields are not valid",
            "not-found" => "Not found",
            "forbidden" => "Not allowed",
            "unauthenticated" => "Sign-in required",
            "conflict" => "Not possible right now",
            "out-of-stock" => "Out of stock",
            "payment-declined" => "Payment declined",
            "malformed-request" => "The request could not be read",
            "payload-too-large" => "Request too large",
            "idempotency-in-progress" => "Request still in progress",
            "idempotency-key-reused" => "Idempotency-Key reused",
            "csrf-rejected" => "Form rejected",
            "second-factor-required" => "Second factor required",
            "step-up-required" => "Confirm it is you",
            "passkey-required" => "Passkey required",
            "email-not-verified" => "Email address not verified",
            "too-many-requests" => "Too many requests",
            _ => "Something went wrong",
        }
    }

    /// What the client may read. Internal errors say nothing about the inside.
    pub fn detail(&self) -> String {
        match self {
            AppError::Domain(DomainError::Forbidden(why)) => (*why).to_string(),
            AppError::Domain(DomainError::OutOfStock { variant_id }) => {
                format!("variant {variant_id} does not have enough stock left")
            }
            AppError::Internal(_) => "an unexpected error occurred; it has been logged".into(),
            other => other.to_string(),
        }
    }

    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            AppError::Domain(DomainError::Invalid(errs)) => errs.clone(),
            _ => Vec::new(),
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/docs/problems#{}", self.slug()),
            title: self.title().into(),
            status: self.status().as_u16(),
            detail: self.detail(),
            errors: self.field_errors(),
        }
    }

    fn log(&self) {
        match self {
            AppError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            AppError::Domain(DomainError::Forbidden(why)) => {
                tracing::warn!(reason = why, "authorisation refused")
            }
            AppError::Domain(DomainError::Unauthenticated) => {
                tracing::info!("authentication required")
            }
            _ => {}
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut res = (self.status(), Json(self.problem())).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            AppError::Domain(DomainError::Unauthenticated) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::TooManyRequests { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        res
    }
}

/// Answers unknown API paths with problem JSON rather than an empty 404.
pub async fn api_not_found() -> AppError {
    AppError::Domain(DomainError::NotFound)
}
