//! The admin audit page: `/admin/audit`, newest entries first, filtered by action, keyset
//! paginated by seq.

use super::audit::{self, AuditRow};
use crate::platform::clock::human;
use crate::platform::http::AppResult;
use crate::platform::http::auth::{PagePrincipal, Principal};
use crate::platform::http::csrf::CsrfToken;
use crate::platform::http::page::{PageCtx, PageResult, render};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Router};
use clipcart_domain::DomainError;
use serde::Deserialize;

/// Entries per page.
const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit_page))
}

pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    /// The `before` of the next (older) page.
    pub next_before: Option<i64>,
}

/// One page of the log, for platform admins only.
pub async fn entries(
    state: &AppState,
    p: &Principal,
    action: Option<&str>,
    before: Option<i64>,
) -> AppResult<AuditPage> {
    crate::identity::passkey::require_admin(state, p).await?;
    let action = match action.filter(|a| !a.is_empty()) {
        Some(a) => Some(
            *audit::action::ALL
                .iter()
                .find(|known| **known == a)
                .ok_or_else(|| DomainError::invalid("action", "unknown action"))?,
        ),
        None => None,
    };
    let mut rows = audit::list(&state.db, action, before, PAGE_SIZE + 1).await?;
    let next_before = if rows.len() > PAGE_SIZE as usize {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(AuditPage { rows, next_before })
}

#[derive(Deserialize)]
struct AuditQuery {
    action: Option<String>,
    before: Option<i64>,
}

struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditTemplate {
    ctx: PageCtx,
    actions: &'static [&'static str],
    action: String,
    rows: Vec<Row>,
    next_before: Option<i64>,
}

async fn audit_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let action = q.action.unwrap_or_default();
    let page = entries(&state, &p, Some(&action), q.before).await?;
    let rows = page
        .rows
        .into_iter()
        .map(|r| Row {
            seq: r.seq,
            at: human(r.at),
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            details: details_text(&r.details_json),
        })
        .collect();
    Ok(render(&AuditTemplate {
        ctx: PageCtx::new("Audit log", Some(&p), &csrf),
        actions: audit::action::ALL,
        action,
        rows,
        next_before: page.next_before,
    }))
}

/// `key: value` pairs for a person; the stored JSON when it is not an object.
fn details_text(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        _ => json.to_string(),
    }
}
