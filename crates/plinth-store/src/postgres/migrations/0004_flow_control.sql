-- Flow control (issue 12). `concurrency_key` is a run's lane under its function's
-- `concurrency` limit ('' the shared lane, NULL no limit). `flow_keys` holds one row per lane
-- with open runs: `served` orders the lanes round-robin in the claim (0: never served),
-- `touched_at` tells an idle lane the upkeep may forget. A claim locks the lanes it serves
-- (FOR NO KEY UPDATE SKIP LOCKED), so two nodes never count one lane at once; an enqueue holds
-- its lane FOR KEY SHARE, so the upkeep cannot forget a lane whose new run is not committed.
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
CREATE INDEX runs_lane_queue ON runs (function, concurrency_key, priority DESC, next_attempt_at, id)
    WHERE status = 'queued' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_lane_open ON runs (function, concurrency_key, status)
    WHERE concurrency_key IS NOT NULL AND status IN ('queued', 'running', 'waiting');

CREATE TABLE flow_keys (
    function   TEXT NOT NULL,
    key        TEXT NOT NULL,
    served     BIGINT NOT NULL DEFAULT 0,
    touched_at BIGINT NOT NULL,
    PRIMARY KEY (function, key)
);
CREATE INDEX flow_keys_turn ON flow_keys (function, served, key);
CREATE INDEX flow_keys_idle ON flow_keys (touched_at);
