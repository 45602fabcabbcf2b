-- Photos of documents kept with a welfare case (docs/cases.md): the bytes sealed with the
-- case's own data key (vault), so erasing the case shreds them too; in clear only what the
-- case page lists (type, size, when).
CREATE TABLE case_photos (
    id text PRIMARY KEY,
    case_id text NOT NULL REFERENCES cases (id),
    content_type text NOT NULL,
    size integer NOT NULL,
    data bytea NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX case_photos_case ON case_photos (case_id, at);
