"""The shared channel state in the embedded database: dedupe, STOP, web transcripts, limits.

Every key is a Sealer.digest (an SMS address is a phone number, a limit names a client
address); transcript bodies are sealed. One process uses the file, but the state still
survives a restart, which STOP must (migration 0040).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from storage.buckets import Level, refill
from storage.conversation_keys import ConversationKeys, opened_entries
from storage.crypto import Sealer
from storage.ports import TRANSCRIPT_MESSAGES, Entry, Limit

if TYPE_CHECKING:
    from storage.sqlite import _Db


class SQLiteDedupe:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def first(self, key: str, window: timedelta, now: datetime) -> bool:
        # A record whose window has passed is taken over, as an expired Redis key would be.
        rows = await self._db.all(
            "INSERT INTO seen_keys (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO "
            "UPDATE SET expires_at = excluded.expires_at WHERE seen_keys.expires_at <= ? "
            "RETURNING 1",
            (self._sealer.digest(key), (now + window).timestamp(), now.timestamp()))
        return bool(rows)

    async def forget(self, now: datetime) -> int:
        return await self._db.execute("DELETE FROM seen_keys WHERE expires_at <= ?",
                                      (now.timestamp(),))

    async def release(self, key: str) -> None:
        await self._db.execute("DELETE FROM seen_keys WHERE key = ?",
                               (self._sealer.digest(key),))


class SQLiteOptOuts:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def stop(self, address: str, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO opt_outs (address, stopped_at) VALUES (?, ?) "
            "ON CONFLICT (address) DO NOTHING", (self._sealer.digest(address), now.timestamp()))

    async def start(self, address: str) -> bool:
        return bool(await self._db.execute("DELETE FROM opt_outs WHERE address = ?",
                                           (self._sealer.digest(address),)))

    async def stopped(self, address: str) -> bool:
        return bool(await self._db.one("SELECT 1 FROM opt_outs WHERE address = ?",
                                       (self._sealer.digest(address),)))


class SQLiteTranscripts:
    """Messages sealed with the conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, db: _Db, keys: ConversationKeys):
        self._db = db
        self._keys = keys
        self._sealer = keys.sealer

    async def append(self, conversation: str, body: bytes, now: datetime,
                     key: str | None = None) -> int | None:
        c = self._sealer.digest(conversation)
        blob = await self._keys.seal(c, body)
        async with self._db.transaction() as conn:
            if key is not None:
                cur = await conn.execute(
                    "INSERT INTO transcript_keys VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (c, self._sealer.digest(key)))
                if cur.rowcount != 1:
                    return None
            cur = await conn.execute(
                "INSERT INTO transcripts VALUES (?, 1, ?) ON CONFLICT (conversation) DO UPDATE "
                "SET last_seq = last_seq + 1, updated_at = excluded.updated_at "
                "RETURNING last_seq", (c, now.timestamp()))
            row = await cur.fetchone()
            assert row is not None
            seq = int(row[0])
            await conn.execute("INSERT INTO transcript_messages VALUES (?, ?, ?)",
                               (c, seq, blob))
            await conn.execute("DELETE FROM transcript_messages WHERE conversation = ? "
                               "AND seq <= ?", (c, seq - TRANSCRIPT_MESSAGES))
        return seq

    async def after(self, conversation: str, seq: int) -> list[Entry]:
        c = self._sealer.digest(conversation)
        rows = await self._db.all(
            "SELECT seq, body FROM transcript_messages WHERE conversation = ? AND seq > ? "
            "ORDER BY seq", (c, seq))
        return await opened_entries(self._keys, c, rows)

    async def forget(self, before: datetime) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM transcripts WHERE updated_at < ?",
                                     (before.timestamp(),))
            if cur.rowcount:
                for table in ("transcript_messages", "transcript_keys"):
                    await conn.execute(f"DELETE FROM {table} WHERE conversation NOT IN "
                                       "(SELECT conversation FROM transcripts)")
        return int(cur.rowcount)


    async def erase(self, conversation: str) -> int:
        c = self._sealer.digest(conversation)
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM transcripts WHERE conversation = ?", (c,))
            for table in ("transcript_messages", "transcript_keys"):
                await conn.execute(f"DELETE FROM {table} WHERE conversation = ?", (c,))
        return int(cur.rowcount)


class SQLiteRateLimits:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def take(self, limits: Sequence[Limit], now: datetime) -> Limit | None:
        at = now.timestamp()
        keys = [self._sealer.digest(limit.key) for limit in limits]
        async with self._db.transaction() as conn:
            levels: list[Level] = []
            for limit, key in zip(limits, keys, strict=True):
                cur = await conn.execute(
                    "SELECT tokens, updated_at FROM rate_buckets WHERE key = ?", (key,))
                row = await cur.fetchone()
                level = refill(limit, None if row is None else (row[0], row[1]), at)
                if level is None:
                    return limit
                levels.append(level)
            for key, level in zip(keys, levels, strict=True):
                await conn.execute(
                    "INSERT OR REPLACE INTO rate_buckets VALUES (?, ?, ?, ?)",
                    (key, level.tokens, level.updated_at, level.full_at))
        return None

    async def forget(self, now: datetime) -> int:
        return await self._db.execute("DELETE FROM rate_buckets WHERE full_at <= ?",
                                      (now.timestamp(),))
