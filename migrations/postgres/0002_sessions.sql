-- Browser session tokens and the byok-relay flow.
--
-- Session tokens are HS256 JWTs. Their signing key is stored sealed by the vault like a provider
-- key (context: nil tenant and end user, provider "relay-session-signing", record id = row id),
-- so every node behind the load balancer shares it and `relay kek rotate` re-wraps it. `name`
-- is unique: nodes starting at once insert-if-absent and then all read back the one row.
CREATE TABLE session_signing_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kek_version  INTEGER NOT NULL,
    wrapped_dek  BYTEA NOT NULL,
    ciphertext   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- A session token carries the generation it was issued at; bumping it revokes them all.
ALTER TABLE end_users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

-- The publishable id browser-only apps name themselves by (POST /users {app_id}). Existing
-- tenants get "app_" + 24 random hex characters; new ones "app_" + 24 base62 from the server.
ALTER TABLE tenants ADD COLUMN app_id TEXT;
UPDATE tenants SET app_id = 'app_' || substr(md5(random()::text || clock_timestamp()::text || id::text), 1, 24);
ALTER TABLE tenants ALTER COLUMN app_id SET NOT NULL;
ALTER TABLE tenants ADD CONSTRAINT tenants_app_id_key UNIQUE (app_id);

-- The byok-relay flow is off until the operator turns it on for a tenant.
ALTER TABLE tenants ADD COLUMN byok_flow_enabled BOOLEAN NOT NULL DEFAULT FALSE;
-- A JSON array of exact origins ("https://app.example.com") allowed to call the browser routes.
ALTER TABLE tenants ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
