-- Prevention analytics (docs/analytics.md): what the aggregate queries group and filter on,
-- kept in clear columns of the incident row so a count is one scan of one table, never a
-- join over the timeline or an open of sealed fields. Nothing here identifies anybody: area
-- codes the stores already keep in clear, a coarse H3 cell (resolution 7, about 5 km²), and
-- the first time each lifecycle milestone was reached.
ALTER TABLE incidents ADD COLUMN synthetic boolean NOT NULL DEFAULT false,
    ADD COLUMN province text, ADD COLUMN district text, ADD COLUMN station text,
    ADD COLUMN cell text,
    ADD COLUMN delivered_at timestamptz, ADD COLUMN acked_at timestamptz,
    ADD COLUMN en_route_at timestamptz, ADD COLUMN on_scene_at timestamptz,
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN help_level integer, ADD COLUMN help_agency text, ADD COLUMN eta_minutes integer,
    ADD COLUMN escalations integer NOT NULL DEFAULT 0;
UPDATE incidents SET province = area_codes->>0, district = area_codes->>1,
    station = area_codes->>2;
UPDATE incidents i SET delivered_at = m.delivered, acked_at = m.acked,
    en_route_at = m.en_route, on_scene_at = m.on_scene, closed_at = m.closed,
    escalations = m.escalations
FROM (SELECT incident_id,
             min(at) FILTER (WHERE kind IN ('dispatched', 'delivered')) AS delivered,
             min(at) FILTER (WHERE kind = 'acknowledged') AS acked,
             min(at) FILTER (WHERE kind = 'en_route') AS en_route,
             min(at) FILTER (WHERE kind = 'on_scene') AS on_scene,
             min(at) FILTER (WHERE kind IN ('resolved', 'referred', 'unfounded',
                                            'duplicate')) AS closed,
             count(*) FILTER (WHERE kind = 'escalated') AS escalations
      FROM timeline GROUP BY incident_id) m
WHERE m.incident_id = i.id;
-- Every view filters a period of non-drill reports and groups by area: one index serves the
-- range scan; the province column beside it lets PostgreSQL answer from the index alone.
CREATE INDEX incidents_analytics ON incidents (created_at, province) WHERE NOT drill;
