-- Data protection: the vault's data keys and the hash-chained audit log. Same SQL for SQLite
-- and PostgreSQL. See crates/server/src/platform/crypto.rs, keys.rs and audit.rs.

-- Data-encryption keys, each wrapped (AES-256-GCM) under the master key, which never enters
-- the database. status: current (new values are encrypted under it; exactly one), previous
-- (still used by some ciphertexts until `clipcart keys rotate` has moved them), retired (no
-- ciphertext uses it; its wrapped key is erased).
CREATE TABLE vault_keys (
    version       BIGINT PRIMARY KEY,
    status        TEXT NOT NULL CHECK (status IN ('current', 'previous', 'retired')),
    wrapped_key   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    superseded_at BIGINT,
    retired_at    BIGINT
);
CREATE UNIQUE INDEX vault_keys_one_current ON vault_keys (status) WHERE status = 'current';

-- Encrypted columns whose pre-vault plaintext rows have all been encrypted ("shops.tax_id").
-- Once a column is listed here, a value in it that is not a vault ciphertext is an error,
-- never plaintext to trust.
CREATE TABLE vault_sweeps (
    column_name TEXT PRIMARY KEY,
    finished_at BIGINT NOT NULL
);

-- The audit log: append-only, each row's hash covers its contents and the previous row's hash
-- (see audit.rs for the exact encoding). seq counts 1, 2, 3, ... without gaps.
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    details_json TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- The chain's head: one row, the last seq and its hash. Appending updates it first, which on
-- PostgreSQL locks the row until the appending transaction ends (on SQLite the single writer
-- does the same), so appends are serialised and the chain cannot fork. It also lets
-- `audit verify` notice rows deleted from the end.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
