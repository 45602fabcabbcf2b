-- Welfare cases (อพม.): what routing and lists need in clear; everything personal in `body`,
-- sealed JSON. Duplicate detection reads only keyed hashes (case_keys), never a Thai ID.
CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    source_event TEXT UNIQUE,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    lang TEXT NOT NULL,
    area TEXT NOT NULL,
    volunteer_key TEXT NOT NULL,  -- keyed hash of the volunteer's address
    incident_id TEXT REFERENCES incidents (id),
    flags TEXT NOT NULL,          -- JSON list
    body BLOB NOT NULL,           -- sealed JSON
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX cases_volunteer ON cases (volunteer_key, created_at);
CREATE INDEX cases_area ON cases (area, created_at);
CREATE INDEX cases_incident ON cases (incident_id);

CREATE TABLE case_keys (
    case_id TEXT NOT NULL REFERENCES cases (id),
    key TEXT NOT NULL,            -- keyed hash: "thai_id:…" or "match:…"
    at REAL NOT NULL,
    PRIMARY KEY (case_id, key)
);
CREATE INDEX case_keys_key ON case_keys (key, at);

CREATE TABLE case_timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX case_timeline_case ON case_timeline (case_id, seq);
