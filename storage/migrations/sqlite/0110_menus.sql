-- The last numbered menu sent to each responder address (SMS), so a bare "1" picks from
-- it on any process and after a restart. address: a Sealer.digest; body: sealed JSON;
-- expires_at: Unix seconds. One row per address, replaced by each new menu.
CREATE TABLE menus (
    address TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    expires_at REAL NOT NULL
);
