-- Per-tenant rate limits and the free-tier model allowlist. A NULL limit means the server's
-- default; 'off' means none; otherwise '<count>/<s|min|hour|day>', e.g. '600/min'.
ALTER TABLE tenants ADD COLUMN rate_limit_api_key TEXT;
ALTER TABLE tenants ADD COLUMN rate_limit_end_user TEXT;
ALTER TABLE tenants ADD COLUMN rate_limit_free_end_user TEXT;
-- A JSON array of model globs ("gpt-4o-mini", "claude-haiku-*") free-tier end users may call;
-- empty: every model.
ALTER TABLE tenants ADD COLUMN free_models TEXT NOT NULL DEFAULT '[]';
