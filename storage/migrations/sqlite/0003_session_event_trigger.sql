-- Record the handled event id from inside the session write itself: one statement is one
-- atomic transaction in SQLite, so the session and its dedupe record need one round trip
-- (and one fsync) instead of an explicit BEGIN/INSERT/UPDATE/COMMIT.
ALTER TABLE sessions ADD COLUMN last_event TEXT;

CREATE TRIGGER sessions_event_on_insert AFTER INSERT ON sessions
WHEN NEW.last_event IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO handled_events VALUES (NEW.last_event, NEW.updated_at);
END;

CREATE TRIGGER sessions_event_on_update AFTER UPDATE OF last_event ON sessions
WHEN NEW.last_event IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO handled_events VALUES (NEW.last_event, NEW.updated_at);
END;
