-- State every process shares (issue 9, "no per-process state"). Every key column holds a
-- Sealer.digest, never the value itself: an SMS address is a phone number, a rate-limit key
-- names a client address. Times are Unix seconds.

-- Channel events deduplicated outside the engine (LINE group events).
CREATE TABLE seen_keys (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX seen_keys_expires ON seen_keys (expires_at);

-- SMS STOP: kept until START, whatever restarts.
CREATE TABLE opt_outs (
    address TEXT PRIMARY KEY,
    stopped_at REAL NOT NULL
);

-- What each web conversation's page was shown (sealed), for replay on any process.
CREATE TABLE transcripts (
    conversation TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX transcripts_updated ON transcripts (updated_at);
CREATE TABLE transcript_messages (
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE transcript_keys (
    conversation TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (conversation, key)
);

-- Token buckets (rate limits); full_at: when the bucket is full again and can be dropped.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at REAL NOT NULL,
    full_at REAL NOT NULL
);
CREATE INDEX rate_buckets_full ON rate_buckets (full_at);
