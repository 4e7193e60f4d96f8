//! The test kit: boots the real server on a random port with a fresh database (a temporary
//! SQLite file, or a new PostgreSQL database) and a manual clock, and gives tests typed helpers
//! for the common actors.
//!
//! Backends: `CLIPCART_TEST_BACKENDS` (default `sqlite,postgres`) picks which run.
//! PostgreSQL: `CLIPCART_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where the tests may create databases. When it is unreachable the PostgreSQL
//! variant is skipped on a laptop, and fails when `CI=true`.

#![allow(dead_code)]

use clipcart_server::platform::clock::{Clock, ManualClock};
use clipcart_server::platform::config::Config;
use clipcart_server::state::AppState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 2026-11-25T00:00:00Z: tests start from a known instant.
pub const T0_MS: i64 = 1_795_564_800_000;
pub const PASSWORD: &str = "correct horse battery staple";
/// The CSRF cookie and form value tests use on pages (any 32 base32 characters are accepted).
pub const PAGE_CSRF: &str = "abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn wanted(backend: Backend) -> bool {
    let list = std::env::var("CLIPCART_TEST_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    list.split(',').any(|b| b.trim() == backend.name())
}

pub fn postgres_admin_url() -> String {
    std::env::var("CLIPCART_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A random master key for the vault (base64 of 32 bytes), as `CLIPCART_MASTER_KEY` gives it.
pub fn test_master_key() -> clipcart_server::platform::crypto::MasterKeySource {
    use base64::Engine;
    use rand::RngExt;
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key[..]);
    clipcart_server::platform::crypto::MasterKeySource::Value(secrecy::SecretString::from(
        base64::engine::general_purpose::STANDARD.encode(key),
    ))
}

pub struct TestApp {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub backend: Backend,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
    counter: AtomicUsize,
}

impl TestApp {
    /// Boots a server, or returns None when this backend is not wanted or not available here.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// `spawn`, with a chance to change the configuration first (e.g. trusted proxies).
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> Option<TestApp> {
        // CLIPCART_LOG=debug (or any filter) shows the server's logs while debugging a test.
        if std::env::var_os("CLIPCART_LOG").is_some() {
            clipcart_server::platform::telemetry::init(false);
        }
        if !wanted(backend) {
            eprintln!("skipping: {} not in CLIPCART_TEST_BACKENDS", backend.name());
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("test.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = match sqlx::PgConnection::connect(&admin).await {
                    Ok(c) => c,
                    Err(e) if !in_ci() => {
                        eprintln!("skipping PostgreSQL test: cannot reach {admin}: {e}");
                        return None;
                    }
                    Err(e) => panic!("CI=true and PostgreSQL is unreachable at {admin}: {e}"),
                };
                let name = format!("clipcart_test_{}", clipcart_domain::ids::random_secret(10));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin.clone());
                (format!("{base}/{name}"), Some(name))
            }
        };
        let clock = Arc::new(ManualClock::new(T0_MS));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::local(dir.path().to_path_buf(), addr);
        config.database_url = database_url;
        // Passkeys need a domain as the relying party (an IP address is not a valid RP id);
        // localhost is one, and a secure context for browsers over plain HTTP.
        config.public_url = format!("http://localhost:{}", addr.port());
        config.max_connections = 20;
        // A temporary master key per server: the vault's data keys live in the fresh database.
        config.master_key = test_master_key();
        configure(&mut config);
        let state = clipcart_server::build_state(config, clock.clone())
            .await
            .expect("server state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            clipcart_server::serve(server_state, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Some(TestApp {
            base: format!("http://{addr}"),
            clock,
            state,
            backend,
            http,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            pg_database,
            counter: AtomicUsize::new(0),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A unique suffix for emails and names within this test.
    pub fn unique(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, token, Some(&body))
            .await
    }

    /// POSTs and insists on the given status, showing the body when it differs.
    pub async fn post_ok(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        expect: StatusCode,
    ) -> Value {
        let (status, v) = self.post(path, token, body).await;
        assert_eq!(status, expect, "POST {path} answered {v}");
        v
    }

    pub async fn get_ok(&self, path: &str, token: Option<&str>) -> Value {
        let (status, v) = self.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path} answered {v}");
        v
    }

    /// Signs in through the sign-in page; returns the `Cookie` header value for later requests.
    pub async fn page_cookies(&self, actor: &Actor) -> String {
        let session = self.page_session(actor, "clipcart-tests").await;
        format!("__Host-clipcart_csrf={PAGE_CSRF}; __Host-clipcart_session={session}")
    }

    /// Signs in through the sign-in page as a browser with `user_agent`; returns the session
    /// cookie's value. The CSRF cookie to send with it is `PAGE_CSRF`.
    pub async fn page_session(&self, actor: &Actor, user_agent: &str) -> String {
        let res = self
            .http
            .post(self.url("/signin"))
            .header("cookie", format!("__Host-clipcart_csrf={PAGE_CSRF}"))
            .header("user-agent", user_agent)
            .form(&[
                ("csrf", PAGE_CSRF),
                ("email", actor.email.as_str()),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("sign in");
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "sign-in page refused {}",
            actor.email
        );
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("__Host-clipcart_session="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string()
    }

    // ---- actors ----

    pub async fn sign_up(&self, kind: &str, name: &str) -> Actor {
        let email = format!(
            "{kind}{}-{}@example.test",
            self.unique(),
            name.to_lowercase().replace(' ', "-")
        );
        self.post_ok("/api/v1/auth/signup", None, json!({"email": email, "password": PASSWORD, "display_name": name, "account_type": kind}), StatusCode::ACCEPTED)
            .await;
        // Straight to a verified address, as after opening the mailed link: the verification
        // flow itself is tested end to end in email.rs.
        self.mark_email_verified(&email).await;
        let t = self
            .post_ok(
                "/api/v1/auth/tokens",
                None,
                json!({"email": email, "password": PASSWORD}),
                StatusCode::CREATED,
            )
            .await;
        Actor {
            token: t["token"].as_str().expect("token").into(),
            user_id: t["user_id"].as_str().expect("id").into(),
            email,
            shop_id: None,
        }
    }

    /// Marks an account's address verified in the database, skipping the mailed link.
    pub async fn mark_email_verified(&self, email: &str) {
        let done = sqlx::query("UPDATE users SET email_verified_at = $1 WHERE email = $2")
            .bind(self.now_ms())
            .bind(email)
            .execute(&self.state.db.write)
            .await
            .expect("mark verified")
            .rows_affected();
        assert_eq!(done, 1, "no account with {email}");
    }

    pub async fn buyer(&self) -> Actor {
        self.sign_up("buyer", "Bea Buyer").await
    }

    /// A platform admin, created as `clipcart admin create` does, with the passkey admins must
    /// have (registered through the API with the software authenticator).
    pub async fn admin(&self) -> Actor {
        self.admin_with_authenticator().await.0
    }

    /// `admin`, and the authenticator holding the admin's passkey.
    pub async fn admin_with_authenticator(&self) -> (Actor, crate::support_passkey::Authenticator) {
        let admin = self.admin_without_passkey().await;
        let mut auth = crate::support_passkey::Authenticator::for_app(self);
        crate::support_passkey::register_passkey(self, &admin, &mut auth).await;
        (admin, auth)
    }

    /// A platform admin straight from `clipcart admin create`: no passkey yet.
    pub async fn admin_without_passkey(&self) -> Actor {
        let email = format!("admin{}@example.test", self.unique());
        let user = clipcart_server::identity::service::create_account(
            &self.state,
            &email,
            PASSWORD,
            "Ada Admin",
            clipcart_domain::identity::Role::Admin,
        )
        .await
        .expect("admin created");
        let t = self
            .post_ok(
                "/api/v1/auth/tokens",
                None,
                json!({"email": email, "password": PASSWORD}),
                StatusCode::CREATED,
            )
            .await;
        Actor {
            token: t["token"].as_str().expect("token").into(),
            user_id: user.id,
            email,
            shop_id: None,
        }
    }

    /// A seller whose application is submitted but not decided.
    pub async fn applied_seller(&self, shop_name: &str) -> Actor {
        let mut seller = self.sign_up("seller", shop_name).await;
        let shop = self
            .post_ok(
                "/api/v1/seller/application",
                Some(&seller.token),
                application(shop_name),
                StatusCode::CREATED,
            )
            .await;
        seller.shop_id = Some(shop["id"].as_str().expect("shop id").into());
        seller
    }

    /// A seller with an approved, active shop.
    pub async fn active_seller(&self, admin: &Actor, shop_name: &str) -> Actor {
        let seller = self.applied_seller(shop_name).await;
        let shop_id = seller.shop_id.clone().expect("shop");
        let shop = self
            .post_ok(
                &format!("/api/v1/admin/shops/{shop_id}/approve"),
                Some(&admin.token),
                json!({}),
                StatusCode::OK,
            )
            .await;
        assert_eq!(shop["status"], "active");
        seller
    }

    /// A published product with one variant per `(values, price, stock)`; returns its JSON.
    pub async fn live_product(
        &self,
        seller: &Actor,
        title: &str,
        variants: &[(&[&str], i64, i64)],
    ) -> Value {
        let options: Vec<String> = if variants.first().is_some_and(|v| !v.0.is_empty()) {
            vec!["Size".into()]
        } else {
            vec![]
        };
        let vs: Vec<Value> = variants.iter().map(|(values, price, stock)| json!({"option_values": values, "price": price, "stock": stock})).collect();
        let p = self
            .post_ok(
                "/api/v1/seller/products",
                Some(&seller.token),
                json!({"title": title, "options": options, "variants": vs}),
                StatusCode::CREATED,
            )
            .await;
        let id = p["id"].as_str().expect("product id");
        self.post_ok(
            &format!("/api/v1/seller/products/{id}/publish"),
            Some(&seller.token),
            json!({}),
            StatusCode::OK,
        )
        .await
    }

    /// A fresh payment token from the test processor for `number`.
    pub async fn card_token(&self, number: &str) -> String {
        let v = self
            .post_ok(
                "/testpay/v1/tokens",
                None,
                json!({"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}),
                StatusCode::CREATED,
            )
            .await;
        v["token"].as_str().expect("token").into()
    }

    pub async fn add_to_cart(&self, buyer: &Actor, variant_id: &str, quantity: i64) {
        self.post_ok(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"variant_id": variant_id, "quantity": quantity}),
            StatusCode::CREATED,
        )
        .await;
    }

    pub async fn checkout(&self, buyer: &Actor, token: &str) -> (StatusCode, Value) {
        self.post("/api/v1/checkout", Some(&buyer.token), checkout_body(token))
            .await
    }

    /// Buys `quantity` of a variant in one checkout; returns the checkout result.
    pub async fn buy(&self, buyer: &Actor, variant_id: &str, quantity: i64) -> Value {
        self.add_to_cart(buyer, variant_id, quantity).await;
        let token = self.card_token("4242424242424242").await;
        let (status, v) = self.checkout(buyer, &token).await;
        assert_eq!(status, StatusCode::CREATED, "checkout answered {v}");
        v
    }

    pub async fn stock_of(&self, seller: &Actor, product_id: &str, variant_id: &str) -> i64 {
        let p = self
            .get_ok(
                &format!("/api/v1/seller/products/{product_id}"),
                Some(&seller.token),
            )
            .await;
        p["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .find(|v| v["id"] == variant_id)
            .expect("variant")["stock"]
            .as_i64()
            .expect("stock")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(name) = self.pg_database.take() {
            // Drop the database from a thread of its own: Drop cannot await.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub token: String,
    pub user_id: String,
    pub email: String,
    pub shop_id: Option<String>,
}

pub fn application(name: &str) -> Value {
    json!({
        "business_name": name,
        "seller_type": "company",
        "address": {"line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "tax_id": "DE123456789",
        "currency": "EUR"
    })
}

pub fn checkout_body(token: &str) -> Value {
    json!({
        "payment_token": token,
        "shipping_address": {"name": "Bea Buyer", "line1": "5 Harbour Road", "city": "Hamburg", "postal_code": "20095", "country": "DE"}
    })
}

pub fn variant_id(product: &Value, i: usize) -> String {
    product["variants"][i]["id"]
        .as_str()
        .expect("variant id")
        .to_string()
}

/// Runs an `async fn(TestApp)` once per backend as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Sqlite).await {
                    super::$name(app).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Postgres).await {
                    super::$name(app).await
                }
            }
        }
    )* };
    // The same with the configuration changed first: `on_both_databases!(configured by f: test)`.
    (configured by $configure:ident: $($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                if let Some(app) = $crate::support::TestApp::spawn_with($crate::support::Backend::Sqlite, super::$configure).await {
                    super::$name(app).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(app) = $crate::support::TestApp::spawn_with($crate::support::Backend::Postgres, super::$configure).await {
                    super::$name(app).await
                }
            }
        }
    )* };
}
