-- Budgets and what has been spent against them. Money is stored in nano-USD (1e-9 USD).

-- A tenant's budgets: subject 'tenant', 'end_user_default' or 'end_user:<uuid>' (end_user_id set).
CREATE TABLE budgets (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    end_user_id    TEXT REFERENCES end_users (id) ON DELETE CASCADE,
    limit_nanos    INTEGER NOT NULL,
    period         TEXT NOT NULL,
    -- The share of the limit at which budget.threshold fires, in basis points (8000 = 80 %).
    alert_at_bps   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subject)
);

-- Spend per subject ('tenant', 'end_user:<uuid>', 'key:<uuid>:<provider>') and calendar period
-- (UTC day or month), added to in the transaction that stores the usage events it comes from.
-- The *_sent flags make each alert fire once per period.
CREATE TABLE spend (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    period          TEXT NOT NULL,
    period_start    INTEGER NOT NULL,
    end_user_id     TEXT REFERENCES end_users (id) ON DELETE CASCADE,
    spent_nanos     INTEGER NOT NULL,
    threshold_sent  INTEGER NOT NULL DEFAULT 0,
    exceeded_sent   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, subject, period, period_start)
);
CREATE INDEX spend_end_user ON spend (end_user_id);

-- The end user's own cap on what the app may spend on this key per calendar month (UTC);
-- NULL: none. Set only when the key itself is connected.
ALTER TABLE provider_keys ADD COLUMN monthly_cap_nanos INTEGER;
