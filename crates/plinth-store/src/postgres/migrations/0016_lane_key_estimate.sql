-- The planner's estimate for "the runs of one lane" (issue 16). A claim reads each lane's queue
-- with the lane's key as a parameter, so PostgreSQL estimates it as 1 / (distinct keys) of the
-- function's runs. With 1,000,000 runs queued under one key, freshly analyzed statistics
-- said there was about one key: the claim then walked `runs_queue` for the whole function,
-- filtering on the key, to find a free key's one run (300 ms a pickup, against 0.1 ms through
-- `runs_lane_queue`). Keys are assumed to be many (5% of the rows distinct), so a lane's runs are
-- estimated few and read through the lane's own index, whatever the statistics say.
ALTER TABLE runs ALTER COLUMN flow_key SET (n_distinct = -0.05);
