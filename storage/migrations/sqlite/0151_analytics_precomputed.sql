-- Prevention analytics, precomputed (docs/analytics.md "Speed"): what every view would
-- otherwise compute per row at read time is stored when the row is written, so a view is a
-- plain GROUP BY over stored values. The Thai local day, week (its Monday), month and hour
-- of the week of the report (Thailand has one offset all year, +7 h), and each stage's
-- duration from the report in seconds (first time wins, as for the stage times of 0150), and
-- how much later than promised help arrived.
ALTER TABLE incidents ADD COLUMN local_day TEXT;
ALTER TABLE incidents ADD COLUMN local_week TEXT;
ALTER TABLE incidents ADD COLUMN local_month TEXT;
ALTER TABLE incidents ADD COLUMN hour_of_week INTEGER;
ALTER TABLE incidents ADD COLUMN delivered_s REAL;
ALTER TABLE incidents ADD COLUMN acked_s REAL;
ALTER TABLE incidents ADD COLUMN on_scene_s REAL;
ALTER TABLE incidents ADD COLUMN closed_s REAL;
ALTER TABLE incidents ADD COLUMN eta_over_s REAL;
UPDATE incidents SET
    local_day = date(created_at + 25200, 'unixepoch'),
    local_week = date(created_at + 25200, 'unixepoch', 'weekday 0', '-6 days'),
    local_month = strftime('%Y-%m', created_at + 25200, 'unixepoch'),
    hour_of_week = ((CAST(strftime('%w', created_at + 25200, 'unixepoch') AS INTEGER) + 6) % 7)
                   * 24 + CAST(strftime('%H', created_at + 25200, 'unixepoch') AS INTEGER),
    delivered_s = delivered_at - created_at,
    acked_s = acked_at - created_at,
    on_scene_s = on_scene_at - created_at,
    closed_s = closed_at - created_at,
    eta_over_s = (on_scene_at - en_route_at) - eta_minutes * 60;
