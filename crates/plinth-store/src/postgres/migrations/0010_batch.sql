-- Batches (issue 12): the open batch of a key is the queued, never started run carrying the key;
-- it is closed (the key cleared) when full.
ALTER TABLE runs ADD COLUMN batch_key TEXT;
CREATE INDEX runs_batch ON runs (function, batch_key) WHERE status = 'queued' AND batch_key IS NOT NULL;
