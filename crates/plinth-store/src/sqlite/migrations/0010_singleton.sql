-- Singleton (issue 12): an unfinished run of a singleton function carries its key, so a new
-- run of the key finds it (to refuse the new one, or cancel the old one).
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
CREATE INDEX runs_singleton ON runs (function, singleton_key)
    WHERE singleton_key IS NOT NULL AND status IN ('queued', 'running', 'waiting');
