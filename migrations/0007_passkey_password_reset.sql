-- Passkeys as the second factor of a password reset: a new ceremony kind. Same SQL for SQLite
-- and PostgreSQL.
--
-- kind password_reset: user_id is the account of a reset link; the state also carries the
-- digest of that link's token, so the answer only completes that link. A CHECK cannot be
-- changed in place on SQLite, and ceremonies live five minutes, so the table is made anew (a
-- ceremony in progress during the upgrade is started again).
DROP TABLE passkey_ceremonies;
CREATE TABLE passkey_ceremonies (
    id_hash    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('register', 'sign_in', 'second_factor', 'step_up', 'password_reset')),
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);
