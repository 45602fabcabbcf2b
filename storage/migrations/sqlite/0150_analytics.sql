-- Prevention analytics (docs/analytics.md): what the aggregate queries group and filter on,
-- kept in clear columns of the incident row so a count is one scan of one table, never a
-- join over the timeline or an open of sealed fields. Nothing here identifies anybody: area
-- codes the stores already keep in clear, a coarse H3 cell (resolution 7, about 5 km²), and
-- the first time each lifecycle milestone was reached.
ALTER TABLE incidents ADD COLUMN synthetic INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN province TEXT;
ALTER TABLE incidents ADD COLUMN district TEXT;
ALTER TABLE incidents ADD COLUMN station TEXT;
ALTER TABLE incidents ADD COLUMN cell TEXT;
ALTER TABLE incidents ADD COLUMN delivered_at REAL;
ALTER TABLE incidents ADD COLUMN acked_at REAL;
ALTER TABLE incidents ADD COLUMN en_route_at REAL;
ALTER TABLE incidents ADD COLUMN on_scene_at REAL;
ALTER TABLE incidents ADD COLUMN closed_at REAL;
ALTER TABLE incidents ADD COLUMN help_level INTEGER;
ALTER TABLE incidents ADD COLUMN help_agency TEXT;
ALTER TABLE incidents ADD COLUMN eta_minutes INTEGER;
ALTER TABLE incidents ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
UPDATE incidents SET province = json_extract(area_codes, '$[0]'),
    district = json_extract(area_codes, '$[1]'), station = json_extract(area_codes, '$[2]');
UPDATE incidents SET
    delivered_at = (SELECT min(at) FROM timeline t WHERE t.incident_id = incidents.id
                    AND t.kind IN ('dispatched', 'delivered')),
    acked_at = (SELECT min(at) FROM timeline t WHERE t.incident_id = incidents.id
                AND t.kind = 'acknowledged'),
    en_route_at = (SELECT min(at) FROM timeline t WHERE t.incident_id = incidents.id
                   AND t.kind = 'en_route'),
    on_scene_at = (SELECT min(at) FROM timeline t WHERE t.incident_id = incidents.id
                   AND t.kind = 'on_scene'),
    closed_at = (SELECT min(at) FROM timeline t WHERE t.incident_id = incidents.id
                 AND t.kind IN ('resolved', 'referred', 'unfounded', 'duplicate')),
    escalations = (SELECT count(*) FROM timeline t WHERE t.incident_id = incidents.id
                   AND t.kind = 'escalated');
CREATE INDEX incidents_analytics ON incidents (created_at, province) WHERE drill = 0;
