-- A run waiting for an event with a condition `event.data.A == run.input.B` is found by its own
-- value at B (`s:<text>` or `i:<integer>`, empty when no event can equal it), so an event looks
-- up the few runs that hold its value instead of every run waiting on its name. NULL: a wait
-- stored before this column, or one without such a condition.
ALTER TABLE steps ADD COLUMN wait_match TEXT;
CREATE INDEX steps_wait_match ON steps (wait_key, wait_match) WHERE status = 'waiting';
