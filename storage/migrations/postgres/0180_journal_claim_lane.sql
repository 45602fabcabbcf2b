-- The journal claim returns each entry's lane as well: the keyed digest of its conversation,
-- which names the conversation's data key in the vault (storage/conversation_keys.py) that
-- opens the entry. Otherwise as in 0100.
DROP FUNCTION ess_journal_claim(bigint, text, timestamptz, timestamptz, integer);
CREATE FUNCTION ess_journal_claim(claim_lock bigint, owner text, until timestamptz,
                                  now timestamptz, conversations integer)
RETURNS TABLE (id text, channel text, data bytea, received_at timestamptz,
               attempts integer, seq bigint, lane text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
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
