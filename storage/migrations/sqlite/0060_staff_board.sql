-- Board accounts (issue 11). Tokens and session ids are stored as keyed digests.
CREATE TABLE staff (
    login TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lang TEXT NOT NULL,
    roles TEXT NOT NULL,        -- JSON list
    areas TEXT NOT NULL,        -- JSON list
    agencies TEXT NOT NULL,     -- JSON list
    password TEXT,              -- Argon2id hash; NULL until set
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE staff_sessions (
    token TEXT PRIMARY KEY,
    login TEXT NOT NULL REFERENCES staff (login),
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX staff_sessions_login ON staff_sessions (login);
CREATE TABLE staff_tokens (
    token TEXT PRIMARY KEY,
    login TEXT NOT NULL REFERENCES staff (login),
    expires_at REAL NOT NULL
);
-- The board's event log: one row per timeline event, numbered in commit order (SQLite has
-- one writer at a time, so AUTOINCREMENT is commit order).
CREATE TABLE board_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    timeline_seq INTEGER NOT NULL
);
CREATE TRIGGER board_event AFTER INSERT ON timeline BEGIN
    INSERT INTO board_events (incident_id, timeline_seq) VALUES (NEW.incident_id, NEW.seq);
END;
