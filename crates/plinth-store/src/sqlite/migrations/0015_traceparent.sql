-- The W3C traceparent of the request that created a run (or of its parent run), so every
-- attempt, on any node, continues that trace. NULL: accepted without one, or before this column.
ALTER TABLE runs ADD COLUMN traceparent TEXT;
