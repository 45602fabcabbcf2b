-- The audit trail's anchor (storage/audit.py): one row, the chain's latest head, moved in
-- the same transaction as every append. Kept out of the audited table so that deleting the
-- last audit rows leaves an anchor the shorter chain does not reach. It only moves forward:
-- the trigger refuses an UPDATE to an earlier row, and any DELETE or TRUNCATE; PUBLIC loses
-- UPDATE/DELETE/TRUNCATE. A deployment may give this table an owner of its own, so that the
-- role owning `audit` cannot disable this trigger too.
CREATE TABLE audit_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL
);
CREATE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.seq > OLD.seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit anchor only moves forward';
END;
$$;
CREATE TRIGGER audit_head_only_forward BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_head FROM PUBLIC;
-- A chain that exists already is anchored where it ends now.
INSERT INTO audit_head (id, seq, hash)
    SELECT 1, seq, hash FROM audit WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1;
