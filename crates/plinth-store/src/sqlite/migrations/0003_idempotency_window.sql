-- Idempotency keys expire after a window: the pruner finds the oldest keyed runs by this index.
CREATE INDEX runs_keys_by_age ON runs (created_at) WHERE idempotency_key IS NOT NULL;
