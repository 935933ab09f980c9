-- Step functions (as SQLite's migration 0005): why a run waits, and the memo of its steps,
-- one row per step. `wait_key` (an event name or an invoked run's id) finds the steps an
-- event or a run's end may wake.
ALTER TABLE runs ADD COLUMN waiting_for TEXT;
CREATE INDEX runs_waiting ON runs (next_attempt_at) WHERE status = 'waiting';

CREATE TABLE steps (
    run_id      TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    op          TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    output      TEXT,
    error       TEXT,
    wait        TEXT,
    wait_key    TEXT COLLATE "C",
    PRIMARY KEY (run_id, id)
);
CREATE INDEX steps_waiting ON steps (wait_key) WHERE status = 'waiting';
