-- Revoked web-chat conversations (quick exit): a keyed digest, until its tokens expire.
CREATE TABLE revocations (
    subject text PRIMARY KEY,
    until timestamptz NOT NULL
);
