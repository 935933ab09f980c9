-- Timeouts and cancel_on (issue 12): a run keeps the deadlines of its function's `timeouts`,
-- whether `cancel_on` rules reach it, and the error a cancel asked while it ran ends it with.
ALTER TABLE runs ADD COLUMN start_by INTEGER;
ALTER TABLE runs ADD COLUMN finish_by INTEGER;
ALTER TABLE runs ADD COLUMN cancel_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_error TEXT;
CREATE INDEX runs_start_by ON runs (start_by) WHERE start_by IS NOT NULL AND status = 'queued' AND started_at IS NULL;
CREATE INDEX runs_finish_by ON runs (finish_by)
    WHERE finish_by IS NOT NULL AND cancel_requested = 0 AND status IN ('queued', 'running', 'waiting');
CREATE INDEX runs_cancel_on ON runs (function, created_at)
    WHERE cancel_on = 1 AND status IN ('queued', 'running', 'waiting');
