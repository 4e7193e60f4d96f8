-- Passkeys (WebAuthn credentials) and the server-side state of their ceremonies. Same SQL for
-- SQLite and PostgreSQL.

-- One row per registered passkey. credential_id is the authenticator's credential id in
-- base64url (unique across all accounts: one credential cannot sign in two accounts).
-- credential is webauthn-rs's `Passkey` as JSON: the public key (no secret), the algorithm,
-- the signature counter and the backup flags; the library reads and updates it.
-- sign_count and the flags are copies kept in columns so the counter can be advanced
-- atomically (a cloned or replayed authenticator shows a counter that did not increase) and
-- the list can say whether a passkey is synced. user_handle (base64url) is the WebAuthn
-- user.id given to authenticators for this account: the same for all of its passkeys.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    user_handle     TEXT NOT NULL,
    credential      TEXT NOT NULL,
    name            TEXT NOT NULL,
    sign_count      BIGINT NOT NULL DEFAULT 0,
    backup_eligible INTEGER NOT NULL DEFAULT 0,
    backed_up       INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- A registration or authentication ceremony in progress: the challenge and what the library
-- needs to check the answer (webauthn-rs state as JSON). Kept here, never in the browser, so an
-- answer cannot be replayed against a state the client chose. The opaque id travels to the
-- client; only its SHA-256 digest is stored. Single use (deleted when answered) and short-lived.
-- kind: register (user_id: the account adding a passkey), sign_in (no user: discoverable),
-- second_factor (user_id: the account whose password was just proved), step_up (user_id).
CREATE TABLE passkey_ceremonies (
    id_hash    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('register', 'sign_in', 'second_factor', 'step_up')),
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);
