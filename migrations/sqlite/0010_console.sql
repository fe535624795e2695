-- The console: accounts (email + Argon2id PHC hash), their roles in tenants, one-time invites
-- and server-side sessions. Invite and session tokens are stored as SHA-256 hashes only.

CREATE TABLE console_accounts (
    id                   TEXT PRIMARY KEY,
    -- Lower-cased; one account per address.
    email                TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    operator             INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL
);

CREATE TABLE console_memberships (
    account_id  TEXT NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, tenant_id)
);
CREATE INDEX console_memberships_tenant ON console_memberships (tenant_id);

CREATE TABLE console_invites (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX console_invites_tenant ON console_invites (tenant_id);

CREATE TABLE console_sessions (
    id            TEXT PRIMARY KEY,
    token_hash    BLOB NOT NULL UNIQUE,
    account_id    TEXT NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    -- The tenant the session acts in (none: an operator without a tenant).
    tenant_id     TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account_id);

-- Where an action came from (the client address), for actions taken in the console.
ALTER TABLE audit_log ADD COLUMN address TEXT;
-- "Last used" of a rly- key, from its usage events.
CREATE INDEX usage_events_api_key_time ON usage_events (api_key_id, created_at);
