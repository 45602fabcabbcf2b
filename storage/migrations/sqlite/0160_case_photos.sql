-- Photos of documents kept with a welfare case (docs/cases.md): the bytes sealed with the
-- case's own data key (vault), so erasing the case shreds them too; in clear only what the
-- case page lists (type, size, when).
CREATE TABLE case_photos (
    id TEXT PRIMARY KEY,          -- from the event that brought it: kept once
    case_id TEXT NOT NULL REFERENCES cases (id),
    content_type TEXT NOT NULL,   -- image/jpeg | image/png, from the bytes themselves
    size INTEGER NOT NULL,
    data BLOB NOT NULL,           -- sealed with the case's data key
    at REAL NOT NULL
);
CREATE INDEX case_photos_case ON case_photos (case_id, at);
