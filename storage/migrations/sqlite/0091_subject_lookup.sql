-- A subject's incidents found by the phone number they gave (a keyed digest; the number
-- itself stays sealed). The data keys live in the separate vault file (storage/vault.py).
ALTER TABLE incidents ADD COLUMN phone_key TEXT;
CREATE INDEX incidents_phone_key ON incidents (phone_key);
