-- Responder chats bound to an area and agency, and the one-time codes that bind them.
CREATE TABLE bindings (
    address TEXT NOT NULL,
    area TEXT NOT NULL,
    agency TEXT NOT NULL,
    bound_at REAL NOT NULL,
    PRIMARY KEY (address, area, agency)
);
CREATE INDEX bindings_area ON bindings (area);

CREATE TABLE binding_codes (
    code TEXT PRIMARY KEY,
    area TEXT NOT NULL,
    agency TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
