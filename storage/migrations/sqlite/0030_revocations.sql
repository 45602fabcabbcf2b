-- Revoked web-chat conversations (quick exit): a keyed digest, until its tokens expire.
CREATE TABLE revocations (
    subject TEXT PRIMARY KEY,
    until REAL NOT NULL
);
