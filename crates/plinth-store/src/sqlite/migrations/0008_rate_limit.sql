-- Rate limits (issue 12): per function and key, the runs created in the current window.
-- `ends_at` (micros) is when the window closes; the upkeep forgets rows long closed.
CREATE TABLE flow_rates (
    function     TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    ends_at      INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (function, key)
);
CREATE INDEX flow_rates_ends ON flow_rates (ends_at);
