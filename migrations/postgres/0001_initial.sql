-- Relay's schema on PostgreSQL. Secrets are stored only as SHA-256 hashes (api_keys,
-- registration_tokens) or sealed by the vault (provider_keys).

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    public_id    TEXT NOT NULL UNIQUE,
    secret_hash  BYTEA NOT NULL,
    last4        TEXT NOT NULL,
    name         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE end_users (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    paid        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, label)
);

CREATE TABLE provider_keys (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id   UUID NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    kek_version   INTEGER NOT NULL,
    wrapped_dek   BYTEA NOT NULL,
    ciphertext    BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    UNIQUE (end_user_id, provider)
);
CREATE INDEX provider_keys_kek_version ON provider_keys (kek_version, id);

CREATE TABLE registration_tokens (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id  UUID NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL UNIQUE,
    provider     TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);
CREATE INDEX registration_tokens_end_user ON registration_tokens (end_user_id);

CREATE TABLE usage_events (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id        UUID REFERENCES end_users (id) ON DELETE CASCADE,
    api_key_id         UUID,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    status             INTEGER NOT NULL,
    paid               BOOLEAN NOT NULL,
    prompt_tokens      BIGINT,
    completion_tokens  BIGINT,
    latency_ms         BIGINT NOT NULL,
    ttft_ms            BIGINT,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_events_tenant_time ON usage_events (tenant_id, created_at);

-- Who did what. Targets are ids, never labels or secrets, so erasing an end user leaves no
-- personal data here.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   UUID,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, created_at);
