//! Demo data: an admin, three approved shops with products, variants and stock, and a buyer.
//! Created through the same services the API uses, so the demo exercises the real rules.

use crate::catalog;
use crate::identity::{service as identity, store as identity_store};
use crate::onboarding;
use crate::platform::http::auth::{Credential, Principal};
use crate::platform::http::client::ClientInfo;
use crate::state::AppState;
use clipcart_domain::catalog::{ProductInput, VariantInput};
use clipcart_domain::identity::Role;
use clipcart_domain::identity::staff::ShopAccess;
use clipcart_domain::onboarding::{AddressInput, ApplicationInput};

pub const PASSWORD: &str = "demo-orange-kite-2026";
pub const ADMIN: &str = "admin@demo.clipcart.test";
pub const BUYER: &str = "buyer@demo.clipcart.test";

pub struct DemoSeller {
    pub email: &'static str,
    pub shop: &'static str,
}

pub const SELLERS: [DemoSeller; 3] = [
    DemoSeller {
        email: "kite@demo.clipcart.test",
        shop: "Kite & Loom",
    },
    DemoSeller {
        email: "northwind@demo.clipcart.test",
        shop: "Northwind Audio",
    },
    DemoSeller {
        email: "forest@demo.clipcart.test",
        shop: "Tiny Forest Ceramics",
    },
];

fn principal(u: &identity_store::UserRow, role: Role, shop_id: Option<String>) -> Principal {
    Principal {
        user_id: u.id.clone(),
        role,
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        shop_access: shop_id.as_ref().map(|_| ShopAccess::Owner),
        shop_id,
        credential: Credential::Internal,
        stepped_up_at: 0,
    }
}

fn variant(values: &[&str], price: i64, stock: i64, sku: &str) -> VariantInput {
    VariantInput {
        option_values: values.iter().map(|s| s.to_string()).collect(),
        price,
        stock,
        sku: sku.into(),
    }
}

fn catalogue(shop: usize) -> Vec<ProductInput> {
    let p = |title: &str, description: &str, options: &[&str], variants: Vec<VariantInput>| {
        ProductInput {
            title: title.into(),
            description: description.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            variants,
        }
    };
    match shop {
        0 => vec![
            p(
                "Linen overshirt",
                "Washed European linen, boxy fit.",
                &["Colour", "Size"],
                vec![
                    variant(&["Sand", "M"], 6900, 12, "LO-SAND-M"),
                    variant(&["Sand", "L"], 6900, 8, "LO-SAND-L"),
                    variant(&["Ink", "M"], 6900, 5, "LO-INK-M"),
                    variant(&["Ink", "L"], 6900, 0, "LO-INK-L"),
                ],
            ),
            p(
                "Hand-loomed scarf",
                "Merino and silk, woven on a 1950s loom.",
                &["Colour"],
                vec![
                    variant(&["Rust"], 4500, 20, "HS-RUST"),
                    variant(&["Moss"], 4500, 14, "HS-MOSS"),
                ],
            ),
        ],
        1 => vec![
            p(
                "Studio headphones",
                "Closed-back, 40 mm drivers, detachable cable.",
                &["Colour"],
                vec![
                    variant(&["Black"], 12900, 25, "SH-BLK"),
                    variant(&["White"], 12900, 10, "SH-WHT"),
                ],
            ),
            p(
                "Pocket speaker",
                "Splash-proof, 12 hours of play.",
                &[],
                vec![variant(&[], 3900, 40, "PS-1")],
            ),
        ],
        _ => vec![
            p(
                "Stoneware mug",
                "Wheel-thrown, 350 ml, dishwasher safe.",
                &["Glaze"],
                vec![
                    variant(&["Celadon"], 2400, 30, "MUG-CEL"),
                    variant(&["Tenmoku"], 2400, 18, "MUG-TEN"),
                ],
            ),
            p(
                "Bud vase trio",
                "Three small vases for a windowsill.",
                &[],
                vec![variant(&[], 3600, 9, "VASE-3")],
            ),
        ],
    }
}

/// Seeds the demo once; later calls see the admin and do nothing. Returns whether it seeded.
pub async fn seed(state: &AppState) -> anyhow::Result<bool> {
    if identity_store::user_by_email(&state.db.read, ADMIN)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let err = |e: crate::platform::http::AppError| anyhow::anyhow!("{e}: {}", e.detail());
    let admin_user = identity::create_account(state, ADMIN, PASSWORD, "Demo Admin", Role::Admin)
        .await
        .map_err(err)?;
    let admin = principal(&admin_user, Role::Admin, None);
    identity::create_account(state, BUYER, PASSWORD, "Demo Buyer", Role::Buyer)
        .await
        .map_err(err)?;
    for (i, s) in SELLERS.iter().enumerate() {
        let user = identity::create_account(state, s.email, PASSWORD, s.shop, Role::Seller)
            .await
            .map_err(err)?;
        let seller = principal(&user, Role::Seller, None);
        let application = ApplicationInput {
            business_name: s.shop.into(),
            seller_type: "company".into(),
            address: AddressInput {
                line1: format!("{} Market Street", 10 + i),
                line2: String::new(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
            tax_id: format!("DE12345678{i}"),
            currency: "EUR".into(),
        };
        let shop = onboarding::service::apply(state, &seller, &application)
            .await
            .map_err(err)?;
        onboarding::service::decide(state, &admin, &ClientInfo::internal(), &shop.id, true, "")
            .await
            .map_err(err)?;
        let seller = principal(&user, Role::Seller, Some(shop.id));
        for product in catalogue(i) {
            let view = catalog::service::create(state, &seller, &product)
                .await
                .map_err(err)?;
            catalog::service::publish(state, &seller, &view.product.id)
                .await
                .map_err(err)?;
        }
    }
    Ok(true)
}
