-- Key health: what the providers' answers said about a stored key. 'ok' (also every key just
-- connected), 'invalid' (a 401/403: calls are refused until a key is connected again) or
-- 'quota_exhausted'. The reason is short, human and masked; status_at is the last change (NULL:
-- none since the key was connected). Connecting a key again resets all three.
ALTER TABLE provider_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'
    CHECK (status IN ('ok', 'invalid', 'quota_exhausted'));
ALTER TABLE provider_keys ADD COLUMN status_reason TEXT;
ALTER TABLE provider_keys ADD COLUMN status_at TIMESTAMPTZ;
