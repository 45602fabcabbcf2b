-- The journal claim also forgets the entries its owner handled since its last claim, in the
-- same round trip: a handled entry's delete used to be a statement of its own, one per step
-- of every report (docs/performance.md, "Sixth pass"). The delete comes first, so a lane
-- whose only entries were just handled is free for the claim that follows it. Otherwise as
-- in 0180, whose five-argument function stays for processes of the previous release while
-- a rolling upgrade replaces them.
CREATE FUNCTION ess_journal_claim(claim_lock bigint, owner text, until timestamptz,
                                  now timestamptz, conversations integer, handled text[])
RETURNS TABLE (id text, channel text, data bytea, received_at timestamptz,
               attempts integer, seq bigint, lane text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF cardinality(handled) > 0 THEN
        DELETE FROM inbound_journal d WHERE d.id = ANY(handled) AND d.lease_owner = owner;
    END IF;
    PERFORM pg_advisory_xact_lock(claim_lock);
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
