-- Idempotency keys in a table of their own (decision 0026). A key is held by one row here for
-- its window; the run keeps the key it was created with, to show it. Forgetting a key deletes
-- its small row instead of updating the run: the update was not a HOT one (the key is indexed),
-- so it wrote a new version of the whole run with an entry in each of its indexes. And `runs`
-- no longer needs a unique index of its own besides the primary key, which a table partitioned
-- by run id requires.
CREATE TABLE run_keys (
    key          TEXT COLLATE "C" PRIMARY KEY,
    run_id       TEXT COLLATE "C" NOT NULL,
    request_hash TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX run_keys_by_age ON run_keys (created_at);
INSERT INTO run_keys (key, run_id, request_hash, created_at)
    SELECT idempotency_key, id, request_hash, created_at FROM runs WHERE idempotency_key IS NOT NULL;
DROP INDEX runs_idempotency;
DROP INDEX runs_keys_by_age;
ALTER TABLE runs DROP COLUMN request_hash;
