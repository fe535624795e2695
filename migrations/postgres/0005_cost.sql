-- What each call cost. Token counts beside prompt and completion: of the prompt, read from and
-- written to the provider's cache; of the completion, reasoning. NULL when the provider reported
-- no usage. cost_nanos is nano-USD (1e-9 USD): NULL without usage or without a price.
ALTER TABLE usage_events ADD COLUMN cached_tokens BIGINT;
ALTER TABLE usage_events ADD COLUMN cache_write_tokens BIGINT;
ALTER TABLE usage_events ADD COLUMN reasoning_tokens BIGINT;
ALTER TABLE usage_events ADD COLUMN cost_nanos BIGINT;
