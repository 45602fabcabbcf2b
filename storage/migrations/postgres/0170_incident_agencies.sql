-- The agencies each incident was dispatched to (the agencies of its dispatch targets, kept
-- in clear in details.dispatch), so a staff member's agencies scope the board's reads in the
-- query (`agencies && $n`, through the GIN index).
ALTER TABLE incidents ADD COLUMN agencies text[] NOT NULL DEFAULT '{}';
CREATE INDEX incidents_agencies ON incidents USING gin (agencies);

-- Backfill: every incident already dispatched.
UPDATE incidents SET agencies = ARRAY(
    SELECT DISTINCT t.value->>'agency' FROM jsonb_each(details->'dispatch'->'targets') t
    WHERE coalesce(t.value->>'agency', '') <> '' ORDER BY 1)
WHERE jsonb_typeof(details->'dispatch'->'targets') = 'object';
