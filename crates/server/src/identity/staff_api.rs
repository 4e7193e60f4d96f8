//! JSON API for shop staff: invitations, members, custom roles. All of it is the owner's
//! (staff get 403 whatever their role); every change needs step-up (`otp`, or
//! `current_password` for an owner without a second factor, or a recent `POST /me/step-up`).

use super::staff::{self, RoleInput, RoleView};
use super::step_up::StepUpProof;
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_staff))
        .routes(routes!(invite))
        .routes(routes!(revoke_invitation))
        .routes(routes!(change_member_role, remove_member))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
        .routes(routes!(accept_invitation))
}

#[derive(Serialize, ToSchema)]
pub struct Role {
    /// A preset key (`admin`, `catalogue`, `fulfilment`, `customer_service`, `finance`,
    /// `analyst`) or a custom role id (`rol_…`).
    pub key: String,
    pub name: String,
    pub preset: bool,
    /// Every area with `none`, `view` or `edit`.
    pub permissions: BTreeMap<String, String>,
}

impl From<RoleView> for Role {
    fn from(r: RoleView) -> Self {
        Role {
            permissions: r
                .permissions
                .all()
                .map(|(a, l)| (a.as_str().to_string(), l.as_str().to_string()))
                .collect(),
            key: r.key,
            name: r.name,
            preset: r.preset,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaffMember {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub role_name: String,
    pub joined_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: String,
    pub role_name: String,
    pub created_at: String,
    pub expires_at: String,
    /// `pending`, `accepted` or `revoked`.
    pub status: String,
}

impl Invitation {
    fn of(i: super::staff_store::InvitationRow, role_name: String) -> Self {
        Invitation {
            id: i.id,
            email: i.email,
            role: i.role,
            role_name,
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            status: i.status,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Staff {
    pub members: Vec<StaffMember>,
    /// Pending invitations that have not expired.
    pub invitations: Vec<Invitation>,
}

/// The shop's staff and pending invitations. Owner only.
#[utoipa::path(get, path = "/seller/staff", tag = "staff",
    responses((status = 200, body = Staff), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn list_staff(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<Staff>> {
    let o = staff::overview(&state, &p).await?;
    Ok(Json(Staff {
        members: o
            .members
            .into_iter()
            .map(|m| StaffMember {
                user_id: m.row.user_id,
                email: m.row.email,
                display_name: m.row.display_name,
                role: m.row.role,
                role_name: m.role_name,
                joined_at: rfc3339(m.row.created_at),
            })
            .collect(),
        invitations: o
            .invitations
            .into_iter()
            .map(|(i, name)| Invitation::of(i, name))
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub email: String,
    /// A preset key or a custom role id.
    pub role: String,
    /// Step-up: a current authenticator code or an unused recovery code...
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// ...or, for an account without a second factor, its password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// Invites someone by email. The link is mailed to that address only; it works once, for 120
/// hours; inviting the same address again replaces the earlier invitation. Owner only, with
/// step-up.
#[utoipa::path(post, path = "/seller/staff/invitations", tag = "staff", request_body = InviteRequest,
    responses((status = 201, body = Invitation), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn invite(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<InviteRequest>,
) -> AppResult<(StatusCode, Json<Invitation>)> {
    let invited = staff::invite(
        &state,
        &p,
        &client,
        &req.email,
        &req.role,
        StepUpProof::new(req.otp, req.current_password),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation::of(invited.invitation, invited.role_name)),
    ))
}

/// Revokes a pending invitation; its link stops working.
#[utoipa::path(delete, path = "/seller/staff/invitations/{invitation_id}", tag = "staff",
    params(("invitation_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn revoke_invitation(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(invitation_id): Path<String>,
) -> AppResult<StatusCode> {
    staff::revoke_invitation(&state, &p, &invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChangeRequest {
    pub role: String,
    /// Step-up: a current authenticator code or an unused recovery code...
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// ...or, for an account without a second factor, its password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// Gives a member another role; it applies from their next request. Owner only, with step-up.
#[utoipa::path(put, path = "/seller/staff/{user_id}", tag = "staff", params(("user_id" = String, Path)),
    request_body = RoleChangeRequest,
    responses((status = 200, body = Role), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn change_member_role(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<RoleChangeRequest>,
) -> AppResult<Json<Role>> {
    let role = staff::change_role(
        &state,
        &p,
        &client,
        &user_id,
        &req.role,
        StepUpProof::new(req.otp, req.current_password),
    )
    .await?;
    Ok(Json(role.into()))
}

/// Removes a member from the shop; every session and API token of theirs ends at once. Owner
/// only, with step-up (a recent `POST /me/step-up`).
#[utoipa::path(delete, path = "/seller/staff/{user_id}", tag = "staff", params(("user_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(user_id): Path<String>,
) -> AppResult<StatusCode> {
    staff::remove(&state, &p, &client, &user_id, StepUpProof::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The preset roles and the shop's custom roles. Owner only.
#[utoipa::path(get, path = "/seller/roles", tag = "staff",
    responses((status = 200, body = Vec<Role>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn list_roles(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<Vec<Role>>> {
    Ok(Json(
        staff::roles(&state, &p)
            .await?
            .into_iter()
            .map(Role::from)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// 1 to 40 characters, unique in the shop, not a preset's name.
    pub name: String,
    /// Area → `none`, `view` or `edit`. Areas: catalogue, fulfilment, customer_service,
    /// finance, analytics, marketing, shop_settings. At least one must be granted.
    pub permissions: BTreeMap<String, String>,
    /// Step-up: a current authenticator code or an unused recovery code...
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// ...or, for an account without a second factor, its password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

impl RoleRequest {
    fn input(&self) -> RoleInput {
        RoleInput {
            name: self.name.clone(),
            permissions: self
                .permissions
                .iter()
                .map(|(a, l)| (a.clone(), l.clone()))
                .collect(),
        }
    }
}

/// Creates a custom role. Owner only, with step-up.
#[utoipa::path(post, path = "/seller/roles", tag = "staff", request_body = RoleRequest,
    responses((status = 201, body = Role), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_role(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<RoleRequest>,
) -> AppResult<(StatusCode, Json<Role>)> {
    let input = req.input();
    let role = staff::create_role(
        &state,
        &p,
        &client,
        &input,
        StepUpProof::new(req.otp, req.current_password),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Changes a custom role's name or grants; its members' access changes from their next
/// request. Owner only, with step-up.
#[utoipa::path(put, path = "/seller/roles/{role_id}", tag = "staff", params(("role_id" = String, Path)),
    request_body = RoleRequest,
    responses((status = 200, body = Role), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_role(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(role_id): Path<String>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> AppResult<Json<Role>> {
    let input = req.input();
    let role = staff::update_role(
        &state,
        &p,
        &client,
        &role_id,
        &input,
        StepUpProof::new(req.otp, req.current_password),
    )
    .await?;
    Ok(Json(role.into()))
}

/// Deletes a custom role nobody holds. Owner only, with step-up (a recent `POST /me/step-up`).
#[utoipa::path(delete, path = "/seller/roles/{role_id}", tag = "staff", params(("role_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_role(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(role_id): Path<String>,
) -> AppResult<StatusCode> {
    staff::delete_role(&state, &p, &client, &role_id, StepUpProof::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation mail's link.
    pub token: String,
    /// For a new account (no Authorization header): the name to show.
    pub display_name: Option<String>,
    /// For a new account: 15 to 256 characters, checked like any new password.
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct Joined {
    pub user_id: String,
    pub shop_id: String,
    /// Whether a new account was created (then sign in with its email and password).
    pub new_account: bool,
}

/// Accepts a staff invitation. Without an Authorization header it creates a seller account
/// for the invited address with `display_name` and `password`; with one, the signed-in
/// account (which must be the invited address, a seller account without a shop) joins.
#[utoipa::path(post, path = "/staff-invitations/accept", tag = "staff", request_body = AcceptInvitationRequest,
    responses((status = 201, body = Joined), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security((), ("bearer" = [])))]
async fn accept_invitation(
    State(state): State<AppState>,
    signed_in: Option<ApiPrincipal>,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> AppResult<(StatusCode, Json<Joined>)> {
    let joined = match signed_in {
        Some(ApiPrincipal(p)) => staff::accept_as(&state, &p, &req.token).await?,
        None => {
            let password = req.password.ok_or_else(|| {
                clipcart_domain::DomainError::invalid(
                    "password",
                    "choose a password for the new account (or sign in to accept with an existing one)",
                )
            })?;
            staff::accept_with_new_account(
                &state,
                &req.token,
                req.display_name.as_deref().unwrap_or_default(),
                password,
            )
            .await?
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Joined {
            user_id: joined.user_id,
            shop_id: joined.shop_id,
            new_account: joined.new_account.is_some(),
        }),
    ))
}
