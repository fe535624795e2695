-- Browser session tokens and the byok-relay flow (see migrations/postgres/0002_sessions.sql).

CREATE TABLE session_signing_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kek_version  INTEGER NOT NULL,
    wrapped_dek  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);

ALTER TABLE end_users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;

-- SQLite cannot add a NOT NULL column without a default: the column stays nullable, every row
-- is filled here and by create_tenant, and the unique index keeps ids distinct.
ALTER TABLE tenants ADD COLUMN app_id TEXT;
UPDATE tenants SET app_id = 'app_' || lower(hex(randomblob(12)));
CREATE UNIQUE INDEX tenants_app_id ON tenants (app_id);

ALTER TABLE tenants ADD COLUMN byok_flow_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
