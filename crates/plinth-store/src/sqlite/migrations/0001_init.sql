-- Runs, their attempts and their logs. Times are microseconds since the Unix epoch.
CREATE TABLE runs (
    id               TEXT PRIMARY KEY NOT NULL,
    function         TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    correlation_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    request_hash     TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_queue ON runs (function, priority DESC, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX runs_due ON runs (next_attempt_at) WHERE status = 'queued';
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_by_function ON runs (function, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_correlation ON runs (correlation_id, id);
CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT NOT NULL,
    error       TEXT,
    duration_us INTEGER,
    PRIMARY KEY (run_id, attempt)
);

CREATE TABLE run_logs (
    run_id  TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt, seq)
);

CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
