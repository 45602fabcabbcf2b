-- The agencies each incident was dispatched to (the agencies of its dispatch targets, kept
-- in clear in details.dispatch), so a staff member's agencies scope the board's reads in the
-- query. One row per (agency, incident): the primary key is the index the scope looks up.
CREATE TABLE incident_agencies (
    agency TEXT NOT NULL,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (agency, incident_id)
) WITHOUT ROWID;
CREATE INDEX incident_agencies_by_incident ON incident_agencies (incident_id);

-- Backfill: every incident already dispatched.
INSERT OR IGNORE INTO incident_agencies (agency, incident_id)
SELECT json_extract(t.value, '$.agency'), i.id
FROM incidents i, json_each(i.details, '$.dispatch.targets') t
WHERE json_valid(i.details) AND json_type(i.details, '$.dispatch.targets') = 'object'
  AND coalesce(json_extract(t.value, '$.agency'), '') <> '';
