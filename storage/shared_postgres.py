"""The shared channel state in PostgreSQL: dedupe, STOP, web transcripts, rate limits.

Keys are Sealer.digests and transcript bodies are sealed, as in the SQLite adapter; times are
Unix seconds (migration 0040). Without Redis these serve every process; with Redis the
composite keeps only STOP here, the one of them that is a durable record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from storage.buckets import Level, refill
from storage.conversation_keys import ConversationKeys, opened_entries
from storage.crypto import Sealer
from storage.pg_records import changed
from storage.ports import TRANSCRIPT_MESSAGES, Entry, Limit


class PgDedupe:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def first(self, key: str, window: timedelta, now: datetime) -> bool:
        return bool(await self._pool.fetchval(
            "INSERT INTO seen_keys AS s (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) "
            "DO UPDATE SET expires_at = excluded.expires_at WHERE s.expires_at <= $3 "
            "RETURNING 1", self._sealer.digest(key), (now + window).timestamp(),
            now.timestamp()))

    async def forget(self, now: datetime) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM seen_keys WHERE expires_at <= $1", now.timestamp()))

    async def release(self, key: str) -> None:
        await self._pool.execute("DELETE FROM seen_keys WHERE key = $1",
                                 self._sealer.digest(key))


class PgOptOuts:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def stop(self, address: str, now: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO opt_outs (address, stopped_at) VALUES ($1, $2) "
            "ON CONFLICT (address) DO NOTHING", self._sealer.digest(address), now.timestamp())

    async def start(self, address: str) -> bool:
        return changed(await self._pool.execute(
            "DELETE FROM opt_outs WHERE address = $1", self._sealer.digest(address))) > 0

    async def stopped(self, address: str) -> bool:
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM opt_outs WHERE address = $1)",
            self._sealer.digest(address)))


# One statement: the key (when given) claims the append, the counter row (locked by the
# upsert) gives the next number, the message goes in and the oldest beyond the cap go out.
_APPEND = """
WITH k AS (INSERT INTO transcript_keys SELECT $1, $4 WHERE $4::text IS NOT NULL
           ON CONFLICT DO NOTHING RETURNING 1),
c AS (INSERT INTO transcripts AS t (conversation, last_seq, updated_at)
      SELECT $1, 1, $3 WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM k)
      ON CONFLICT (conversation) DO UPDATE SET last_seq = t.last_seq + 1,
      updated_at = excluded.updated_at RETURNING last_seq),
m AS (INSERT INTO transcript_messages SELECT $1, last_seq, $2 FROM c RETURNING seq),
d AS (DELETE FROM transcript_messages x USING c
      WHERE x.conversation = $1 AND x.seq <= c.last_seq - $5)
SELECT seq FROM m
"""


class PgTranscripts:
    """Messages sealed with the conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, pool: asyncpg.Pool, keys: ConversationKeys):
        self._pool = pool
        self._keys = keys
        self._sealer = keys.sealer

    async def append(self, conversation: str, body: bytes, now: datetime,
                     key: str | None = None) -> int | None:
        c = self._sealer.digest(conversation)
        seq = await self._pool.fetchval(
            _APPEND, c, await self._keys.seal(c, body),
            now.timestamp(), None if key is None else self._sealer.digest(key),
            TRANSCRIPT_MESSAGES)
        return None if seq is None else int(seq)

    async def after(self, conversation: str, seq: int) -> list[Entry]:
        c = self._sealer.digest(conversation)
        rows = await self._pool.fetch(
            "SELECT seq, body FROM transcript_messages WHERE conversation = $1 AND seq > $2 "
            "ORDER BY seq", c, seq)
        return await opened_entries(self._keys, c, rows)

    async def forget(self, before: datetime) -> int:
        return int(await self._pool.fetchval(
            "WITH t AS (DELETE FROM transcripts WHERE updated_at < $1 RETURNING conversation), "
            "m AS (DELETE FROM transcript_messages WHERE conversation IN "
            "(SELECT conversation FROM t)), "
            "k AS (DELETE FROM transcript_keys WHERE conversation IN "
            "(SELECT conversation FROM t)) SELECT count(*) FROM t", before.timestamp()))

    async def erase(self, conversation: str) -> int:
        return int(await self._pool.fetchval(
            "WITH t AS (DELETE FROM transcripts WHERE conversation = $1 RETURNING 1), "
            "m AS (DELETE FROM transcript_messages WHERE conversation = $1), "
            "k AS (DELETE FROM transcript_keys WHERE conversation = $1) "
            "SELECT count(*) FROM t", self._sealer.digest(conversation)))


class PgRateLimits:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def take(self, limits: Sequence[Limit], now: datetime) -> Limit | None:
        at = now.timestamp()
        keys = [self._sealer.digest(limit.key) for limit in limits]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        async with self._pool.acquire() as conn, conn.transaction():
            # Rows locked in key order, so two processes taking the same buckets never
            # deadlock; a bucket never used has no row to lock, so it is made first.
            await conn.execute(
                "INSERT INTO rate_buckets SELECT k, c, $3, $3 FROM unnest($1::text[], "
                "$2::double precision[]) AS v(k, c) ON CONFLICT DO NOTHING",
                [keys[i] for i in order], [float(limits[i].capacity) for i in order], at)
            rows = await conn.fetch(
                "SELECT key, tokens, updated_at FROM rate_buckets WHERE key = ANY($1) "
                "ORDER BY key FOR UPDATE", keys)
            stored = {r[0]: (r[1], r[2]) for r in rows}
            levels: list[Level] = []
            for limit, key in zip(limits, keys, strict=True):
                level = refill(limit, stored.get(key), at)
                if level is None:
                    return limit
                levels.append(level)
            await conn.execute(
                "UPDATE rate_buckets b SET tokens = v.t, updated_at = v.u, full_at = v.f "
                "FROM unnest($1::text[], $2::double precision[], $3::double precision[], "
                "$4::double precision[]) AS v(k, t, u, f) WHERE b.key = v.k",
                keys, [lv.tokens for lv in levels], [lv.updated_at for lv in levels],
                [lv.full_at for lv in levels])
        return None

    async def forget(self, now: datetime) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM rate_buckets WHERE full_at <= $1", now.timestamp()))
