//! Staff sub-accounts: the owner invites people by email into a role (a preset or one of the
//! shop's custom roles), changes their role or removes them. The rules live in
//! `clipcart_domain::identity::staff`; enforcement is `Principal::shop` / `owned_shop`, which
//! every seller service calls, so pages and API behave alike.
//!
//! Managing staff is an owner-only area, and every change needs step-up: whoever holds the
//! owner's session for a moment must not be able to let themselves in for good.

use super::staff_store::{self as store, InvitationRow, MemberRow, RoleRow};
use super::step_up::{self, StepUpProof};
use super::store as users;
use super::store::UserRow;
use crate::platform::audit::{self, Entry, action};
use crate::platform::http::auth::Principal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::platform::mail::{self, Action, Mail};
use crate::state::AppState;
use clipcart_domain::DomainError;
use clipcart_domain::identity::staff::{
    INVITATION_LIFETIME_MS, OwnerOnly, Permissions, PresetRole, check_custom_permissions,
    check_role_name,
};
use clipcart_domain::identity::{Email, PasswordContext, Role, check_new_password};
use clipcart_domain::ids;
use secrecy::{ExposeSecret, SecretString};

/// A shop has at most this many staff, custom roles and pending invitations.
pub const MAX_STAFF: i64 = 100;
pub const MAX_CUSTOM_ROLES: usize = 50;

const ROLE_ID_PREFIX: &str = "rol";
const INVITATION_ID_PREFIX: &str = "inv";

/// A role as people see it: a preset or a custom role, with what it grants.
#[derive(Debug, Clone)]
pub struct RoleView {
    /// The preset's key or the custom role's id: what invitations and members refer to.
    pub key: String,
    pub name: String,
    pub preset: bool,
    pub permissions: Permissions,
}

impl RoleView {
    fn preset(r: PresetRole) -> Self {
        Self {
            key: r.key().into(),
            name: r.name().into(),
            preset: true,
            permissions: r.permissions(),
        }
    }

    fn custom(r: RoleRow) -> Self {
        Self {
            permissions: Permissions::decode(&r.permissions).unwrap_or_default(),
            key: r.id,
            name: r.name,
            preset: false,
        }
    }
}

pub struct Member {
    pub row: MemberRow,
    pub role_name: String,
}

pub struct Overview {
    pub shop_id: String,
    pub members: Vec<Member>,
    pub invitations: Vec<(InvitationRow, String)>,
    pub roles: Vec<RoleView>,
}

/// The presets followed by the shop's custom roles.
pub async fn roles(state: &AppState, p: &Principal) -> AppResult<Vec<RoleView>> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    all_roles(state, shop_id).await
}

async fn all_roles(state: &AppState, shop_id: &str) -> AppResult<Vec<RoleView>> {
    let mut roles: Vec<RoleView> = PresetRole::ALL.into_iter().map(RoleView::preset).collect();
    roles.extend(
        store::roles(&state.db.read, shop_id)
            .await?
            .into_iter()
            .map(RoleView::custom),
    );
    Ok(roles)
}

fn role_name(roles: &[RoleView], key: &str) -> String {
    roles
        .iter()
        .find(|r| r.key == key)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| "(deleted role)".into())
}

/// The role a key names in this shop, or a field error on `role`.
async fn resolve_role(state: &AppState, shop_id: &str, key: &str) -> AppResult<RoleView> {
    if let Some(preset) = PresetRole::parse(key) {
        return Ok(RoleView::preset(preset));
    }
    match store::role(&state.db.read, shop_id, key).await? {
        Some(r) => Ok(RoleView::custom(r)),
        None => Err(DomainError::invalid(
            "role",
            "choose one of the shop's roles (a preset key such as \"fulfilment\" or a custom role id)",
        )
        .into()),
    }
}

pub async fn overview(state: &AppState, p: &Principal) -> AppResult<Overview> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    let roles = all_roles(state, shop_id).await?;
    let members = store::members(&state.db.read, shop_id)
        .await?
        .into_iter()
        .map(|row| Member {
            role_name: role_name(&roles, &row.role),
            row,
        })
        .collect();
    let invitations = store::pending_invitations(&state.db.read, shop_id, state.now_ms())
        .await?
        .into_iter()
        .map(|i| {
            let name = role_name(&roles, &i.role);
            (i, name)
        })
        .collect();
    Ok(Overview {
        shop_id: shop_id.to_string(),
        members,
        invitations,
        roles,
    })
}

pub struct Invited {
    pub invitation: InvitationRow,
    pub role_name: String,
}

/// Invites `email` into `role`. The link goes only to that address; it works once, for 120
/// hours. Inviting the same address again replaces the earlier invitation.
pub async fn invite(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    email: &str,
    role: &str,
    proof: StepUpProof,
) -> AppResult<Invited> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?.to_string();
    let email = Email::parse(email)?;
    let role = resolve_role(state, &shop_id, role).await?;
    if email.as_str() == p.email {
        return Err(DomainError::invalid("email", "you already own this shop").into());
    }
    let pending = store::pending_invitations(&state.db.read, &shop_id, state.now_ms()).await?;
    let staff = store::count_members(&state.db.read, &shop_id).await?;
    if staff + pending.len() as i64 >= MAX_STAFF {
        return Err(DomainError::Conflict(format!(
            "a shop can have at most {MAX_STAFF} staff and pending invitations"
        ))
        .into());
    }
    step_up::require(state, p, proof, client).await?;
    let shop_name = store::shop_name(&state.db.read, &shop_id)
        .await?
        .unwrap_or_default();
    let token = ids::random_secret(20);
    let now = state.now_ms();
    let invitation = InvitationRow {
        id: ids::new_id(INVITATION_ID_PREFIX),
        shop_id: shop_id.clone(),
        email: email.as_str().to_string(),
        role: role.key.clone(),
        invited_by: p.user_id.clone(),
        created_at: now,
        expires_at: now + INVITATION_LIFETIME_MS,
        status: "pending".into(),
    };
    let mut tx = state.db.write.begin().await?;
    store::revoke_pending_for_email(&mut tx, &shop_id, email.as_str(), now).await?;
    store::insert_invitation(&mut tx, &invitation, &super::service::digest(&token)).await?;
    mail::enqueue(
        &mut tx,
        state,
        Mail {
            to: invitation.email.clone(),
            user_id: None,
            kind: "staff_invitation",
            subject: format!("{} invited you to work on {shop_name} at Clipcart", p.display_name),
            greeting: "Hello,".into(),
            paragraphs: vec![
                format!(
                    "{} ({}) invited you to join the shop {shop_name} as {}.",
                    p.display_name, p.email, role.name
                ),
                "The invitation works once and expires in 120 hours (5 days).".into(),
            ],
            action: Some(Action {
                label: "Accept the invitation".into(),
                url: state
                    .mail
                    .link(&format!("/staff/invitation?token={token}")),
            }),
            after: vec![
                "If you did not expect this invitation, ignore this mail: nothing happens until you accept.".into(),
            ],
        },
    )
    .await?;
    audit::record(
        &mut tx,
        Entry::new(now, &p.user_id, action::STAFF_INVITE, &invitation.id)
            .with("shop_id", shop_id.as_str())
            .with("role", role.key.as_str()),
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(shop_id, invitation_id = %invitation.id, role = %role.key, "staff invited");
    Ok(Invited {
        invitation,
        role_name: role.name,
    })
}

pub async fn revoke_invitation(state: &AppState, p: &Principal, id: &str) -> AppResult<()> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    if !store::revoke_invitation(&state.db.write, shop_id, id, state.now_ms()).await? {
        return Err(DomainError::NotFound.into());
    }
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::STAFF_INVITATION_REVOKE,
            id,
        )
        .with("shop_id", shop_id),
    )
    .await?;
    tracing::info!(shop_id, invitation_id = id, "staff invitation revoked");
    Ok(())
}

/// What an invitation link offers, for the page that accepts it.
pub struct InvitationPreview {
    pub invitation: InvitationRow,
    pub shop_name: String,
    pub role_name: String,
    /// Whether the invited address already has an account (it then signs in to accept).
    pub has_account: bool,
}

/// The invitation behind a link, if it can still be accepted.
pub async fn preview(state: &AppState, token: &str) -> AppResult<InvitationPreview> {
    let inv = usable_invitation(state, token).await?;
    let roles = all_roles(state, &inv.shop_id).await?;
    let shop_name = store::shop_name(&state.db.read, &inv.shop_id)
        .await?
        .unwrap_or_default();
    let has_account = users::user_by_email(&state.db.read, &inv.email)
        .await?
        .is_some();
    Ok(InvitationPreview {
        role_name: role_name(&roles, &inv.role),
        shop_name,
        has_account,
        invitation: inv,
    })
}

fn invitation_gone() -> AppError {
    DomainError::Conflict(
        "this invitation link is not valid any more: it was used, revoked or has expired; ask the shop owner for a new one"
            .into(),
    )
    .into()
}

async fn usable_invitation(state: &AppState, token: &str) -> AppResult<InvitationRow> {
    if token.is_empty() || token.len() > 100 {
        return Err(invitation_gone());
    }
    let inv = store::invitation_by_token(&state.db.read, &super::service::digest(token))
        .await?
        .ok_or_else(invitation_gone)?;
    if inv.status != "pending" || state.now_ms() >= inv.expires_at {
        return Err(invitation_gone());
    }
    Ok(inv)
}

pub struct Joined {
    pub user_id: String,
    pub shop_id: String,
    /// The new account, when the invitation created one.
    pub new_account: Option<UserRow>,
}

/// Accepts an invitation with a new account for the invited address (a seller account that
/// works for the shop). The address is proved by the link, so it starts verified.
pub async fn accept_with_new_account(
    state: &AppState,
    token: &str,
    display_name: &str,
    password: SecretString,
) -> AppResult<Joined> {
    let inv = usable_invitation(state, token).await?;
    let mut errors = clipcart_domain::error::Errors::new();
    let name = display_name.trim().to_string();
    errors.check(clipcart_domain::identity::check_display_name(&name));
    let shop_name = store::shop_name(&state.db.read, &inv.shop_id)
        .await?
        .unwrap_or_default();
    let context = PasswordContext::new()
        .email(&inv.email)
        .name(&name)
        .word(&shop_name);
    if let Err(DomainError::Invalid(refusals)) =
        check_new_password(password.expose_secret(), &context, false)
    {
        for r in refusals {
            errors.add("password", r.message);
        }
    }
    errors.finish()?;
    if users::user_by_email(&state.db.read, &inv.email)
        .await?
        .is_some()
    {
        return Err(DomainError::Conflict(
            "an account with this email already exists: sign in with it, then open the invitation link again to accept"
                .into(),
        )
        .into());
    }
    let password_hash = state.hasher.hash(password).await?;
    let now = state.now_ms();
    let user = UserRow {
        id: ids::new_id(ids::USER),
        email: inv.email.clone(),
        password_hash,
        display_name: name,
        role: Role::Seller.as_str().into(),
        created_at: now,
    };
    // The account first: the invitation records who accepted it.
    let mut tx = state.db.write.begin().await?;
    if !users::insert_user(&mut *tx, &user).await? {
        tx.rollback().await?;
        return Err(DomainError::Conflict(
            "an account with this email already exists: sign in with it, then open the invitation link again to accept"
                .into(),
        )
        .into());
    }
    if !store::accept_invitation(&mut tx, &inv.id, &user.id, now).await? {
        tx.rollback().await?;
        return Err(invitation_gone());
    }
    store::mark_email_verified(&mut tx, &user.id, now).await?;
    join(&mut tx, state, &inv, &user.id, &user.display_name, now).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(Joined {
        user_id: user.id.clone(),
        shop_id: inv.shop_id,
        new_account: Some(user),
    })
}

/// Accepts an invitation as the signed-in account, which must be the invited address and a
/// seller account without a shop of its own.
pub async fn accept_as(state: &AppState, p: &Principal, token: &str) -> AppResult<Joined> {
    let inv = usable_invitation(state, token).await?;
    if !inv.email.eq_ignore_ascii_case(&p.email) {
        return Err(DomainError::Forbidden(
            "this invitation is for another email address; sign in with that account",
        )
        .into());
    }
    if p.role != Role::Seller {
        return Err(DomainError::Conflict(
            "only seller accounts can work for a shop; ask the owner to invite another address"
                .into(),
        )
        .into());
    }
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    if store::has_shop(&mut *tx, &p.user_id).await? {
        return Err(DomainError::Conflict(
            "this account already owns or works for a shop; an account works for one shop".into(),
        )
        .into());
    }
    if !store::accept_invitation(&mut tx, &inv.id, &p.user_id, now).await? {
        return Err(invitation_gone());
    }
    join(&mut tx, state, &inv, &p.user_id, &p.display_name, now).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(Joined {
        user_id: p.user_id.clone(),
        shop_id: inv.shop_id,
        new_account: None,
    })
}

/// Adds the member and tells the owner, inside the acceptance's transaction.
async fn join(
    tx: &mut sqlx::AnyConnection,
    state: &AppState,
    inv: &InvitationRow,
    user_id: &str,
    name: &str,
    now: i64,
) -> AppResult<()> {
    if !store::insert_member(tx, &inv.shop_id, user_id, &inv.role, &inv.invited_by, now).await? {
        return Err(DomainError::Conflict(
            "this account already works for a shop; an account works for one shop".into(),
        )
        .into());
    }
    let owner_email = store::user_email(tx, &inv.invited_by)
        .await?
        .unwrap_or_default();
    mail::enqueue(
        tx,
        state,
        Mail {
            to: owner_email,
            user_id: Some(inv.invited_by.clone()),
            kind: "staff_joined",
            subject: format!("{name} joined your shop"),
            greeting: "Hello,".into(),
            paragraphs: vec![format!(
                "{name} ({}) accepted your invitation and now works for your shop.",
                inv.email
            )],
            action: Some(Action {
                label: "Review your staff".into(),
                url: state.mail.link("/seller/staff"),
            }),
            after: vec![],
        },
    )
    .await?;
    audit::record(
        tx,
        Entry::new(now, user_id, action::STAFF_JOIN, user_id)
            .with("shop_id", inv.shop_id.as_str())
            .with("role", inv.role.as_str())
            .with("invitation_id", inv.id.as_str()),
    )
    .await?;
    tracing::info!(shop_id = %inv.shop_id, user_id, role = %inv.role, "staff joined");
    Ok(())
}

pub async fn change_role(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    user_id: &str,
    role: &str,
    proof: StepUpProof,
) -> AppResult<RoleView> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    let role = resolve_role(state, shop_id, role).await?;
    step_up::require(state, p, proof, client).await?;
    if !store::set_member_role(&state.db.write, shop_id, user_id, &role.key).await? {
        return Err(DomainError::NotFound.into());
    }
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::STAFF_ROLE_CHANGE,
            user_id,
        )
        .with("shop_id", shop_id)
        .with("role", role.key.as_str()),
    )
    .await?;
    tracing::info!(shop_id, user_id, role = %role.key, "staff role changed");
    Ok(role)
}

/// Removes a member: their sessions and API tokens end at once.
pub async fn remove(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    user_id: &str,
    proof: StepUpProof,
) -> AppResult<()> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    step_up::require(state, p, proof, client).await?;
    let mut tx = state.db.write.begin().await?;
    if !store::remove_member(&mut tx, shop_id, user_id).await? {
        return Err(DomainError::NotFound.into());
    }
    audit::record(
        &mut tx,
        Entry::new(state.now_ms(), &p.user_id, action::STAFF_REMOVE, user_id)
            .with("shop_id", shop_id),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        shop_id,
        user_id,
        "staff removed; their sessions and tokens ended"
    );
    Ok(())
}

pub struct RoleInput {
    pub name: String,
    pub permissions: Vec<(String, String)>,
}

fn parse_role(input: &RoleInput) -> AppResult<(String, Permissions)> {
    let mut errors = clipcart_domain::error::Errors::new();
    let name = errors.check(check_role_name(&input.name));
    let encoded = input
        .permissions
        .iter()
        .map(|(a, l)| format!("{a}:{l}"))
        .collect::<Vec<_>>()
        .join(",");
    let permissions = errors.check(
        Permissions::decode(&encoded).and_then(|p| check_custom_permissions(&p).map(|()| p)),
    );
    errors.finish()?;
    match (name, permissions) {
        (Some(n), Some(p)) => Ok((n, p)),
        _ => Err(DomainError::invalid("name", "invalid role").into()),
    }
}

pub async fn create_role(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    input: &RoleInput,
    proof: StepUpProof,
) -> AppResult<RoleView> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    let (name, permissions) = parse_role(input)?;
    if store::roles(&state.db.read, shop_id).await?.len() >= MAX_CUSTOM_ROLES {
        return Err(DomainError::Conflict(format!(
            "a shop can have at most {MAX_CUSTOM_ROLES} custom roles"
        ))
        .into());
    }
    step_up::require(state, p, proof, client).await?;
    let row = RoleRow {
        id: ids::new_id(ROLE_ID_PREFIX),
        name,
        permissions: permissions.encode(),
        created_at: state.now_ms(),
    };
    if !store::insert_role(&state.db.write, shop_id, &row).await? {
        return Err(
            DomainError::invalid("name", "the shop already has a role of this name").into(),
        );
    }
    audit::record_alone(
        &state.db,
        Entry::new(
            row.created_at,
            &p.user_id,
            action::STAFF_ROLE_DEFINE,
            &row.id,
        )
        .with("shop_id", shop_id)
        .with("permissions", row.permissions.as_str()),
    )
    .await?;
    tracing::info!(shop_id, role_id = %row.id, "custom staff role created");
    Ok(RoleView::custom(row))
}

/// Changing a role changes what its members may do from their next request on.
pub async fn update_role(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    role_id: &str,
    input: &RoleInput,
    proof: StepUpProof,
) -> AppResult<RoleView> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    if PresetRole::parse(role_id).is_some() {
        return Err(DomainError::Conflict("preset roles cannot be changed".into()).into());
    }
    let (name, permissions) = parse_role(input)?;
    step_up::require(state, p, proof, client).await?;
    let encoded = permissions.encode();
    match store::update_role(
        &state.db.write,
        shop_id,
        role_id,
        &name,
        &encoded,
        state.now_ms(),
    )
    .await?
    {
        store::RoleUpdate::Updated => {}
        store::RoleUpdate::NotFound => return Err(DomainError::NotFound.into()),
        store::RoleUpdate::NameTaken => {
            return Err(
                DomainError::invalid("name", "the shop already has a role of this name").into(),
            );
        }
    }
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::STAFF_ROLE_DEFINE,
            role_id,
        )
        .with("shop_id", shop_id)
        .with("permissions", encoded.as_str()),
    )
    .await?;
    tracing::info!(shop_id, role_id, "custom staff role changed");
    Ok(RoleView {
        key: role_id.to_string(),
        name,
        preset: false,
        permissions,
    })
}

pub async fn delete_role(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    role_id: &str,
    proof: StepUpProof,
) -> AppResult<()> {
    let shop_id = p.owned_shop(OwnerOnly::Staff)?;
    step_up::require(state, p, proof, client).await?;
    let mut conn = state.db.write.acquire().await?;
    match store::delete_unused_role(&mut conn, shop_id, role_id).await? {
        Some(true) => Ok(()),
        Some(false) => Err(DomainError::Conflict(
            "staff or pending invitations still use this role; give them another role first".into(),
        )
        .into()),
        None => Err(DomainError::NotFound.into()),
    }
}
