-- The agencies each board event was visible to, recorded with the event: the incident's
-- dispatched agencies (`incident_agencies`, which every create/update rewrites before it
-- appends the timeline event) at the moment the event was written. An agency told later
-- (an escalation) does not see the incident's earlier events in its live stream or replay.
-- NULL: a row from before this migration (the reader then checks the incident as it stands).
ALTER TABLE board_events ADD COLUMN agencies TEXT;
DROP TRIGGER board_event;
CREATE TRIGGER board_event AFTER INSERT ON timeline BEGIN
    INSERT INTO board_events (incident_id, timeline_seq, agencies) VALUES (
        NEW.incident_id, NEW.seq,
        (SELECT json_group_array(agency) FROM (
            SELECT agency FROM incident_agencies WHERE incident_id = NEW.incident_id
            ORDER BY agency)));
END;
