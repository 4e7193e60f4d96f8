-- Second factors: TOTP and recovery codes, and the short-lived "password accepted, code still
-- to come" state of a page sign-in. Same SQL for SQLite and PostgreSQL.

-- One TOTP factor per user. confirmed_at = 0 while enrolment waits for the first code; the
-- factor is active only once confirmed. last_step is the last RFC 6238 time step accepted
-- (-1 before any): codes of that step or earlier are refused, so each code works once.
-- The seed (base32) is stored in plain text until the encryption vault of the data-protection
-- issue (issue 4) lands; in memory it is kept in a SecretString.
CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT NOT NULL DEFAULT 0,
    last_step    BIGINT NOT NULL DEFAULT -1
);

-- Single-use recovery codes, stored only as the SHA-256 digest (hex) of the normalised code
-- (10 random base32 characters: 50 bits). used_at = 0 while unused. Regenerating deletes the
-- whole set.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, code_hash)
);

-- A page sign-in whose password was right and whose second factor is still to come. The
-- opaque id travels in a hidden form field; only its digest is stored.
CREATE TABLE pending_second_factors (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_second_factors_expires ON pending_second_factors (expires_at);

-- When the session's second factor was last proved (0: never); step-up will read it.
ALTER TABLE sessions ADD COLUMN second_factor_at BIGINT NOT NULL DEFAULT 0;
