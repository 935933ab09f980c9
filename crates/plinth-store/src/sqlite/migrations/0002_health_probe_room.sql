-- The health probe also writes 64 KiB and clears it again, so /health fails when the database
-- cannot grow (a full disk or a capped file), not only when it cannot be written at all.
ALTER TABLE health_probe ADD COLUMN room BLOB;
