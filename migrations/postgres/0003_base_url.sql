-- openai-compatible keys carry the base URL they were stored for (also bound into the seal).
ALTER TABLE provider_keys ADD COLUMN base_url TEXT;
