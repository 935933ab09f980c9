-- The W3C tracestate sent with the run's traceparent (vendors' trace data), handed on with it
-- to every attempt. NULL: none was sent, or before this column.
ALTER TABLE runs ADD COLUMN tracestate TEXT;
