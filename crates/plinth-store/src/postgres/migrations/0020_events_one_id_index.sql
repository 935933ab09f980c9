-- One index finds an event by its id and keeps ids unique within the dedup window (issue 16):
-- `events_dedup (dedup_key)` and `events_by_id (id, pk)` become `events_by_id_dedup (id,
-- dedup_key)`. `dedup_key` is the id while the event counts for deduplication and NULL after
-- (NULLs never collide), so two events of one id cannot both hold it; an id's events are found
-- through the same index. Each stored event writes one index entry fewer.
CREATE UNIQUE INDEX events_by_id_dedup ON events (id, dedup_key);
DROP INDEX events_dedup;
DROP INDEX events_by_id;
