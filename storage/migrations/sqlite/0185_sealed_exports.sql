-- Sealed exports waiting for their one download (storage/exports.py): the file as sealed
-- to a one-time password (never the password), the link's keyed digest (never the link),
-- who may take it and until when. Shared by every process; a row lives minutes.
CREATE TABLE sealed_exports (
    token TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    subject TEXT NOT NULL,
    request TEXT NOT NULL,
    blob BLOB NOT NULL,
    until REAL NOT NULL
);
CREATE INDEX sealed_exports_until ON sealed_exports (until);
