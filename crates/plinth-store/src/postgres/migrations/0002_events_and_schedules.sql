-- What started each run, events with the runs they started, and each schedule's last tick
-- (as SQLite's migration 0004). `trigger` is the run's trigger as JSON text (NULL: api).
ALTER TABLE runs ADD COLUMN trigger TEXT;
ALTER TABLE runs ADD COLUMN trigger_type TEXT NOT NULL DEFAULT 'api';
ALTER TABLE runs ADD COLUMN event_id TEXT COLLATE "C";
CREATE INDEX runs_by_event ON runs (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX runs_by_trigger ON runs (trigger_type, id);

CREATE TABLE events (
    pk          TEXT COLLATE "C" PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    data        TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    dedup_key   TEXT COLLATE "C",
    run_ids     TEXT NOT NULL,
    skipped     TEXT NOT NULL
);
CREATE UNIQUE INDEX events_dedup ON events (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX events_by_id ON events (id, pk);
CREATE INDEX events_by_name ON events (name, pk);
CREATE INDEX events_by_age ON events (received_at);

CREATE TABLE schedules (
    function    TEXT COLLATE "C" PRIMARY KEY,
    last_tick   BIGINT NOT NULL,
    last_run_id TEXT NOT NULL
);
