//! The first sale, walked through the web pages in a headless Chromium: a seller applies, an
//! admin approves, the seller lists a product, a buyer pays with a test card, the seller ships
//! and the buyer confirms receipt. Every step saves a screenshot to
//! `target/screenshots/NN-name.png` (kept by CI as artifacts).
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped on a
//! laptop and fails when `CI=true`.

use crate::support::{Backend, PASSWORD, TestApp, in_ci};
use crate::webdriver::{Browser, Tools, xpath};
use std::path::PathBuf;

const SELLER_EMAIL: &str = "sam@kiteandloom.example";
const BUYER_EMAIL: &str = "bea@example.test";
const ADMIN_EMAIL: &str = "ada@clipcart.example";
const TITLE: &str = "Linen Overshirt";

/// Where the screenshots go: `<target dir>/screenshots`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| manifest.join("../.."));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        }
        None => workspace.join("target"),
    };
    target.join("screenshots")
}

/// Numbered screenshots, `01-signup.png`, `02-...`, in the order the walk takes them.
struct Shots {
    dir: PathBuf,
    n: usize,
}

impl Shots {
    fn new() -> Shots {
        let dir = screenshot_dir();
        // Last run's pictures would mislead whoever looks at this folder. Only this walk's
        // (`NN-name.png`): other browser tests (`sec-...`) may be writing theirs right now.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let numbered = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()));
                if numbered && e.path().extension().is_some_and(|x| x == "png") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Shots { dir, n: 0 }
    }

    async fn take(&mut self, browser: &Browser, name: &str) {
        self.n += 1;
        let path = self.dir.join(format!("{:02}-{name}.png", self.n));
        browser.screenshot(&path).await;
        eprintln!("screenshot: {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_sale_through_the_web_pages() {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(why) if in_ci() => panic!("CI=true but the browser test cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping browser test: {why}");
            return;
        }
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    // At the public URL (localhost): the admin registers a passkey, and WebAuthn needs a
    // domain as the relying party.
    let b = Browser::launch(&tools, &app.state.config.public_url).await;
    b.add_virtual_authenticator().await;
    let mut shots = Shots::new();
    walk(&app, &b, &mut shots).await;
    b.quit().await;
}

async fn sign_in(b: &Browser, email: &str, lands_on: &str) {
    b.goto("/signin").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("#signin-submit").await;
    b.wait_for_path(lands_on).await;
    b.wait_for("#signout").await;
}

/// Opens the development outbox from the "check your inbox" page and follows the
/// verification link of the newest mail to `email`.
pub(crate) async fn verify_from_outbox(b: &Browser, email: &str) {
    b.click("#dev-outbox-link").await;
    b.wait_for_path("/dev/outbox").await;
    b.click(xpath(format!(
        "(//article[.//span[@class='mail-to' and normalize-space()='{email}']]//a[contains(@href, '/verify-email?token=')])[1]"
    )))
    .await;
    b.wait_for_text("h1", "Email address confirmed").await;
}

async fn sign_out(b: &Browser) {
    b.click("#signout").await;
    b.wait_for_path("/").await;
    b.wait_for("#nav-signin").await;
}

/// Asserts that an error message sits right under its field, within the field's width.
async fn assert_beside(b: &Browser, field: &str, error: &str) {
    let f = b.rect(field).await;
    let e = b.rect(error).await;
    let gap = e.y - (f.y + f.height);
    assert!(
        (0.0..=24.0).contains(&gap) && (e.x - f.x).abs() <= 2.0 && e.width <= f.width + 2.0,
        "{error} should sit right under {field}: field {f:?}, error {e:?}"
    );
}

/// The stock cell of a variant on the seller's product page.
async fn seller_stock(b: &Browser, label: &str) -> i64 {
    let cell = xpath(format!(
        "//table[@id='variants']//tr[normalize-space(td[1])='{label}']/td[4]"
    ));
    b.text(cell)
        .await
        .trim()
        .parse()
        .expect("the stock cell holds a number")
}

async fn walk(app: &TestApp, b: &Browser, shots: &mut Shots) {
    // 1. The platform admin exists, as `clipcart admin create` makes one.
    clipcart_server::identity::service::create_account(
        &app.state,
        ADMIN_EMAIL,
        PASSWORD,
        "Ada Admin",
        clipcart_domain::identity::Role::Admin,
    )
    .await
    .expect("admin created");

    // 2. A seller signs up and applies.
    b.goto("/signup").await;
    b.click("input[name=account_type][value=seller]").await;
    b.fill("#display_name", "Sam Seller").await;
    b.fill("#email", SELLER_EMAIL).await;
    b.fill("#password", PASSWORD).await;
    assert!(
        b.is_selected("input[name=account_type][value=seller]")
            .await
    );
    shots.take(b, "signup-seller").await;
    b.click("#signup-submit").await;
    // Selling waits for a verified address: the link is in the development outbox (no SMTP
    // server in the tests' configuration).
    b.wait_for_text("h1", "Check your inbox").await;
    verify_from_outbox(b, SELLER_EMAIL).await;
    shots.take(b, "email-verified").await;
    sign_in(b, SELLER_EMAIL, "/seller").await;
    b.wait_for_text("h1", "Apply to sell on Clipcart").await;

    b.fill("#business_name", "Kite & Loom").await;
    b.click("#seller_type option[value=sole_proprietor]").await;
    b.fill("#line1", "1 Market Street").await;
    b.fill("#postal_code", "10115").await;
    b.fill("#city", "Berlin").await;
    b.fill("#country", "DE").await;
    b.fill("#tax_id", "DE123456789").await;
    b.fill("#currency", "EUR").await;
    assert_eq!(b.value("#seller_type").await, "sole_proprietor");
    shots.take(b, "seller-application").await;
    b.click("#apply-submit").await;
    b.wait_for_text("#shop-status", "submitted").await;
    assert_eq!(b.text("h1").await, "Kite & Loom");
    assert!(b.text("dl.facts").await.contains("Sole proprietor"));
    let facts = b.text("dl.facts").await;
    assert!(
        facts.contains("••••6789") && !facts.contains("DE123456789"),
        "the seller sees the tax id masked: {facts}"
    );
    shots.take(b, "seller-submitted").await;

    // 3. The admin approves the shop.
    sign_out(b).await;
    // Admins must have a passkey: at the first sign-in the console sends them to add one.
    b.goto("/signin").await;
    b.fill("#email", ADMIN_EMAIL).await;
    b.fill("#password", PASSWORD).await;
    b.click("#signin-submit").await;
    b.wait_for_path_where("of the security page", |p| {
        p.starts_with("/account/security")
    })
    .await;
    b.wait_for("#passkey-required").await;
    b.fill("#passkey-name", "Admin laptop").await;
    shots.take(b, "admin-passkey-required").await;
    b.click("#add-passkey").await;
    b.wait_for_text("#passkey-list tbody tr", "Admin laptop")
        .await;
    assert!(b.find("#passkey-required").await.is_none());
    b.goto("/admin").await;
    b.wait_for_path("/admin").await;
    let row = xpath("//tr[starts-with(@id,'application-')][td[1]='Kite & Loom']");
    let row_text = b.text(row.clone()).await;
    assert!(
        row_text.contains("DE123456789") && row_text.contains("DE"),
        "the admin sees the full tax id and the country: {row_text}"
    );
    shots.take(b, "admin-queue").await;
    b.click(xpath(
        "//tr[starts-with(@id,'application-')][td[1]='Kite & Loom']//button[@class='approve']",
    ))
    .await;
    b.wait_for("#queue-empty").await;
    assert!(
        b.find(row).await.is_none(),
        "the approved shop left the queue"
    );
    shots.take(b, "admin-approved").await;
    sign_out(b).await;

    // 4. The seller's shop is active; they list a product, first with a typo in a price.
    sign_in(b, SELLER_EMAIL, "/seller").await;
    b.wait_for_text("#shop-status", "active").await;
    shots.take(b, "seller-active").await;
    b.click("header a[href='/seller/products']").await;
    b.wait_for_path("/seller/products").await;
    b.click("#new-product").await;
    b.wait_for_path("/seller/products/new").await;
    b.fill("#title", TITLE).await;
    b.fill(
        "#description",
        "Washed linen, boxy fit, two chest pockets.\nMade in Portugal.",
    )
    .await;
    b.fill("#options", "Colour, Size").await;
    b.fill("input[name=v0_values]", "Sand, M").await;
    b.fill("input[name=v0_price]", "abc").await;
    b.fill("input[name=v0_stock]", "3").await;
    b.fill("input[name=v1_values]", "Ink, L").await;
    b.fill("input[name=v1_price]", "74.00").await;
    b.fill("input[name=v1_stock]", "2").await;
    b.click("#save-product").await;
    b.wait_for_path("/seller/products").await;
    let price_error = "input[name=v0_price] + p.field-error";
    assert_eq!(
        b.text(price_error).await,
        "enter a price such as 12.50",
        "the typo is reported beside its own cell"
    );
    assert_beside(b, "input[name=v0_price]", price_error).await;
    assert_eq!(
        b.find_all("p.field-error").await.len(),
        1,
        "only the bad cell has an error"
    );
    assert_eq!(b.value("#title").await, TITLE, "the typed title is kept");
    assert_eq!(b.value("#options").await, "Colour, Size");
    assert_eq!(b.value("input[name=v1_values]").await, "Ink, L");
    assert_eq!(b.value("input[name=v0_price]").await, "abc");
    shots.take(b, "product-form-error").await;

    b.fill("input[name=v0_price]", "69.00").await;
    b.click("#save-product").await;
    let product_path = b
        .wait_for_path_where("of the new product", |p| {
            p.strip_prefix("/seller/products/")
                .is_some_and(|id| !id.is_empty() && id != "new" && !id.contains('/'))
        })
        .await;
    let product_id = product_path
        .trim_start_matches("/seller/products/")
        .to_string();
    b.wait_for_text("#product-status", "draft").await;
    assert_eq!(b.text("h1").await, TITLE);
    assert_eq!(seller_stock(b, "Sand / M").await, 3);
    assert_eq!(seller_stock(b, "Ink / L").await, 2);
    let table = b.text("#variants").await;
    assert!(
        table.contains("69.00 EUR") && table.contains("74.00 EUR"),
        "{table}"
    );
    shots.take(b, "product-draft").await;
    b.click("#publish").await;
    b.wait_for_text("#product-status", "live").await;
    assert!(b.find("#publish").await.is_none());
    shots.take(b, "product-live").await;
    b.click("header a[href='/seller/products']").await;
    b.wait_for_path("/seller/products").await;
    let listed = b
        .text(xpath(format!(
            "//table//tr[td[1]/a[normalize-space()='{TITLE}']]"
        )))
        .await;
    assert!(
        listed.contains("live") && listed.contains("69.00 EUR"),
        "the product list shows it live, from 69.00: {listed}"
    );
    shots.take(b, "seller-products").await;
    sign_out(b).await;

    // 5. A buyer signs up, finds the product, pays with a test card and places the order.
    b.goto("/signup").await;
    b.click("input[name=account_type][value=buyer]").await;
    b.fill("#display_name", "Bea Buyer").await;
    b.fill("#email", BUYER_EMAIL).await;
    b.fill("#password", PASSWORD).await;
    b.click("#signup-submit").await;
    b.wait_for_text("h1", "Check your inbox").await;
    verify_from_outbox(b, BUYER_EMAIL).await;
    sign_in(b, BUYER_EMAIL, "/").await;
    b.wait_for("#nav-cart").await;
    let card = xpath(format!(
        "//ul[@id='product-grid']//a[.//h2[normalize-space()='{TITLE}']]"
    ));
    let card_text = b.text(card.clone()).await;
    assert!(card_text.contains("from 69.00 EUR"), "{card_text}");
    shots.take(b, "shop-home").await;
    b.click(card).await;
    b.wait_for_path(&format!("/products/{product_id}")).await;
    b.wait_for_text("h1", TITLE).await;
    let variant = |label: &str| {
        format!("//label[contains(@class,'variant')][span[normalize-space()='{label}']]")
    };
    let (sand, ink) = (variant("Sand / M"), variant("Ink / L"));
    b.click(xpath(format!("{ink}/input"))).await;
    assert!(b.is_selected(xpath(format!("{ink}/input"))).await);
    b.click(xpath(format!("{sand}/input"))).await;
    assert!(b.is_selected(xpath(format!("{sand}/input"))).await);
    assert!(!b.is_selected(xpath(format!("{ink}/input"))).await);
    assert!(b.text(xpath(sand)).await.contains("3 in stock"));
    b.fill("#quantity", "2").await;
    shots.take(b, "product-page").await;
    b.click("#add-to-cart").await;
    b.wait_for_path("/cart").await;
    let lines = b.text("#cart-lines tbody").await;
    assert!(
        lines.contains(TITLE)
            && lines.contains("Sand / M")
            && lines.contains("Kite & Loom")
            && lines.contains("69.00 EUR"),
        "{lines}"
    );
    assert_eq!(
        b.text("#cart-lines tbody tr td:nth-child(4)").await,
        "2",
        "quantity 2 in the cart"
    );
    assert_eq!(b.text("#cart-total").await, "138.00 EUR");
    shots.take(b, "cart").await;
    b.click("#checkout").await;
    b.wait_for_path("/testpay/pay").await;
    b.wait_for_text("h1", "Pay 138.00 EUR").await;
    assert!(
        b.find("#nav-signin").await.is_none(),
        "the card form does not ask a signed-in buyer to sign in"
    );

    // A mistyped number (fails the Luhn check) is refused beside the number field.
    b.fill("#number", "4242424242424241").await;
    b.fill("#exp_month", "12").await;
    b.fill("#exp_year", "2030").await;
    b.fill("#cvc", "123").await;
    b.click("#pay-submit").await;
    b.wait_for_text("#number-error", "enter a valid card number")
        .await;
    assert_beside(b, "#number", "#number-error").await;
    assert_eq!(b.value("#number").await, "", "the number is never echoed");
    assert_eq!(b.value("#cvc").await, "", "the CVC is never echoed");
    assert_eq!(b.value("#exp_month").await, "12");
    shots.take(b, "pay-card-error").await;

    b.fill("#number", "4242 4242 4242 4242").await;
    b.fill("#exp_month", "12").await;
    b.fill("#exp_year", "2030").await;
    b.fill("#cvc", "123").await;
    b.click("#pay-submit").await;
    b.wait_for_path("/checkout/review").await;
    let summary = b.text("#card-summary").await;
    assert!(summary.contains("visa •••• 4242"), "{summary}");
    assert_eq!(b.value("#name").await, "Bea Buyer", "recipient prefilled");
    b.fill("#line1", "5 Harbour Road").await;
    b.fill("#postal_code", "20095").await;
    b.fill("#city", "Hamburg").await;
    b.fill("#country", "DE").await;
    shots.take(b, "checkout-review").await;
    b.click("#place-order").await;
    b.wait_for_path("/orders").await;
    b.wait_for_text("#order-placed", "Your order is placed")
        .await;
    let order_link = b.text("table.list tbody tr td a").await;
    assert!(!order_link.is_empty());
    let order_row = b.text("table.list tbody tr").await;
    assert!(
        order_row.contains("Kite & Loom") && order_row.contains("138.00 EUR"),
        "{order_row}"
    );
    shots.take(b, "order-placed").await;
    let order_id = order_link.trim().to_string();
    sign_out(b).await;

    // 6. The seller sees the order, ships it, and the stock went down by 2.
    sign_in(b, SELLER_EMAIL, "/seller").await;
    b.goto("/seller/orders").await;
    let seller_row = b
        .text(xpath(format!(
            "//tbody[@id='order-rows']/tr[td[1]/a[normalize-space()='{order_id}']]"
        )))
        .await;
    assert!(
        seller_row.contains("Bea Buyer") && seller_row.contains("138.00 EUR"),
        "{seller_row}"
    );
    shots.take(b, "seller-orders").await;
    b.click(xpath(format!(
        "//tbody[@id='order-rows']//a[normalize-space()='{order_id}']"
    )))
    .await;
    b.wait_for_path(&format!("/seller/orders/{order_id}")).await;
    b.wait_for_text("#order-status", "To ship").await;
    b.fill("#carrier", "DHL").await;
    b.fill("#tracking_number", "JD014600006281230001").await;
    shots.take(b, "seller-order-ship-form").await;
    b.click("#mark-shipped").await;
    b.wait_for_text("#order-status", "Shipped").await;
    assert_eq!(b.text("#tracking").await, "DHL JD014600006281230001");
    assert!(b.find("#mark-shipped").await.is_none());
    shots.take(b, "seller-order-shipped").await;

    b.goto(&format!("/seller/products/{product_id}")).await;
    b.wait_for_text("#product-status", "live").await;
    assert_eq!(
        seller_stock(b, "Sand / M").await,
        1,
        "3 in stock, 2 sold: the stock went down by 2"
    );
    assert_eq!(
        seller_stock(b, "Ink / L").await,
        2,
        "the other variant is untouched"
    );
    shots.take(b, "seller-stock-after-sale").await;
    sign_out(b).await;

    // 7. The buyer confirms receipt, which completes the order.
    sign_in(b, BUYER_EMAIL, "/").await;
    b.goto(&format!("/orders/{order_id}")).await;
    b.wait_for_text("#order-status", "Shipped").await;
    assert_eq!(b.text("#tracking").await, "DHL JD014600006281230001");
    shots.take(b, "buyer-order-shipped").await;
    b.click("#confirm-receipt").await;
    b.wait_for_text("#order-status", "Completed").await;
    assert!(b.find("#confirm-receipt").await.is_none());
    shots.take(b, "buyer-order-completed").await;
}
