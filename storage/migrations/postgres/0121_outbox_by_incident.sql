-- The board's incident page reads one incident's notifications (who was told, when delivered).
CREATE INDEX outbox_incident ON outbox (incident_id, created_at);
