-- Board accounts (issue 11). Tokens and session ids are stored as keyed digests.
CREATE TABLE staff (
    login text PRIMARY KEY,
    name text NOT NULL,
    lang text NOT NULL,
    roles jsonb NOT NULL,
    areas jsonb NOT NULL,
    agencies jsonb NOT NULL,
    password text,              -- Argon2id hash; NULL until set
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);
CREATE TABLE staff_sessions (
    token text PRIMARY KEY,
    login text NOT NULL REFERENCES staff (login),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX staff_sessions_login ON staff_sessions (login);
CREATE TABLE staff_tokens (
    token text PRIMARY KEY,
    login text NOT NULL REFERENCES staff (login),
    expires_at timestamptz NOT NULL
);
-- The board's event log. A sequence is not commit order (a transaction may commit after a
-- later number was read), so the trigger numbers rows under a transaction-level advisory
-- lock: the numbers commit in order, and a reader polling "after N" never skips one.
-- NOTIFY (delivered at commit) wakes every process's board.
CREATE TABLE board_events (
    seq bigint PRIMARY KEY,
    incident_id text NOT NULL,
    timeline_seq bigint NOT NULL
);
CREATE FUNCTION board_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE next_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4543630011);
    SELECT coalesce(max(seq), 0) + 1 INTO next_seq FROM board_events;
    INSERT INTO board_events (seq, incident_id, timeline_seq)
        VALUES (next_seq, NEW.incident_id, NEW.seq);
    PERFORM pg_notify('ess_board', next_seq::text);
    RETURN NULL;
END $$;
CREATE TRIGGER board_event AFTER INSERT ON timeline
    FOR EACH ROW EXECUTE FUNCTION board_event();
CREATE INDEX incidents_area_codes ON incidents USING gin (area_codes);
