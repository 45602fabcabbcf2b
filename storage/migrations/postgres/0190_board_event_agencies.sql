-- The agencies each board event was visible to, recorded with the event: the incident's
-- dispatched agencies (`incidents.agencies`, which every create/update rewrites in the
-- statement before it appends the timeline event) at the moment the event was written. An
-- agency told later (an escalation) does not see the incident's earlier events in its live
-- stream or replay. NULL: a row from before this migration (the reader then checks the
-- incident as it stands).
ALTER TABLE board_events ADD COLUMN agencies text[];
CREATE OR REPLACE FUNCTION board_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE next_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4543630011);
    SELECT coalesce(max(seq), 0) + 1 INTO next_seq FROM board_events;
    INSERT INTO board_events (seq, incident_id, timeline_seq, agencies) VALUES (
        next_seq, NEW.incident_id, NEW.seq,
        coalesce((SELECT agencies FROM incidents WHERE id = NEW.incident_id), '{}'));
    PERFORM pg_notify('ess_board', next_seq::text);
    RETURN NULL;
END $$;
