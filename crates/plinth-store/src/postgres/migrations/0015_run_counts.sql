-- Open runs counted as they change (issue 16): the queue depth, the running and the waiting runs
-- per function without counting index entries, whose number grows with the queue (1,000,000
-- queued runs: 226 ms an overview). Every statement that inserts, updates or deletes runs adds
-- what it changed, once per statement, to the rows of its own connection (`shard` is the
-- backend's pid, which no two open transactions share, so two nodes never wait on one row and
-- cannot deadlock on them); the upkeep leader folds those rows into shard 0 from time to time.
-- A reader adds up the shards.
CREATE TABLE run_counts (
    function TEXT COLLATE "C" NOT NULL,
    status   TEXT NOT NULL,
    shard    INTEGER NOT NULL,
    runs     BIGINT NOT NULL,
    PRIMARY KEY (function, status, shard)
);

CREATE FUNCTION plinth_count_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts (function, status, shard, runs)
        SELECT function, status, pg_backend_pid(), COUNT(*) FROM new_runs
        WHERE status IN ('queued', 'running', 'waiting') GROUP BY function, status
        ON CONFLICT (function, status, shard) DO UPDATE SET runs = run_counts.runs + excluded.runs;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO run_counts (function, status, shard, runs)
        SELECT function, status, pg_backend_pid(), SUM(n) FROM (
            SELECT function, status, 1 AS n FROM new_runs WHERE status IN ('queued', 'running', 'waiting')
            UNION ALL
            SELECT function, status, -1 AS n FROM old_runs WHERE status IN ('queued', 'running', 'waiting')
        ) moved GROUP BY function, status HAVING SUM(n) <> 0
        ON CONFLICT (function, status, shard) DO UPDATE SET runs = run_counts.runs + excluded.runs;
    ELSE
        INSERT INTO run_counts (function, status, shard, runs)
        SELECT function, status, pg_backend_pid(), -COUNT(*) FROM old_runs
        WHERE status IN ('queued', 'running', 'waiting') GROUP BY function, status
        ON CONFLICT (function, status, shard) DO UPDATE SET runs = run_counts.runs + excluded.runs;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_counted_on_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION plinth_count_runs();
CREATE TRIGGER runs_counted_on_update AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION plinth_count_runs();
CREATE TRIGGER runs_counted_on_delete AFTER DELETE ON runs
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION plinth_count_runs();

-- The runs open when the triggers came (no other writer can run before this commits: creating
-- a trigger locks the table against writes).
INSERT INTO run_counts (function, status, shard, runs)
SELECT function, status, 0, COUNT(*) FROM runs WHERE status IN ('queued', 'running', 'waiting') GROUP BY function, status;
