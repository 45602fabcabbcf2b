-- The audit trail, hash-chained (storage/audit.py) and append-only. The trigger refuses
-- UPDATE, DELETE and TRUNCATE for every role but a superuser who disables it; PUBLIC loses
-- the privileges too (a role that only got them through PUBLIC cannot even try).
ALTER TABLE audit ADD COLUMN reference text;
ALTER TABLE audit ADD COLUMN detail text;
ALTER TABLE audit ADD COLUMN prev text;
ALTER TABLE audit ADD COLUMN hash text;
CREATE INDEX audit_subject ON audit (subject);
CREATE INDEX audit_actor ON audit (actor);
CREATE INDEX audit_reference ON audit (reference);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC;
