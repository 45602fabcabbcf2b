"""The inbound journal on SQLite and on PostgreSQL (the port: storage.ports.InboundJournal).

A claim leases whole conversations ("lanes"): every waiting entry of a lane none of whose
entries is under an unexpired lease. So one conversation is in one owner's hands at a time,
in arrival order, and a crashed owner's lanes come back when its lease runs out (the outbox's
lease, applied per conversation). Handled entries are deleted: the table holds only what is
still owed, and the engine's dedupe on event ids makes a re-handle after a crash harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from storage.crypto import Sealer
from storage.pg_records import changed
from storage.ports import JournalEntry

if TYPE_CHECKING:
    from storage.sqlite import _Db

# Any constant: claims take turns, so two owners can never lease one lane between them.
_CLAIM_LOCK = 0x455353_4A524E


def _seal(sealer: Sealer, entry: JournalEntry) -> bytes:
    return sealer.seal_json({"c": entry.conversation, "k": entry.event_key, "d": entry.data})


def _entry(sealer: Sealer, id_: str, channel: str, blob: bytes, received_at: datetime,
           attempts: int) -> JournalEntry:
    opened: dict[str, Any] = sealer.open_json(blob)
    return JournalEntry(id_, channel, opened["c"], opened["k"], opened["d"], received_at,
                        attempts)


def ts(value: datetime) -> float:
    return value.timestamp()


class SQLiteJournal:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def append(self, entries: Sequence[JournalEntry]) -> int:
        digest = self._sealer.digest
        async with self._db.transaction() as conn:
            before = conn.total_changes
            await conn.executemany(
                "INSERT OR IGNORE INTO inbound_journal (id, event_key, lane, channel, data, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.id, digest(e.event_key), digest(e.conversation), e.channel,
                  _seal(self._sealer, e), ts(e.received_at)) for e in entries])
            return int(conn.total_changes - before)

    async def claim(self, owner: str, conversations: int, lease_seconds: float,
                    now: datetime) -> list[JournalEntry]:
        # One statement, atomic by itself: one trip to SQLite's thread, not a transaction
        # of five (BEGIN, pick the lanes, lease them, read them, COMMIT).
        rows = await self._db.all(
            "UPDATE inbound_journal SET lease_owner = ?, lease_until = ?, "
            "attempts = attempts + 1 WHERE lane IN (SELECT lane FROM inbound_journal "
            "GROUP BY lane HAVING max(CASE WHEN lease_until IS NOT NULL AND lease_until >= ? "
            "THEN 1 ELSE 0 END) = 0 ORDER BY min(seq) LIMIT ?) "
            "RETURNING id, channel, data, received_at, attempts, seq",
            (owner, ts(now) + lease_seconds, ts(now), conversations))
        return [_entry(self._sealer, r[0], r[1], r[2], datetime.fromtimestamp(r[3], UTC), r[4])
                for r in sorted(rows, key=lambda r: r[5])]

    async def renew(self, owner: str, lease_seconds: float, now: datetime) -> int:
        return await self._db.execute(
            "UPDATE inbound_journal SET lease_until = ? WHERE lease_owner = ?",
            (ts(now) + lease_seconds, owner))

    async def done(self, entry_ids: Sequence[str], owner: str) -> int:
        if not entry_ids:
            return 0
        return await self._db.execute(
            f"DELETE FROM inbound_journal WHERE lease_owner = ? AND id IN "
            f"({', '.join('?' * len(entry_ids))})", (owner, *entry_ids))

    async def pending(self) -> int:
        row = await self._db.one("SELECT count(*) FROM inbound_journal")
        return int(row[0])


class PgJournal:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def append(self, entries: Sequence[JournalEntry]) -> int:
        digest = self._sealer.digest
        # One statement: the whole body's events are kept together or not at all, in order.
        return changed(await self._pool.execute(
            "INSERT INTO inbound_journal (id, event_key, lane, channel, data, received_at) "
            "SELECT id, event_key, lane, channel, data, received_at FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[]) "
            "WITH ORDINALITY "
            "AS e(id, event_key, lane, channel, data, received_at, n) ORDER BY n "
            "ON CONFLICT (event_key) DO NOTHING",
            [e.id for e in entries], [digest(e.event_key) for e in entries],
            [digest(e.conversation) for e in entries], [e.channel for e in entries],
            [_seal(self._sealer, e) for e in entries], [e.received_at for e in entries]))

    async def claim(self, owner: str, conversations: int, lease_seconds: float,
                    now: datetime) -> list[JournalEntry]:
        # One round trip (migration 0100): the claim lock, then the UPDATE under it.
        rows = await self._pool.fetch(
            "SELECT id, channel, data, received_at, attempts, seq "
            "FROM ess_journal_claim($1, $2, $3, $4, $5)", _CLAIM_LOCK, owner,
            now + timedelta(seconds=lease_seconds), now, conversations)
        return [_entry(self._sealer, r[0], r[1], r[2], r[3], r[4])
                for r in sorted(rows, key=lambda r: r[5])]

    async def renew(self, owner: str, lease_seconds: float, now: datetime) -> int:
        return changed(await self._pool.execute(
            "UPDATE inbound_journal SET lease_until = $1 WHERE lease_owner = $2",
            now + timedelta(seconds=lease_seconds), owner))

    async def done(self, entry_ids: Sequence[str], owner: str) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM inbound_journal WHERE id = ANY($1::text[]) AND lease_owner = $2",
            list(entry_ids), owner))

    async def pending(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM inbound_journal"))
