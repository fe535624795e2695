-- The console: accounts (email + Argon2id PHC hash), their roles in tenants, one-time invites
-- and server-side sessions. Invite and session tokens are stored as SHA-256 hashes only.

CREATE TABLE console_accounts (
    id                   UUID PRIMARY KEY,
    -- Lower-cased; one account per address.
    email                TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    operator             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TIMESTAMPTZ NOT NULL,
    password_changed_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE console_memberships (
    account_id  UUID NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, tenant_id)
);
CREATE INDEX console_memberships_tenant ON console_memberships (tenant_id);

CREATE TABLE console_invites (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX console_invites_tenant ON console_invites (tenant_id);

CREATE TABLE console_sessions (
    id            UUID PRIMARY KEY,
    token_hash    BYTEA NOT NULL UNIQUE,
    account_id    UUID NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    -- The tenant the session acts in (none: an operator without a tenant).
    tenant_id     UUID REFERENCES tenants (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account_id);

-- Where an action came from (the client address), for actions taken in the console.
ALTER TABLE audit_log ADD COLUMN address TEXT;
-- "Last used" of a rly- key, from its usage events.
CREATE INDEX usage_events_api_key_time ON usage_events (api_key_id, created_at);
