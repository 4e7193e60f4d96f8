-- Sign-in security: throttling kept in the database (so it holds across nodes), the sign-in
-- history, and sessions people can list and revoke. Same SQL for SQLite and PostgreSQL.

-- Sessions get a public id (shown to their owner and used to revoke them; the secret cookie
-- value stays stored only as its digest) and the client address they were started from.
ALTER TABLE sessions ADD COLUMN public_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
-- Sessions started before this migration: an id derived from the digest (a digest is not a
-- secret, and 104 bits of it say nothing about the cookie value).
UPDATE sessions SET public_id = 'ses_' || substr(id_hash, 1, 26) WHERE public_id = '';
CREATE UNIQUE INDEX sessions_public_id ON sessions (public_id);
CREATE INDEX sessions_user_created ON sessions (user_id, created_at, public_id);

-- Per-account throttle, keyed by an HMAC of the normalised email (not the user id): an email
-- without an account is throttled exactly like one with an account, and the table does not
-- say which emails were tried. See crates/domain/src/identity/throttle.rs.
CREATE TABLE sign_in_accounts (
    account_key     TEXT PRIMARY KEY,
    -- consecutive failures since the last success or unlock
    failures        BIGINT NOT NULL DEFAULT 0,
    -- attempts reserved and being verified, counted until in_flight_until
    pending         BIGINT NOT NULL DEFAULT 0,
    in_flight_until BIGINT NOT NULL DEFAULT 0,
    -- no password attempt before this time (the back-off)
    blocked_until   BIGINT NOT NULL DEFAULT 0,
    -- 1 after the 100th consecutive failure: password sign-in refused until an admin unlocks it
    locked          INTEGER NOT NULL DEFAULT 0,
    last_failure_at BIGINT NOT NULL DEFAULT 0
);

-- Per-address failure budget in fixed windows (IPv4 address or IPv6 /64).
CREATE TABLE sign_in_addresses (
    address      TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);

-- Every password sign-in attempt. user_id is set when the email belongs to an account.
CREATE TABLE sign_in_events (
    id         TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'wrong_password', 'throttled', 'locked')),
    address    TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX sign_in_events_user ON sign_in_events (user_id, at, id);
CREATE INDEX sign_in_events_at ON sign_in_events (at);
