-- One index entry fewer at each write of a run (issue 16): `runs_by_status (status, id)` is
-- dropped. Every run wrote it twice (started, then ended), about 250 bytes of WAL of the 2,266
-- a run wrote in all (decision 0031). A page of runs in one status, with no function named,
-- now walks the functions along `runs_by_function_status` (one probe for each function) and
-- merges one ordered range of that index per function, as a page of one function in any status
-- merges one per status; it reads at most a page for each function, whatever the table holds.
DROP INDEX runs_by_status;
