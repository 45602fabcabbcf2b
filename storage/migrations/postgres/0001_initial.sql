-- The PostgreSQL schema: the same records as SQLite, with native types. Personal data is
-- sealed (bytea) by the application before it gets here (invariant 4); conversation keys are
-- stored as keyed hashes, because an SMS conversation key is the reporter's phone number.

CREATE TABLE sessions (
    conversation text PRIMARY KEY,      -- Sealer.digest of the conversation key
    data bytea NOT NULL,                -- sealed JSON (answers)
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    expires_at timestamptz
);
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE handled_events (
    event_key text PRIMARY KEY,
    handled_at timestamptz NOT NULL
);
CREATE INDEX handled_events_at ON handled_events (handled_at);

CREATE TABLE incidents (
    id text PRIMARY KEY,
    reference text NOT NULL UNIQUE,
    source_event text UNIQUE,
    type text NOT NULL,
    status text NOT NULL,
    channel text NOT NULL,
    reporter bytea NOT NULL,            -- sealed: an SMS reporter key is a phone number
    lang text NOT NULL,
    silent boolean NOT NULL,
    do_not_call boolean NOT NULL,
    drill boolean NOT NULL,
    phone bytea,                        -- sealed
    location bytea NOT NULL,            -- sealed JSON
    location_source text NOT NULL,
    area_codes jsonb NOT NULL,          -- in clear: routing and statistics need it
    details jsonb NOT NULL,             -- no personal data
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX incidents_created_at ON incidents (created_at);

CREATE TABLE timeline (
    seq bigserial PRIMARY KEY,
    incident_id text NOT NULL REFERENCES incidents (id),
    at timestamptz NOT NULL,
    kind text NOT NULL,
    actor text NOT NULL,
    channel text NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);

CREATE TABLE outbox (
    id text PRIMARY KEY,
    incident_id text REFERENCES incidents (id),
    recipient bytea NOT NULL,           -- sealed: a reporter's SMS address is a phone number
    kind text NOT NULL,
    payload bytea NOT NULL,             -- sealed JSON
    idempotency_key text NOT NULL UNIQUE,
    status text NOT NULL,               -- pending | sent | dead
    attempts integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz
);
-- Only pending rows are ever claimed: a partial index stays small however long the history.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE timers (
    id text PRIMARY KEY,
    kind text NOT NULL,
    subject text NOT NULL,
    due_at timestamptz NOT NULL,
    subject_version bigint NOT NULL,
    data jsonb NOT NULL,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX timers_due ON timers (due_at);
CREATE INDEX timers_subject ON timers (subject, kind);

CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL
);

CREATE TABLE bindings (
    address text NOT NULL,
    area text NOT NULL,
    agency text NOT NULL,
    bound_at timestamptz NOT NULL,
    PRIMARY KEY (address, area, agency)
);
CREATE INDEX bindings_area ON bindings (area);

CREATE TABLE binding_codes (
    code text PRIMARY KEY,
    area text NOT NULL,
    agency text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

-- Fencing tokens for the PostgreSQL-only locks (no Redis): one sequence, ever growing.
CREATE SEQUENCE lock_fence;
