-- Staff sub-accounts and step-up. Same SQL for SQLite and PostgreSQL.
-- The rules (areas, view/edit, presets, owner-only areas) live in
-- crates/domain/src/identity/staff.rs.

-- A shop's own roles next to the presets. permissions: "area:level" pairs, comma separated.
CREATE TABLE shop_roles (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX shop_roles_name ON shop_roles (shop_id, name);

-- Staff of a shop (the owner is shops.owner_user_id, not a member). An account works for one
-- shop at most. role: a preset key ("admin", "catalogue", ...) or a shop_roles id.
CREATE TABLE shop_members (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    shop_id    TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    invited_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX shop_members_shop ON shop_members (shop_id, created_at, user_id);

-- Invitations by email. The token travels only in the mail; its SHA-256 digest is stored.
-- status: pending, accepted, revoked (expiry is read from expires_at).
CREATE TABLE staff_invitations (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    accepted_by TEXT REFERENCES users (id),
    decided_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX staff_invitations_shop ON staff_invitations (shop_id, created_at, id);

-- Step-up: when the holder of an API token last proved a second factor (or, without one,
-- their password) — the sessions table keeps the same as second_factor_at.
ALTER TABLE api_tokens ADD COLUMN stepped_up_at BIGINT NOT NULL DEFAULT 0;
