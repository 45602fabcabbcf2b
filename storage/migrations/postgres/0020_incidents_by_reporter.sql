-- "My reports": a reporter's own incidents, found by a keyed hash of their conversation key
-- (the key itself is sealed; an SMS reporter's key is a phone number). Older rows stay NULL
-- and are simply not listed.
ALTER TABLE incidents ADD COLUMN reporter_key text;
CREATE INDEX incidents_reporter_key ON incidents (reporter_key, created_at);
