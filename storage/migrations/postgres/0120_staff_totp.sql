-- The board's TOTP second factor (issue 11): the secret sealed with the storage key, and the
-- last time step accepted, so a code is good once.
ALTER TABLE staff ADD COLUMN totp bytea;
ALTER TABLE staff ADD COLUMN totp_step bigint NOT NULL DEFAULT 0;
