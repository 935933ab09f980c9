-- Step functions: why a run waits, and the memo of its steps, one row per step (never a
-- growing blob). `wait` is the unfinished step's wait as JSON; `wait_key` (the event name or
-- the invoked run's id) finds the steps an event or a run's end may wake.
ALTER TABLE runs ADD COLUMN waiting_for TEXT;
CREATE INDEX runs_waiting ON runs (next_attempt_at) WHERE status = 'waiting';

CREATE TABLE steps (
    run_id      TEXT NOT NULL,
    id          TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    op          TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    output      TEXT,
    error       TEXT,
    wait        TEXT,
    wait_key    TEXT,
    PRIMARY KEY (run_id, id)
);
CREATE INDEX steps_waiting ON steps (wait_key) WHERE status = 'waiting';
