-- The PDPA ledger (storage/privacy.py): subject requests with their legal deadlines,
-- append-only consent events, breaches. Times are epoch seconds on both backends.
CREATE TABLE subject_requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    selector TEXT NOT NULL,
    received_at REAL NOT NULL,
    due_at REAL NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    closed_at REAL,
    reason TEXT NOT NULL,
    refs TEXT NOT NULL
);
CREATE INDEX subject_requests_open ON subject_requests (status, due_at);
CREATE TABLE consent_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    purposes TEXT NOT NULL,
    channel TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    catalog_key TEXT NOT NULL,
    catalog_version TEXT NOT NULL,
    text TEXT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (subject, seq);
CREATE TRIGGER consent_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TABLE breaches (
    id TEXT PRIMARY KEY,
    opened_at REAL NOT NULL,
    deadline REAL NOT NULL,
    scope TEXT NOT NULL,
    subjects TEXT NOT NULL,
    refs TEXT NOT NULL,
    notice TEXT NOT NULL,
    actor TEXT NOT NULL
);
