-- Runs, their attempts and their logs, as SQLite's migrations 0001-0003 leave them.
-- Times are microseconds since the Unix epoch (BIGINT). JSON (input, output, errors) is kept as
-- TEXT, exactly as serialized: JSONB would reorder keys and refuse "\u0000" in strings, and
-- nothing queries inside it. Ids and function names compare bytewise (COLLATE "C"), so run ids
-- (ULIDs) sort and page the same as on SQLite whatever the database's collation.
CREATE TABLE runs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    function         TEXT COLLATE "C" NOT NULL,
    status           TEXT NOT NULL,
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    correlation_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    request_hash     TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX runs_queue ON runs (function, priority DESC, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX runs_due ON runs (next_attempt_at) WHERE status = 'queued';
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_finished ON runs (finished_at, id) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_by_function ON runs (function, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_correlation ON runs (correlation_id, id);
CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_keys_by_age ON runs (created_at) WHERE idempotency_key IS NOT NULL;

CREATE TABLE attempts (
    run_id      TEXT COLLATE "C" NOT NULL,
    attempt     BIGINT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT NOT NULL,
    error       TEXT,
    duration_us BIGINT,
    PRIMARY KEY (run_id, attempt)
);

CREATE TABLE run_logs (
    run_id  TEXT COLLATE "C" NOT NULL,
    attempt BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    ts      BIGINT NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt, seq)
);

CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
