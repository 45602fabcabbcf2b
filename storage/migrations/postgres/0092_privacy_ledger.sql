-- The PDPA ledger (storage/privacy.py): subject requests with their legal deadlines,
-- append-only consent events, breaches. Times are epoch seconds on both backends (one SQL
-- text serves both).
CREATE TABLE subject_requests (
    id text PRIMARY KEY,
    kind text NOT NULL,
    subject text NOT NULL,
    selector text NOT NULL,
    received_at double precision NOT NULL,
    due_at double precision NOT NULL,
    actor text NOT NULL,
    status text NOT NULL,
    closed_at double precision,
    reason text NOT NULL,
    refs text NOT NULL
);
CREATE INDEX subject_requests_open ON subject_requests (status, due_at);
CREATE TABLE consent_events (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    kind text NOT NULL,
    subject text NOT NULL,
    purposes text NOT NULL,
    channel text NOT NULL,
    actor text NOT NULL,
    at double precision NOT NULL,
    catalog_key text NOT NULL,
    catalog_version text NOT NULL,
    text text NOT NULL,
    reference text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (subject, seq);
CREATE FUNCTION consent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent events are append-only';
END;
$$;
CREATE TRIGGER consent_no_change BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON consent_events FROM PUBLIC;
CREATE TABLE breaches (
    id text PRIMARY KEY,
    opened_at double precision NOT NULL,
    deadline double precision NOT NULL,
    scope text NOT NULL,
    subjects text NOT NULL,
    refs text NOT NULL,
    notice text NOT NULL,
    actor text NOT NULL
);
