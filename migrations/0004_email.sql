-- Email: verified addresses, the anti-phishing code, single-use links (verification, password
-- reset, email change), recognised devices for new-device alerts, and the durable outbox every
-- mail goes through. Same SQL for SQLite and PostgreSQL.

-- When the address was proved by a mailed link (0: not yet). Accounts from before this
-- migration start unverified: nobody proved their address.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT NOT NULL DEFAULT 0;
-- Shown in every genuine mail to the user ('' until they choose one). Plain text until the
-- encryption vault of the data-protection issue (issue 4) lands.
ALTER TABLE users ADD COLUMN anti_phishing_code TEXT NOT NULL DEFAULT '';

-- Single-use links. Only the SHA-256 digest (hex) of the token is stored; the token itself
-- exists only in the mail. purpose: verify_email | password_reset | email_change. email: the
-- address the link proves (the new address of an email change). used_at = 0 while usable; it is
-- set when the link is used or replaced by a newer one.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset', 'email_change')),
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose, created_at);

-- Devices an account has signed in from. device_hash: the SHA-256 digest of the long-lived
-- device cookie (browsers), or of the device label and client network (API tokens).
CREATE TABLE known_devices (
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_hash   TEXT NOT NULL,
    label         TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);

-- The outbox: a mail is written here in the transaction of the change it reports, and a
-- background task delivers it over SMTP with retries. Bodies are erased once delivered (they
-- may hold a single-use link); rows are purged after 30 days. sent_at = 0 while not sent;
-- failed = 1 after the last attempt (or a permanent refusal); claimed_until: a node's lease
-- while it is sending, so two nodes do not send the same mail.
CREATE TABLE outbox_mail (
    id              TEXT PRIMARY KEY,
    user_id         TEXT,
    to_address      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NOT NULL DEFAULT 0,
    sent_at         BIGINT NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_mail_due ON outbox_mail (sent_at, failed, next_attempt_at);
CREATE INDEX outbox_mail_created ON outbox_mail (created_at, id);
CREATE INDEX outbox_mail_to ON outbox_mail (to_address, kind, created_at);
