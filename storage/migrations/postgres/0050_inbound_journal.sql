-- The durable inbound journal (storage/inbound_journal.py): every verified event is kept
-- here before its webhook is answered, and deleted once handled. `lane` is a keyed hash of
-- the conversation, `event_key` a keyed hash of "<channel>:<event id>"; `data` is sealed.
CREATE TABLE inbound_journal (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    event_key text NOT NULL UNIQUE,
    lane text NOT NULL,
    channel text NOT NULL,
    data bytea NOT NULL,
    received_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX inbound_journal_lane ON inbound_journal (lane, seq);
