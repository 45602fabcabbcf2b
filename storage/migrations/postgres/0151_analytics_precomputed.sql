-- Prevention analytics, precomputed (docs/analytics.md "Speed"): what every view would
-- otherwise compute per row at read time is stored when the row is written, so a view is a
-- plain GROUP BY over stored values. The Thai local day, week (its Monday), month and hour
-- of the week of the report (Thailand has one offset all year), and each stage's duration
-- from the report in seconds (first time wins, as for the stage times of 0150), and how
-- much later than promised help arrived.
ALTER TABLE incidents ADD COLUMN local_day text, ADD COLUMN local_week text,
    ADD COLUMN local_month text, ADD COLUMN hour_of_week smallint,
    ADD COLUMN delivered_s float8, ADD COLUMN acked_s float8, ADD COLUMN on_scene_s float8,
    ADD COLUMN closed_s float8, ADD COLUMN eta_over_s float8;
UPDATE incidents SET
    local_day = to_char(created_at AT TIME ZONE 'Asia/Bangkok', 'YYYY-MM-DD'),
    local_week = to_char(date_trunc('week', created_at AT TIME ZONE 'Asia/Bangkok'),
                         'YYYY-MM-DD'),
    local_month = to_char(created_at AT TIME ZONE 'Asia/Bangkok', 'YYYY-MM'),
    hour_of_week = (extract(isodow FROM created_at AT TIME ZONE 'Asia/Bangkok')::int - 1) * 24
                   + extract(hour FROM created_at AT TIME ZONE 'Asia/Bangkok')::int,
    delivered_s = extract(epoch FROM delivered_at - created_at),
    acked_s = extract(epoch FROM acked_at - created_at),
    on_scene_s = extract(epoch FROM on_scene_at - created_at),
    closed_s = extract(epoch FROM closed_at - created_at),
    eta_over_s = extract(epoch FROM on_scene_at - en_route_at) - eta_minutes * 60;
