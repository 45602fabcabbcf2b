-- The journal claim also forgets the entries its owner handled since its last claim, in the
-- same round trip: a handled entry's delete used to be a statement of its own, one per step
-- of every report (docs/performance.md, "Sixth pass"). The claim lock comes first, as in
-- every claim: deleting first would hold the handled rows' locks while waiting for it, and
-- a claimer holding the lock may be waiting for those rows (their lease ran out), a
-- deadlock. The delete comes before the UPDATE, whose snapshot sees it, so a lane whose
-- only entries were just handled is free for this same claim. Otherwise as in 0180; its
-- five-argument form goes (a process of the previous release refuses this schema when it
-- starts, and one still running only fails its claims until it is replaced: the events it
-- journals are handled by the new ones).
DROP FUNCTION ess_journal_claim(bigint, text, timestamptz, timestamptz, integer);
CREATE FUNCTION ess_journal_claim(claim_lock bigint, owner text, until timestamptz,
                                  now timestamptz, conversations integer, handled text[])
RETURNS TABLE (id text, channel text, data bytea, received_at timestamptz,
               attempts integer, seq bigint, lane text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(claim_lock);
    IF cardinality(handled) > 0 THEN
        DELETE FROM inbound_journal d WHERE d.id = ANY(handled) AND d.lease_owner = owner;
    END IF;
    RETURN QUERY
        UPDATE inbound_journal j SET lease_owner = owner, lease_until = until,
            attempts = j.attempts + 1
        FROM (SELECT f.lane FROM inbound_journal f GROUP BY f.lane
              HAVING bool_and(f.lease_until IS NULL OR f.lease_until < now)
              ORDER BY min(f.seq) LIMIT conversations) AS free
        WHERE j.lane = free.lane
        RETURNING j.id, j.channel, j.data, j.received_at, j.attempts, j.seq, j.lane;
END
$$;
