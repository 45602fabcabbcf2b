-- The durable inbound journal (storage/inbound_journal.py): every verified event is kept
-- here before its webhook is answered, and deleted once handled. `lane` is a keyed hash of
-- the conversation, `event_key` a keyed hash of "<channel>:<event id>"; `data` is sealed.
CREATE TABLE inbound_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_key TEXT NOT NULL UNIQUE,
    lane TEXT NOT NULL,
    channel TEXT NOT NULL,
    data BLOB NOT NULL,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX inbound_journal_lane ON inbound_journal (lane, seq);
