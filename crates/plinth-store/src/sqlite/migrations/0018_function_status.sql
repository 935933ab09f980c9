-- A page of one function in one status reads one range (issue 16). With (function, id) and
-- (status, id) only, SQLite, which keeps no statistics here, took either: through
-- `runs_by_status`, a function with no run in the status asked walked every run in it
-- (261 ms at 400,000 runs). (function, status, id) gives that page at once, and a page of one
-- function in any status as one range per status, merged; it replaces (function, id).
CREATE INDEX runs_by_function_status ON runs (function, status, id);
DROP INDEX runs_by_function;
