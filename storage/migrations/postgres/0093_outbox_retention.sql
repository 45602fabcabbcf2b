-- Retention: when a delivered message's payload (a relay text) was emptied.
ALTER TABLE outbox ADD COLUMN erased_at timestamptz;
