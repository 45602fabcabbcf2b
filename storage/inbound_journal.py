"""The inbound journal on SQLite and on PostgreSQL (the port: storage.ports.InboundJournal).

A claim leases whole conversations ("lanes"): every waiting entry of a lane none of whose
entries is under an unexpired lease. So one conversation is in one owner's hands at a time,
in arrival order, and a crashed owner's lanes come back when its lease runs out (the outbox's
lease, applied per conversation). Handled entries are deleted: the table holds only what is
still owed, and the engine's dedupe on event ids makes a re-handle after a crash harmless.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from storage.conversation_keys import ConversationKeys, OpenKey
from storage.crypto import Sealer
from storage.pg_records import changed
from storage.ports import JournalEntry

if TYPE_CHECKING:
    from storage.sqlite import _Db

# Any constant: claims take turns, so two owners can never lease one lane between them.
_CLAIM_LOCK = 0x455353_4A524E
_SLICE = 500  # entry ids per SQLite statement (its limit is 32,766 bound variables)


def _seal(own: Sealer, entry: JournalEntry) -> bytes:
    return own.seal_json({"c": entry.conversation, "k": entry.event_key, "d": entry.data})


async def _entry(keys: ConversationKeys, id_: str, channel: str, blob: bytes,
                 received_at: datetime, attempts: int, lane: str) -> JournalEntry | None:
    """The entry opened with its conversation's key; None once that key is destroyed (the
    subject was erased before the entry was handled)."""
    opened = await keys.open(lane, bytes(blob))
    if opened is None:
        return None
    data: dict[str, Any] = json.loads(opened)
    return JournalEntry(id_, channel, data["c"], data["k"], data["d"], received_at, attempts)


async def _append(keys: ConversationKeys, entries: Sequence[JournalEntry],
                  write: Callable[[list[tuple[JournalEntry, str, OpenKey]]], Awaitable[int]]
                  ) -> int:
    """Seal each entry with its conversation's key and `write` them where the vault still
    holds that key; entries left out because another process erased their conversation
    meanwhile are sealed with its new key and written again (what is answered 200 is kept,
    and never under a destroyed key)."""
    lanes = [keys.record(e.conversation) for e in entries]
    owns = await keys.for_write(lanes)
    kept = await write([(e, lane, owns[lane]) for e, lane in zip(entries, lanes, strict=True)])
    if kept == len(entries):
        return kept
    fresh = await keys.renew(lanes)  # left out: duplicates, or a key gone under us
    stale = {lane for lane in lanes if fresh[lane].wrapped != owns[lane].wrapped}
    if not stale:
        return kept
    return kept + await write([(e, lane, fresh[lane]) for e, lane in
                               zip(entries, lanes, strict=True) if lane in stale])


def ts(value: datetime) -> float:
    return value.timestamp()


class SQLiteJournal:
    """Entries sealed with their conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, db: _Db, keys: ConversationKeys):
        self._db = db
        self._keys = keys
        self._sealer = keys.sealer

    async def append(self, entries: Sequence[JournalEntry]) -> int:
        return await _append(self._keys, entries, self._write)

    async def _write(self, sealed: list[tuple[JournalEntry, str, OpenKey]]) -> int:
        digest = self._sealer.digest
        async with self._db.transaction() as conn:
            before = conn.total_changes
            await conn.executemany(
                "INSERT OR IGNORE INTO inbound_journal (id, event_key, lane, channel, data, "
                "received_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE ?7 IS NULL OR EXISTS "
                "(SELECT 1 FROM vault.data_keys WHERE record = ?3 AND wrapped = ?7)",
                [(e.id, digest(e.event_key), lane, e.channel, _seal(own.sealer, e),
                  ts(e.received_at), own.wrapped) for e, lane, own in sealed])
            return int(conn.total_changes - before)

    async def claim(self, owner: str, conversations: int, lease_seconds: float,
                    now: datetime, handled: Sequence[str] = ()) -> list[JournalEntry]:
        # The delete needs no transaction with the claim: forgetting a handled entry is
        # right whatever the claim then finds, and a trip to SQLite's thread costs no
        # network round trip.
        await self._forget(handled, owner)
        # One statement, atomic by itself: one trip to SQLite's thread, not a transaction
        # of five (BEGIN, pick the lanes, lease them, read them, COMMIT).
        rows = await self._db.all(
            "UPDATE inbound_journal SET lease_owner = ?, lease_until = ?, "
            "attempts = attempts + 1 WHERE lane IN (SELECT lane FROM inbound_journal "
            "GROUP BY lane HAVING max(CASE WHEN lease_until IS NOT NULL AND lease_until >= ? "
            "THEN 1 ELSE 0 END) = 0 ORDER BY min(seq) LIMIT ?) "
            "RETURNING id, channel, data, received_at, attempts, seq, lane",
            (owner, ts(now) + lease_seconds, ts(now), conversations))
        found = [(r[0], await _entry(self._keys, r[0], r[1], r[2],
                                     datetime.fromtimestamp(r[3], UTC), r[4], r[6]))
                 for r in sorted(rows, key=lambda r: r[5])]
        await self._forget([i for i, e in found if e is None], owner)  # erased: nothing owed
        return [e for _, e in found if e is not None]

    async def renew(self, owner: str, lease_seconds: float, now: datetime,
                    entry_ids: Sequence[str]) -> int:
        return await self._each(
            "UPDATE inbound_journal SET lease_until = ? WHERE lease_owner = ? AND id IN ",
            (ts(now) + lease_seconds, owner), entry_ids)

    async def done(self, entry_ids: Sequence[str], owner: str) -> int:
        return await self._forget(entry_ids, owner)

    async def _forget(self, entry_ids: Sequence[str], owner: str) -> int:
        return await self._each("DELETE FROM inbound_journal WHERE lease_owner = ? AND id IN ",
                                (owner,), entry_ids)

    async def _each(self, sql: str, params: tuple[Any, ...], entry_ids: Sequence[str]) -> int:
        """`sql` (ending in `id IN `) for `entry_ids`, in slices SQLite's limit of bound
        variables allows (a backlog of handled entries must not fail every claim)."""
        total = 0
        for at in range(0, len(entry_ids), _SLICE):
            ids = entry_ids[at:at + _SLICE]
            total += await self._db.execute(
                f"{sql}({', '.join('?' * len(ids))})", (*params, *ids))
        return total

    async def pending(self) -> int:
        row = await self._db.one("SELECT count(*) FROM inbound_journal")
        return int(row[0])


class PgJournal:
    """Entries sealed with their conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, pool: asyncpg.Pool, keys: ConversationKeys):
        self._pool = pool
        self._keys = keys
        self._sealer = keys.sealer

    async def append(self, entries: Sequence[JournalEntry]) -> int:
        return await _append(self._keys, entries, self._write)

    async def _write(self, sealed: list[tuple[JournalEntry, str, OpenKey]]) -> int:
        digest = self._sealer.digest
        # One statement: the whole body's events are kept together or not at all, in order
        # (but for a conversation whose key was destroyed meanwhile: see `_append`).
        return changed(await self._pool.execute(
            "INSERT INTO inbound_journal (id, event_key, lane, channel, data, received_at) "
            "SELECT e.id, e.event_key, e.lane, e.channel, e.data, e.received_at "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], "
            "$6::timestamptz[], $7::bytea[]) WITH ORDINALITY "
            "AS e(id, event_key, lane, channel, data, received_at, w, n) "
            "WHERE e.w IS NULL OR EXISTS (SELECT 1 FROM vault.data_keys k "
            "WHERE k.record = e.lane AND k.wrapped = e.w) ORDER BY e.n "
            "ON CONFLICT (event_key) DO NOTHING",
            [e.id for e, _, _ in sealed], [digest(e.event_key) for e, _, _ in sealed],
            [lane for _, lane, _ in sealed], [e.channel for e, _, _ in sealed],
            [_seal(own.sealer, e) for e, _, own in sealed],
            [e.received_at for e, _, _ in sealed], [own.wrapped for _, _, own in sealed]))

    async def claim(self, owner: str, conversations: int, lease_seconds: float,
                    now: datetime, handled: Sequence[str] = ()) -> list[JournalEntry]:
        # One round trip (migrations 0100, 0210): the claim lock, the handled entries
        # deleted, then the UPDATE under it.
        rows = await self._pool.fetch(
            "SELECT id, channel, data, received_at, attempts, seq, lane "
            "FROM ess_journal_claim($1, $2, $3, $4, $5, $6::text[])", _CLAIM_LOCK, owner,
            now + timedelta(seconds=lease_seconds), now, conversations, list(handled))
        found = [(r[0], await _entry(self._keys, r[0], r[1], r[2], r[3], r[4], r[6]))
                 for r in sorted(rows, key=lambda r: r[5])]
        gone = [i for i, e in found if e is None]
        if gone:
            await self.done(gone, owner)  # erased: nothing owed
        return [e for _, e in found if e is not None]

    async def renew(self, owner: str, lease_seconds: float, now: datetime,
                    entry_ids: Sequence[str]) -> int:
        return changed(await self._pool.execute(
            "UPDATE inbound_journal SET lease_until = $1 WHERE lease_owner = $2 "
            "AND id = ANY($3::text[])", now + timedelta(seconds=lease_seconds), owner,
            list(entry_ids)))

    async def done(self, entry_ids: Sequence[str], owner: str) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM inbound_journal WHERE id = ANY($1::text[]) AND lease_owner = $2",
            list(entry_ids), owner))

    async def pending(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM inbound_journal"))
