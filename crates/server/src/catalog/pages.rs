//! Catalogue pages: the shop front and product page for buyers, product management for sellers.

use super::service::{self, ProductView};
use crate::onboarding;
use crate::platform::http::auth::PagePrincipal;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, apply_first, render, render_with_status, see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clipcart_domain::catalog::{ProductInput, VariantInput};
use clipcart_domain::identity::staff::{Access, Area};
use clipcart_domain::money::{Currency, Money};
use clipcart_domain::page::PageRequest;
use clipcart_domain::{DomainError, FieldError};
use serde::Deserialize;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/products/{id}", get(product_page))
        .route("/seller/products", get(seller_list).post(create))
        .route("/seller/products/new", get(new_form))
        .route("/seller/products/{id}", get(seller_detail))
        .route("/seller/products/{id}/publish", post(publish))
}

/// Formats minor units for display.
pub fn price(minor: i64, currency: &str) -> String {
    Currency::parse(currency)
        .map(|c| Money { minor, currency: c }.to_string())
        .unwrap_or_else(|_| format!("{minor} {currency}"))
}

fn initial(title: &str) -> String {
    title
        .chars()
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default()
}

struct Card {
    id: String,
    title: String,
    status: String,
    price: String,
    stock: i64,
    variant_count: i64,
    initial: String,
}

fn cards(page: service::ProductPage) -> (Vec<Card>, Option<String>) {
    let cards = page
        .items
        .into_iter()
        .map(|c| Card {
            initial: initial(&c.title),
            price: price(c.min_price, &c.currency),
            id: c.id,
            title: c.title,
            status: c.status,
            stock: c.stock,
            variant_count: c.variant_count,
        })
        .collect();
    (cards, page.next_cursor)
}

#[derive(Template)]
#[template(path = "catalog/home.html")]
struct Home {
    ctx: PageCtx,
    q: String,
    cards: Vec<Card>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct HomeQuery {
    q: Option<String>,
    cursor: Option<String>,
}

async fn home(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    p: Option<PagePrincipal>,
    Query(q): Query<HomeQuery>,
) -> PageResult {
    let page = PageRequest::parse(q.cursor.as_deref(), Some(24))?;
    let query = q.q.unwrap_or_default();
    let (cards, next_cursor) = cards(service::browse(&state, &query, &page).await?);
    Ok(render(&Home {
        ctx: PageCtx::new("Shop", p.as_ref().map(|p| &p.0), &csrf),
        q: query,
        cards,
        next_cursor,
    }))
}

struct VariantLine {
    id: String,
    label: String,
    price: String,
    stock: i64,
    sku: String,
}

fn variant_lines(v: &ProductView) -> Vec<VariantLine> {
    v.variants
        .iter()
        .map(|x| VariantLine {
            id: x.row.id.clone(),
            label: x.label(),
            price: price(x.row.price_minor, &x.row.currency),
            stock: x.row.stock,
            sku: x.row.sku.clone(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "catalog/product.html")]
pub struct ProductPage {
    ctx: PageCtx,
    id: String,
    title: String,
    description: String,
    initial: String,
    options: Vec<String>,
    variants: Vec<VariantLine>,
    errors: FormErrors,
}

/// The buyer's product page; `errors` carries an add-to-cart failure back to it.
pub async fn render_product(
    state: &AppState,
    p: Option<&crate::platform::http::auth::Principal>,
    csrf: &CsrfToken,
    id: &str,
    errors: FormErrors,
) -> PageResult {
    let v = service::live_product(state, id).await?;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &ProductPage {
            ctx: PageCtx::new(v.product.title.clone(), p, csrf),
            variants: variant_lines(&v),
            id: v.product.id,
            initial: initial(&v.product.title),
            title: v.product.title,
            description: v.product.description,
            options: v.options,
            errors,
        },
    ))
}

async fn product_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    p: Option<PagePrincipal>,
    Path(id): Path<String>,
) -> PageResult {
    render_product(
        &state,
        p.as_ref().map(|p| &p.0),
        &csrf,
        &id,
        FormErrors::default(),
    )
    .await
}

#[derive(Template)]
#[template(path = "catalog/seller_list.html")]
struct SellerList {
    ctx: PageCtx,
    cards: Vec<Card>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn seller_list(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<CursorQuery>,
) -> PageResult {
    if let Some(r) = apply_first(&p) {
        return Ok(r);
    }
    let page = PageRequest::parse(q.cursor.as_deref(), None)?;
    let (cards, next_cursor) = cards(service::seller_products(&state, &p, &page).await?);
    Ok(render(&SellerList {
        ctx: PageCtx::new("Products", Some(&p), &csrf),
        cards,
        next_cursor,
    }))
}

const FORM_ROWS: usize = 6;

#[derive(Default, Clone)]
struct RowForm {
    values: String,
    price: String,
    stock: String,
    sku: String,
    values_error: Option<String>,
    price_error: Option<String>,
    stock_error: Option<String>,
    sku_error: Option<String>,
}

#[derive(Default)]
struct ProductForm {
    title: String,
    description: String,
    options: String,
    rows: Vec<RowForm>,
}

#[derive(Template)]
#[template(path = "catalog/seller_new.html")]
struct NewProductPage {
    ctx: PageCtx,
    form: ProductForm,
    currency: String,
    errors: FormErrors,
}

async fn new_form(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
) -> PageResult {
    if let Some(r) = apply_first(&p) {
        return Ok(r);
    }
    let shop = onboarding::service::selling_shop(&state, &p, Area::Catalogue, Access::Edit).await?;
    let form = ProductForm {
        rows: vec![RowForm::default(); FORM_ROWS],
        ..Default::default()
    };
    Ok(render(&NewProductPage {
        ctx: PageCtx::new("New product", Some(&p), &csrf),
        form,
        currency: shop.currency,
        errors: FormErrors::default(),
    }))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// The product input, or it together with the numbers that could not be read.
type ParsedForm = Result<ProductInput, (ProductInput, Vec<FieldError>)>;

/// Reads the form: rows left entirely empty are skipped; the numbers are parsed here so a
/// typo is reported beside its own cell.
fn read_form(
    fields: &HashMap<String, String>,
    currency: Currency,
) -> (ProductForm, ParsedForm, Vec<usize>) {
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let mut form = ProductForm {
        title: get("title"),
        description: get("description"),
        options: get("options"),
        rows: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut variants = Vec::new();
    let mut row_of_variant = Vec::new();
    for i in 0..FORM_ROWS {
        let row = RowForm {
            values: get(&format!("v{i}_values")),
            price: get(&format!("v{i}_price")),
            stock: get(&format!("v{i}_stock")),
            sku: get(&format!("v{i}_sku")),
            ..Default::default()
        };
        let filled = [&row.values, &row.price, &row.stock, &row.sku]
            .iter()
            .any(|s| !s.trim().is_empty());
        if filled {
            let n = variants.len();
            let price = match Money::parse_decimal(&row.price, currency) {
                Ok(m) => m.minor,
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("variants[{n}].price"),
                        "enter a price such as 12.50",
                    ));
                    0
                }
            };
            let stock = match row.stock.trim().parse::<i64>() {
                Ok(s) => s,
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("variants[{n}].stock"),
                        "enter a whole number",
                    ));
                    0
                }
            };
            variants.push(VariantInput {
                option_values: split_list(&row.values),
                price,
                stock,
                sku: row.sku.clone(),
            });
            row_of_variant.push(i);
        }
        form.rows.push(row);
    }
    let input = ProductInput {
        title: form.title.clone(),
        description: form.description.clone(),
        options: split_list(&form.options),
        variants,
    };
    let result = if errors.is_empty() {
        Ok(input)
    } else {
        Err((input, errors))
    };
    (form, result, row_of_variant)
}

/// Puts `variants[n].field` errors beside the form row that variant came from.
fn place_errors(form: &mut ProductForm, errors: &[FieldError], row_of_variant: &[usize]) {
    for e in errors {
        let Some(rest) = e.field.strip_prefix("variants[") else {
            continue;
        };
        let Some((n, field)) = rest.split_once("].") else {
            continue;
        };
        let Some(row) = n
            .parse::<usize>()
            .ok()
            .and_then(|n| row_of_variant.get(n))
            .and_then(|r| form.rows.get_mut(*r))
        else {
            continue;
        };
        let slot = match field {
            "option_values" => &mut row.values_error,
            "price" => &mut row.price_error,
            "stock" => &mut row.stock_error,
            _ => &mut row.sku_error,
        };
        slot.get_or_insert_with(|| e.message.clone());
    }
}

async fn create(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(fields): CsrfForm<HashMap<String, String>>,
) -> PageResult {
    if let Some(r) = apply_first(&p) {
        return Ok(r);
    }
    let shop = onboarding::service::selling_shop(&state, &p, Area::Catalogue, Access::Edit).await?;
    let currency = Currency::parse(&shop.currency)?;
    let (mut form, parsed, rows) = read_form(&fields, currency);
    let result = match parsed {
        Ok(input) => service::create(&state, &p, &input).await,
        // A typo in a number is reported together with every other problem of the form.
        Err((input, mut errs)) => {
            if let Err(DomainError::Invalid(more)) = input.parse(currency) {
                let more: Vec<FieldError> = more
                    .into_iter()
                    .filter(|m| !errs.iter().any(|e| e.field == m.field))
                    .collect();
                errs.extend(more);
            }
            Err(DomainError::Invalid(errs).into())
        }
    };
    match result {
        Ok(view) => Ok(see_other(&format!("/seller/products/{}", view.product.id))),
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            place_errors(&mut form, &errors.fields, &rows);
            let page = NewProductPage {
                ctx: PageCtx::new("New product", Some(&p), &csrf),
                form,
                currency: shop.currency,
                errors,
            };
            Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

#[derive(Template)]
#[template(path = "catalog/seller_detail.html")]
struct SellerDetail {
    ctx: PageCtx,
    id: String,
    title: String,
    description: String,
    status: String,
    variants: Vec<VariantLine>,
    errors: FormErrors,
}

async fn detail_page(
    state: &AppState,
    p: &crate::platform::http::auth::Principal,
    csrf: &CsrfToken,
    id: &str,
    errors: FormErrors,
) -> PageResult {
    let v = service::seller_product(state, p, id).await?;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &SellerDetail {
            ctx: PageCtx::new(v.product.title.clone(), Some(p), csrf),
            variants: variant_lines(&v),
            id: v.product.id,
            title: v.product.title,
            description: v.product.description,
            status: v.product.status,
            errors,
        },
    ))
}

async fn seller_detail(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
) -> PageResult {
    detail_page(&state, &p, &csrf, &id, FormErrors::default()).await
}

async fn publish(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    match service::publish(&state, &p, &id).await {
        Ok(_) => Ok(see_other(&format!("/seller/products/{id}"))),
        Err(e) if e.status() != StatusCode::NOT_FOUND && e.status().is_client_error() => {
            let errors = FormErrors {
                fields: vec![],
                general: Some(e.detail()),
            };
            detail_page(&state, &p, &csrf, &id, errors).await
        }
        Err(e) => Err(e.into()),
    }
}
