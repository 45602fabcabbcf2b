-- Welfare cases (อพม.): what routing and lists need in clear; everything personal in `body`,
-- sealed JSON. Duplicate detection reads only keyed hashes (case_keys), never a Thai ID.
CREATE TABLE cases (
    id text PRIMARY KEY,
    reference text NOT NULL UNIQUE,
    source_event text UNIQUE,
    status text NOT NULL,
    channel text NOT NULL,
    lang text NOT NULL,
    area text NOT NULL,
    volunteer_key text NOT NULL,
    incident_id text REFERENCES incidents (id),
    flags text NOT NULL,
    body bytea NOT NULL,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX cases_volunteer ON cases (volunteer_key, created_at);
CREATE INDEX cases_area ON cases (area, created_at);
CREATE INDEX cases_incident ON cases (incident_id);

CREATE TABLE case_keys (
    case_id text NOT NULL REFERENCES cases (id),
    key text NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (case_id, key)
);
CREATE INDEX case_keys_key ON case_keys (key, at);

CREATE TABLE case_timeline (
    seq bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES cases (id),
    at timestamptz NOT NULL,
    kind text NOT NULL,
    actor text NOT NULL,
    channel text NOT NULL,
    data text NOT NULL
);
CREATE INDEX case_timeline_case ON case_timeline (case_id, seq);
