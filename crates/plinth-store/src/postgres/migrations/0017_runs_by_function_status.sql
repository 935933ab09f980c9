-- A page of one function's runs in one status (`GET /runs?function=F&status=S`, the dashboard's
-- filter), read in id order through one index whatever the table holds (issue 16).
-- With (function, id) and (status, id) only, PostgreSQL estimates the pair's rows as spread
-- evenly over the table and may walk the primary key backwards, filtering: with 200,000 runs of
-- `hold` queued an hour ago and 20,000 newer runs of another function, each page read those
-- 20,000 rows first (3.2 ms against 0.9 empty), and the walk grows with every newer run.
-- (function, status, id) replaces (function, id), so a run's writes touch as many indexes as
-- before (an extra index cost 7% of the runs ended per second). A page of one function in any
-- status merges one ordered range per status.
CREATE INDEX runs_by_function_status ON runs (function, status, id);
DROP INDEX runs_by_function;
