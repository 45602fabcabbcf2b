-- The audit trail, hash-chained (storage/audit.py) and append-only: nobody, the application
-- included, can rewrite or remove a row through SQL without dropping these triggers first,
-- and `ess audit verify` notices a row changed behind their back.
ALTER TABLE audit ADD COLUMN reference TEXT;
ALTER TABLE audit ADD COLUMN detail TEXT;
ALTER TABLE audit ADD COLUMN prev TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
CREATE INDEX audit_subject ON audit (subject);
CREATE INDEX audit_actor ON audit (actor);
CREATE INDEX audit_reference ON audit (reference);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
