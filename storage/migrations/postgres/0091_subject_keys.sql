-- Per-record data keys (crypto-shredding, storage/vault.py), apart from the data in schema
-- `vault`: back up `public` (pg_dump --exclude-schema=vault) and replicate the vault; an
-- archived copy of the vault would keep erased subjects readable.
CREATE SCHEMA vault;
CREATE TABLE vault.data_keys (
    record text PRIMARY KEY,
    kind text NOT NULL,
    subject text,                       -- keyed id of the data subject
    wrapped bytea,                      -- the data key sealed by a service key; NULL: shredded
    made_at timestamptz NOT NULL,
    shredded_at timestamptz
);
CREATE INDEX data_keys_subject ON vault.data_keys (subject);
ALTER TABLE incidents ADD COLUMN phone_key text;
CREATE INDEX incidents_phone_key ON incidents (phone_key);
