-- Debounce (issue 12): a queued run of a debounced function carries its key, so a newer
-- trigger finds it and replaces its input instead of storing another run.
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
CREATE INDEX runs_debounce ON runs (function, debounce_key) WHERE status = 'queued' AND debounce_key IS NOT NULL;
