-- The dashboard's overview (issue 13): ended runs added up per function and minute by the upkeep
-- leader, up to the mark (its row lock keeps two nodes from adding the same runs twice); and the
-- nodes that serve the schema, each saying it is alive every few seconds.
CREATE TABLE run_minutes (
    function TEXT COLLATE "C" NOT NULL,
    minute   BIGINT NOT NULL,
    status   TEXT NOT NULL,
    code     TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    runs     BIGINT NOT NULL,
    PRIMARY KEY (function, minute, status, code, bucket)
);
CREATE INDEX run_minutes_by_minute ON run_minutes (minute);
CREATE TABLE run_minutes_mark (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_until  BIGINT
);
INSERT INTO run_minutes_mark (id, rolled_until) VALUES (1, NULL);
CREATE TABLE nodes (
    id         TEXT COLLATE "C" PRIMARY KEY,
    host       TEXT NOT NULL,
    version    TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    leads      BOOLEAN NOT NULL
);
