-- Sessions: one row per conversation; `data` is sealed JSON (it holds answers).
CREATE TABLE sessions (
    conversation TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE expires_at IS NOT NULL;

-- Dedupe: every inbound event handled, by channel-scoped event id.
CREATE TABLE handled_events (
    event_key TEXT PRIMARY KEY,
    handled_at REAL NOT NULL
);
CREATE INDEX handled_events_at ON handled_events (handled_at);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    source_event TEXT UNIQUE,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    reporter TEXT NOT NULL,
    lang TEXT NOT NULL,
    silent INTEGER NOT NULL,
    do_not_call INTEGER NOT NULL,
    drill INTEGER NOT NULL,
    phone BLOB,                 -- sealed
    location BLOB NOT NULL,     -- sealed JSON
    location_source TEXT NOT NULL,
    area_codes TEXT NOT NULL,   -- JSON list, in clear: routing and statistics need it
    details TEXT NOT NULL,      -- JSON, no personal data
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX incidents_created_at ON incidents (created_at);

CREATE TABLE timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    incident_id TEXT REFERENCES incidents (id),
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,      -- sealed JSON
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,       -- pending | sent | dead
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Durable timers (escalation, reminders): rows fired by a sweep, never in-process timers.
CREATE TABLE timers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_at REAL NOT NULL,
    subject_version INTEGER NOT NULL,
    data TEXT NOT NULL,
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX timers_due ON timers (due_at);

-- Every read of an incident by a person (invariant 4).
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL
);
