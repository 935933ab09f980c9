-- What started each run, events with the runs they started, and each schedule's last tick.
-- `trigger` is the run's trigger as JSON (NULL: `{"type":"api"}`); `trigger_type` and
-- `event_id` repeat its parts that `GET /runs` filters by.
ALTER TABLE runs ADD COLUMN trigger TEXT;
ALTER TABLE runs ADD COLUMN trigger_type TEXT NOT NULL DEFAULT 'api';
ALTER TABLE runs ADD COLUMN event_id TEXT;
CREATE INDEX runs_by_event ON runs (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX runs_by_trigger ON runs (trigger_type, id);

-- `pk` orders events by receipt and pages the list; `id` is the sender's id (or one assigned).
-- `dedup_key` holds the id while it still deduplicates; the pruner clears it after the window.
CREATE TABLE events (
    pk          TEXT PRIMARY KEY NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    dedup_key   TEXT,
    run_ids     TEXT NOT NULL,
    skipped     TEXT NOT NULL
);
CREATE UNIQUE INDEX events_dedup ON events (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX events_by_id ON events (id, pk);
CREATE INDEX events_by_name ON events (name, pk);
CREATE INDEX events_by_age ON events (received_at);

CREATE TABLE schedules (
    function    TEXT PRIMARY KEY NOT NULL,
    last_tick   INTEGER NOT NULL,
    last_run_id TEXT NOT NULL
);
