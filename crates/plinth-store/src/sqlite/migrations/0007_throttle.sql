-- Throttle (issue 12). A run's lane key is now its flow key: the `concurrency` key, or the
-- `throttle` key of a function with only a throttle. `tat` is the lane's throttle state (the
-- generic cell rate algorithm's theoretical arrival time, micros; 0 never throttled).
ALTER TABLE runs RENAME COLUMN concurrency_key TO flow_key;
ALTER TABLE flow_keys ADD COLUMN tat INTEGER NOT NULL DEFAULT 0;
