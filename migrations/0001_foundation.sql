-- One schema for SQLite and PostgreSQL: ids TEXT, times BIGINT (epoch ms, UTC), money BIGINT
-- minor units with a currency column, flags INTEGER 0/1. See crates/server/src/platform/db.rs.

CREATE TABLE platform_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'seller', 'buyer')),
    created_at    BIGINT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

-- Session ids and API tokens are stored only as SHA-256 digests.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE shops (
    id              TEXT PRIMARY KEY,
    owner_user_id   TEXT NOT NULL UNIQUE REFERENCES users (id),
    name            TEXT NOT NULL,
    seller_type     TEXT NOT NULL,
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    tax_id          TEXT NOT NULL,
    address_json    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT,
    decided_by      TEXT REFERENCES users (id),
    decision_reason TEXT
);
CREATE INDEX shops_status ON shops (status, created_at, id);

CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL REFERENCES shops (id),
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    options_json TEXT NOT NULL,
    status       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX products_shop ON products (shop_id, created_at, id);
CREATE INDEX products_live ON products (status, created_at, id);

CREATE TABLE variants (
    id                 TEXT PRIMARY KEY,
    product_id         TEXT NOT NULL REFERENCES products (id),
    shop_id            TEXT NOT NULL REFERENCES shops (id),
    option_values_json TEXT NOT NULL,
    price_minor        BIGINT NOT NULL CHECK (price_minor > 0),
    currency           TEXT NOT NULL,
    -- The CHECK is the last line of defence against oversell; the UPDATE's condition is the first.
    stock              BIGINT NOT NULL CHECK (stock >= 0),
    sku                TEXT NOT NULL,
    position           BIGINT NOT NULL
);
CREATE INDEX variants_product ON variants (product_id, position);

CREATE TABLE cart_items (
    buyer_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    variant_id TEXT NOT NULL REFERENCES variants (id),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (buyer_id, variant_id)
);

-- The built-in test processor's own state: never a card number or CVC.
CREATE TABLE testpay_tokens (
    id          TEXT PRIMARY KEY,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    exp_month   BIGINT NOT NULL,
    exp_year    BIGINT NOT NULL,
    country     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    behaviour   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE testpay_authorizations (
    id           TEXT PRIMARY KEY,
    token_id     TEXT NOT NULL REFERENCES testpay_tokens (id),
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    reference    TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE checkouts (
    id               TEXT PRIMARY KEY,
    buyer_id         TEXT NOT NULL REFERENCES users (id),
    total_minor      BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    authorization_id TEXT NOT NULL,
    -- authorized (orders written) -> captured | capture_failed; completion needs captured.
    payment_status   TEXT NOT NULL,
    card_brand       TEXT NOT NULL,
    card_last4       TEXT NOT NULL,
    card_exp_month   BIGINT NOT NULL,
    card_exp_year    BIGINT NOT NULL,
    card_country     TEXT NOT NULL,
    card_fingerprint TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    shop_id          TEXT NOT NULL REFERENCES shops (id),
    buyer_id         TEXT NOT NULL REFERENCES users (id),
    checkout_id      TEXT NOT NULL REFERENCES checkouts (id),
    status           TEXT NOT NULL,
    total_minor      BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    ship_name        TEXT NOT NULL,
    ship_line1       TEXT NOT NULL,
    ship_line2       TEXT NOT NULL,
    ship_city        TEXT NOT NULL,
    ship_postal_code TEXT NOT NULL,
    ship_country     TEXT NOT NULL,
    carrier          TEXT,
    tracking_number  TEXT,
    created_at       BIGINT NOT NULL,
    paid_at          BIGINT,
    shipped_at       BIGINT,
    delivered_at     BIGINT,
    completed_at     BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX orders_shop ON orders (shop_id, created_at, id);
CREATE INDEX orders_shop_status ON orders (shop_id, status, created_at, id);
CREATE INDEX orders_buyer ON orders (buyer_id, created_at, id);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    shop_id          TEXT NOT NULL REFERENCES shops (id),
    product_id       TEXT NOT NULL REFERENCES products (id),
    variant_id       TEXT NOT NULL REFERENCES variants (id),
    title            TEXT NOT NULL,
    variant_label    TEXT NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    PRIMARY KEY (order_id, variant_id)
);

CREATE TABLE ledger_transactions (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    reference  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE ledger_postings (
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    seq            BIGINT NOT NULL,
    account        TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    PRIMARY KEY (transaction_id, seq)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account, currency);

-- Idempotency-Key records: status_code 0 while the first request is still running.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
