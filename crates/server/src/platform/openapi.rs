//! The OpenAPI 3.1 document (generated from the handlers' annotations, so it cannot drift from
//! the routes) and a readable documentation page rendered from it on the server.

use askama::Template;
use axum::response::Response;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Doc, RefOr, Server};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Clipcart API", version = "1", description = "Clipcart's JSON API. Errors are RFC 9457 problem documents; lists page with opaque cursors; creating POSTs honour Idempotency-Key."),
    modifiers(&Security),
    tags(
        (name = "identity", description = "Accounts and API tokens"),
        (name = "staff", description = "Shop staff: invitations, members and roles (owner only)"),
        (name = "onboarding", description = "Seller applications and their review"),
        (name = "catalog", description = "Products and variants"),
        (name = "checkout", description = "Cart and checkout"),
        (name = "orders", description = "Orders for buyers and sellers"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from POST /auth/tokens"))
                    .build(),
            ),
        );
        doc.servers = Some(vec![Server::new("/api/v1")]);
    }
}

pub struct Operation {
    pub method: String,
    pub path: String,
    pub summary: String,
    pub tag: String,
    pub params: Vec<String>,
    pub body: Option<String>,
    pub responses: Vec<String>,
    pub auth: bool,
}

/// Flattens the document into rows for the docs page, in document order.
pub fn operations(doc: &Doc) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in methods {
            let Some(op) = op else { continue };
            let params = op
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    RefOr::T(p) => {
                        let place = match p.parameter_in {
                            utoipa::openapi::path::ParameterIn::Path => "path",
                            utoipa::openapi::path::ParameterIn::Query
                            | utoipa::openapi::path::ParameterIn::QueryString => "query",
                            utoipa::openapi::path::ParameterIn::Header => "header",
                            utoipa::openapi::path::ParameterIn::Cookie => "cookie",
                        };
                        Some(format!("{} ({place})", p.name))
                    }
                    RefOr::Ref(_) => None,
                })
                .collect();
            let body = op.request_body.as_ref().and_then(|b| {
                let RefOr::T(b) = b else { return None };
                b.content
                    .values()
                    .next()
                    .and_then(|c| match c {
                        RefOr::T(c) => Some(c),
                        RefOr::Ref(_) => None,
                    })
                    .and_then(|c| match &c.schema {
                        Some(RefOr::Ref(r)) => {
                            r.ref_location.rsplit('/').next().map(str::to_string)
                        }
                        _ => Some("JSON".into()),
                    })
            });
            out.push(Operation {
                method: method.into(),
                path: format!("/api/v1{path}"),
                summary: op
                    .description
                    .clone()
                    .or_else(|| op.summary.clone())
                    .unwrap_or_default(),
                tag: op.tags.iter().flatten().next().cloned().unwrap_or_default(),
                params,
                body,
                responses: op.responses.responses.keys().cloned().collect(),
                auth: op.security.as_ref().is_some_and(|s| !s.is_empty()),
            });
        }
    }
    out
}

#[derive(Template)]
#[template(path = "docs/api.html")]
struct ApiPage<'a> {
    operations: &'a [Operation],
}

pub fn docs_page(ops: &[Operation]) -> Response {
    crate::platform::http::page::render(&ApiPage { operations: ops })
}

#[derive(Template)]
#[template(path = "docs/problems.html")]
struct ProblemsPage;

pub fn problems_page() -> Response {
    crate::platform::http::page::render(&ProblemsPage)
}
