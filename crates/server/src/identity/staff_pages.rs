//! Seller-center pages for staff (owner only), the page that accepts an invitation, and the
//! "confirm it is you" step-up page that sensitive pages send people to.

use super::pages::ProofAsk;
use super::staff::{self, RoleInput};
use super::step_up::{self, StepUpProof};
use crate::platform::clock::human;
use crate::platform::http::AppError;
use crate::platform::http::auth::{PagePrincipal, Principal};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, apply_first, local_path, render_with_status,
    see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clipcart_domain::identity::staff::{Access, Area};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/seller/staff", get(staff_page))
        .route("/seller/staff/invite", post(invite))
        .route("/seller/staff/invitations/{id}/revoke", post(revoke))
        .route("/seller/staff/members/{user_id}/role", post(change_role))
        .route("/seller/staff/members/{user_id}/remove", post(remove))
        .route("/seller/staff/roles", post(create_role))
        .route("/seller/staff/roles/{role_id}/delete", post(delete_role))
        .route("/staff/invitation", get(invitation_page).post(accept))
        .route("/account/confirm", get(confirm_page).post(confirm))
}

struct MemberItem {
    user_id: String,
    name: String,
    email: String,
    role: String,
    joined: String,
}

struct InvitationItem {
    id: String,
    email: String,
    role_name: String,
    expires: String,
}

struct RoleItem {
    key: String,
    name: String,
    preset: bool,
    /// "Catalogue: edit · Orders and fulfilment: view"
    summary: String,
}

#[derive(Default)]
struct Feedback {
    notice: Option<String>,
    errors: FormErrors,
    /// Which form the errors belong to: "invite", "roles", "members".
    form: &'static str,
    invite_email: String,
    role_name: String,
}

#[derive(Template)]
#[template(path = "identity/staff.html")]
struct StaffPage {
    ctx: PageCtx,
    members: Vec<MemberItem>,
    invitations: Vec<InvitationItem>,
    roles: Vec<RoleItem>,
    areas: Vec<(&'static str, &'static str)>,
    /// Whether changes need a "confirm it is you" first.
    needs_step_up: bool,
    feedback: Feedback,
}

impl StaffPage {
    fn errors_for(&self, form: &str) -> Option<&FormErrors> {
        (self.feedback.form == form).then_some(&self.feedback.errors)
    }
}

async fn staff_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
) -> PageResult {
    render_staff(&state, &csrf, &p, Feedback::default()).await
}

async fn render_staff(
    state: &AppState,
    csrf: &CsrfToken,
    p: &Principal,
    feedback: Feedback,
) -> PageResult {
    if let Some(r) = apply_first(p) {
        return Ok(r);
    }
    let o = staff::overview(state, p).await?;
    let status = if feedback.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = StaffPage {
        ctx: PageCtx::new("Staff", Some(p), csrf),
        members: o
            .members
            .into_iter()
            .map(|m| MemberItem {
                user_id: m.row.user_id,
                name: m.row.display_name,
                email: m.row.email,
                role: m.row.role,
                joined: human(m.row.created_at),
            })
            .collect(),
        invitations: o
            .invitations
            .into_iter()
            .map(|(i, role_name)| InvitationItem {
                id: i.id,
                email: i.email,
                role_name,
                expires: human(i.expires_at),
            })
            .collect(),
        roles: o
            .roles
            .into_iter()
            .map(|r| RoleItem {
                summary: r
                    .permissions
                    .all()
                    .filter(|(_, l)| *l != Access::None)
                    .map(|(a, l)| format!("{}: {}", a.label(), l.as_str()))
                    .collect::<Vec<_>>()
                    .join(" · "),
                key: r.key,
                name: r.name,
                preset: r.preset,
            })
            .collect(),
        areas: Area::ALL.iter().map(|a| (a.as_str(), a.label())).collect(),
        needs_step_up: !step_up::is_fresh(state, p),
        feedback,
    };
    Ok(render_with_status(status, &page))
}

/// After a staff change: back to the page with a notice, or the page with the error shown
/// beside the form it belongs to. Step-up sends the person to confirm first.
async fn after(
    state: &AppState,
    csrf: &CsrfToken,
    p: &Principal,
    result: Result<String, AppError>,
    mut feedback: Feedback,
) -> PageResult {
    match result {
        Ok(notice) => {
            // A fresh page with the notice: the forms start empty again.
            let done = Feedback {
                notice: Some(notice),
                ..Feedback::default()
            };
            render_staff(state, csrf, p, done).await
        }
        Err(AppError::StepUpRequired) => Ok(see_other("/account/confirm?next=/seller/staff")),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                feedback.errors = errors;
                render_staff(state, csrf, p, feedback).await
            }
            None => Err(e.into()),
        },
    }
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> PageResult {
    let result = staff::invite(
        &state,
        &p,
        &client,
        &f.email,
        &f.role,
        StepUpProof::default(),
    )
    .await
    .map(|i| {
        format!(
            "Invitation sent to {} as {}.",
            i.invitation.email, i.role_name
        )
    });
    let feedback = Feedback {
        form: "invite",
        invite_email: f.email,
        ..Feedback::default()
    };
    after(&state, &csrf, &p, result, feedback).await
}

async fn revoke(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let result = staff::revoke_invitation(&state, &p, &id)
        .await
        .map(|()| "Invitation revoked; its link no longer works.".to_string());
    after(&state, &csrf, &p, result, Feedback::default()).await
}

#[derive(Deserialize)]
struct RoleChoice {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(user_id): Path<String>,
    CsrfForm(f): CsrfForm<RoleChoice>,
) -> PageResult {
    let result = staff::change_role(
        &state,
        &p,
        &client,
        &user_id,
        &f.role,
        StepUpProof::default(),
    )
    .await
    .map(|r| format!("Role changed to {}.", r.name));
    let feedback = Feedback {
        form: "members",
        ..Feedback::default()
    };
    after(&state, &csrf, &p, result, feedback).await
}

async fn remove(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(user_id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let result = staff::remove(&state, &p, &client, &user_id, StepUpProof::default())
        .await
        .map(|()| "Removed from the shop; their sessions were signed out.".to_string());
    let feedback = Feedback {
        form: "members",
        ..Feedback::default()
    };
    after(&state, &csrf, &p, result, feedback).await
}

async fn create_role(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> PageResult {
    let name = f.get("name").cloned().unwrap_or_default();
    let permissions = Area::ALL
        .iter()
        .filter_map(|a| {
            f.get(&format!("area_{}", a.as_str()))
                .map(|l| (a.as_str().to_string(), l.clone()))
        })
        .collect();
    let input = RoleInput {
        name: name.clone(),
        permissions,
    };
    let result = staff::create_role(&state, &p, &client, &input, StepUpProof::default())
        .await
        .map(|r| format!("Role “{}” created.", r.name));
    let feedback = Feedback {
        form: "roles",
        role_name: name,
        ..Feedback::default()
    };
    after(&state, &csrf, &p, result, feedback).await
}

async fn delete_role(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(role_id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let result = staff::delete_role(&state, &p, &client, &role_id, StepUpProof::default())
        .await
        .map(|()| "Role deleted.".to_string());
    let feedback = Feedback {
        form: "roles",
        ..Feedback::default()
    };
    after(&state, &csrf, &p, result, feedback).await
}

// ---- Accepting an invitation ----

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "identity/staff_invitation.html")]
struct InvitationPage {
    ctx: PageCtx,
    token: String,
    /// `None` when the link cannot be used any more (the reason is in `problem`).
    preview: Option<staff::InvitationPreview>,
    problem: Option<String>,
    /// Who is signed in, if anyone, and whether that is the invited address.
    signed_in_as: Option<String>,
    signed_in_matches: bool,
    display_name: String,
    errors: FormErrors,
}

async fn invitation_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    p: Option<PagePrincipal>,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    let p = p.map(|PagePrincipal(p)| p);
    render_invitation(
        &state,
        &csrf,
        p.as_ref(),
        q.token,
        String::new(),
        FormErrors::default(),
    )
    .await
}

async fn render_invitation(
    state: &AppState,
    csrf: &CsrfToken,
    p: Option<&Principal>,
    token: String,
    display_name: String,
    errors: FormErrors,
) -> PageResult {
    let (preview, problem) = match staff::preview(state, &token).await {
        Ok(v) => (Some(v), None),
        Err(e @ AppError::Domain(_)) => (None, Some(e.detail())),
        Err(e) => return Err(e.into()),
    };
    let signed_in_matches = match (&preview, p) {
        (Some(v), Some(p)) => v.invitation.email.eq_ignore_ascii_case(&p.email),
        _ => false,
    };
    let status = if errors.any() || problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &InvitationPage {
            ctx: PageCtx::new("Staff invitation", p, csrf),
            token,
            preview,
            problem,
            signed_in_as: p.map(|p| p.email.clone()),
            signed_in_matches,
            display_name,
            errors,
        },
    ))
}

#[derive(Deserialize)]
struct AcceptForm {
    token: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
}

async fn accept(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    p: Option<PagePrincipal>,
    CsrfForm(f): CsrfForm<AcceptForm>,
) -> PageResult {
    let p = p.map(|PagePrincipal(p)| p);
    let result = match &p {
        Some(p) => staff::accept_as(&state, p, &f.token).await,
        None => {
            staff::accept_with_new_account(
                &state,
                &f.token,
                &f.display_name,
                SecretString::from(f.password),
            )
            .await
        }
    };
    match result {
        Ok(joined) if joined.new_account.is_some() => {
            Ok(see_other("/signin?next=/seller&joined=1"))
        }
        Ok(_) => Ok(see_other("/seller")),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                render_invitation(&state, &csrf, p.as_ref(), f.token, f.display_name, errors).await
            }
            None => Err(e.into()),
        },
    }
}

// ---- Confirm it is you (step-up) ----

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "identity/confirm.html")]
struct ConfirmPage {
    ctx: PageCtx,
    /// Where to go once confirmed: a local path.
    next: String,
    /// A code field (TOTP), "Confirm with a passkey" (passkeys; both when the account has
    /// both), or the password — only for an account without any second factor.
    ask: ProofAsk,
    errors: FormErrors,
}

async fn confirm_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = local_path(q.next.as_deref());
    render_confirm(&state, &csrf, &p, next, FormErrors::default()).await
}

/// The confirm page (422 with `errors`); also after a refused passkey (`passkey_pages`).
pub(super) async fn render_confirm(
    state: &AppState,
    csrf: &CsrfToken,
    p: &Principal,
    next: String,
    errors: FormErrors,
) -> PageResult {
    // The page always proves anew (even inside the window): ask what a closed window asks.
    let ask = ProofAsk::outside_window(state, &p.user_id).await?;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &ConfirmPage {
            ctx: PageCtx::new("Confirm it is you", Some(p), csrf),
            next,
            ask,
            errors,
        },
    ))
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    next: String,
    #[serde(default)]
    otp: String,
    #[serde(default)]
    current_password: String,
}

async fn confirm(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    PagePrincipal(mut p): PagePrincipal,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> PageResult {
    let next = local_path(Some(&f.next));
    // This page always proves anew, even inside the window.
    p.stepped_up_at = 0;
    let proof = StepUpProof::new(
        Some(SecretString::from(f.otp)),
        Some(SecretString::from(f.current_password)),
    );
    match step_up::require(&state, &p, proof, &client).await {
        // The raised session gets a new id, as at sign-in (security.md).
        Ok(()) => Ok(super::pages::with_rotated_session(&state, &headers, see_other(&next)).await?),
        Err(AppError::StepUpRequired) => {
            let ask = ProofAsk::outside_window(&state, &p.user_id).await?;
            let errors = if ask.code {
                FormErrors {
                    fields: vec![clipcart_domain::error::FieldError::new(
                        "otp",
                        "enter a code from your authenticator app, or a recovery code",
                    )],
                    general: None,
                }
            } else if ask.passkey {
                // A password does not confirm an account with a passkey.
                FormErrors {
                    fields: vec![],
                    general: Some("Confirm with one of your passkeys.".into()),
                }
            } else {
                FormErrors {
                    fields: vec![clipcart_domain::error::FieldError::new(
                        "current_password",
                        "enter your password",
                    )],
                    general: None,
                }
            };
            render_confirm(&state, &csrf, &p, next, errors).await
        }
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => render_confirm(&state, &csrf, &p, next, errors).await,
            None => Err(e.into()),
        },
    }
}
