-- Signed webhooks (Standard Webhooks) from a durable outbox.
--
-- An endpoint's signing secret (`whsec_…`) is sealed by the vault like a provider key (context:
-- the endpoint's tenant, nil end user, provider "relay-webhook-secret", record id = endpoint id).
-- `events` is a JSON array of event types, NULL for every type (also ones added later).
CREATE TABLE webhook_endpoints (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    events       TEXT,
    description  TEXT,
    kek_version  INTEGER NOT NULL,
    wrapped_dek  BYTEA NOT NULL,
    ciphertext   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

-- One emitted event: `payload` is the exact body sent (and signed) on every attempt.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- The outbox: one row per (event, endpoint). A worker claims a due row by setting
-- `locked_until` (its lease); `id` orders an endpoint's deliveries oldest first.
CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    locked_until     TIMESTAMPTZ,
    last_status      BIGINT,
    last_error       TEXT,
    last_attempt_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
