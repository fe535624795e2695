-- Relay's schema on SQLite (the embedded default). Ids are UUID text, times are Unix
-- milliseconds. Secrets are stored only as SHA-256 hashes or sealed by the vault.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    public_id    TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    last4        TEXT NOT NULL,
    name         TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE end_users (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    paid        INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, label)
);

CREATE TABLE provider_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id   TEXT NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    kek_version   INTEGER NOT NULL,
    wrapped_dek   BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    UNIQUE (end_user_id, provider)
);
CREATE INDEX provider_keys_kek_version ON provider_keys (kek_version, id);

CREATE TABLE registration_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id  TEXT NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    provider     TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX registration_tokens_end_user ON registration_tokens (end_user_id);

CREATE TABLE usage_events (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    end_user_id        TEXT REFERENCES end_users (id) ON DELETE CASCADE,
    api_key_id         TEXT,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    status             INTEGER NOT NULL,
    paid               INTEGER NOT NULL,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    latency_ms         INTEGER NOT NULL,
    ttft_ms            INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX usage_events_tenant_time ON usage_events (tenant_id, created_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, created_at);
