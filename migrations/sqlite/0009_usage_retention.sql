-- Usage under sustained load: daily roll-ups that outlive the raw usage events, and the indexes
-- that keep inserts, reports, erasure and pruning flat as the tables grow.

-- One row per tenant, UTC day, end user, provider and model: what GET /v1/usage sums, added to
-- in the transaction that stores the usage events it comes from. user_key is end_user_id as
-- text, or '' for calls without an end user (a key column cannot be NULL).
CREATE TABLE usage_daily (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day                 INTEGER NOT NULL,
    user_key            TEXT NOT NULL,
    end_user_id         TEXT REFERENCES end_users (id) ON DELETE CASCADE,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    requests            INTEGER NOT NULL,
    errors              INTEGER NOT NULL,
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    cached_tokens       INTEGER NOT NULL,
    cache_write_tokens  INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    cost_nanos          INTEGER NOT NULL,
    unpriced_calls      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, user_key, provider, model)
);
-- Erasing an end user (cascade) and reports for one end user.
CREATE INDEX usage_daily_end_user ON usage_daily (end_user_id, day);
-- Pruning expired roll-ups.
CREATE INDEX usage_daily_day ON usage_daily (day);

-- Pruning expired events in small batches, oldest first.
CREATE INDEX usage_events_created_at ON usage_events (created_at);
-- Erasing an end user (cascade) and reports for one end user, without a scan of the table.
CREATE INDEX usage_events_end_user ON usage_events (end_user_id, created_at);
-- Pruning spend counters of past periods.
CREATE INDEX spend_period_start ON spend (period_start);

INSERT INTO usage_daily (tenant_id, day, user_key, end_user_id, provider, model, requests, errors, prompt_tokens,
                         completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos,
                         unpriced_calls)
SELECT tenant_id,
       (created_at / 86400000) * 86400000,
       COALESCE(end_user_id, ''),
       end_user_id,
       provider,
       model,
       COUNT(*),
       SUM(CASE WHEN status = 0 OR status >= 400 THEN 1 ELSE 0 END),
       COALESCE(SUM(prompt_tokens), 0),
       COALESCE(SUM(completion_tokens), 0),
       COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cache_write_tokens), 0),
       COALESCE(SUM(reasoning_tokens), 0),
       COALESCE(SUM(cost_nanos), 0),
       SUM(CASE WHEN cost_nanos IS NULL AND prompt_tokens IS NOT NULL THEN 1 ELSE 0 END)
FROM usage_events
GROUP BY 1, 2, 3, 4, 5, 6;
