-- The board's TOTP second factor (issue 11): the secret sealed with the storage key, and the
-- last time step accepted, so a code is good once.
ALTER TABLE staff ADD COLUMN totp BLOB;
ALTER TABLE staff ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;
