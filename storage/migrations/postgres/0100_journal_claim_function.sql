-- The journal claim in one round trip (storage/inbound_journal.py): take the claim lock,
-- then lease every entry of up to `conversations` lanes none of whose entries is leased.
-- PL/pgSQL on purpose: in a VOLATILE function each statement takes a new snapshot, so the
-- UPDATE, run after the lock is granted, sees every claim committed before it (the same
-- guarantee as the lock and the UPDATE as two statements of one transaction). The advisory
-- lock is transaction-scoped: it is held until the caller's statement commits.
CREATE FUNCTION ess_journal_claim(claim_lock bigint, owner text, until timestamptz,
                                  now timestamptz, conversations integer)
RETURNS TABLE (id text, channel text, data bytea, received_at timestamptz,
               attempts integer, seq bigint)
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
        RETURNING j.id, j.channel, j.data, j.received_at, j.attempts, j.seq;
END
$$;
