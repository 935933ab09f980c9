-- The dashboard's overview (issue 13): ended runs added up per function and minute by the upkeep,
-- up to the mark; and the nodes that serve the store.
CREATE TABLE run_minutes (
    function TEXT NOT NULL,
    minute   INTEGER NOT NULL,
    status   TEXT NOT NULL,
    code     TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    runs     INTEGER NOT NULL,
    PRIMARY KEY (function, minute, status, code, bucket)
) WITHOUT ROWID;
CREATE INDEX run_minutes_by_minute ON run_minutes (minute);
CREATE TABLE run_minutes_mark (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_until  INTEGER
);
INSERT INTO run_minutes_mark (id, rolled_until) VALUES (1, NULL);
CREATE TABLE nodes (
    id         TEXT PRIMARY KEY NOT NULL,
    host       TEXT NOT NULL,
    version    TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    leads      INTEGER NOT NULL
);
