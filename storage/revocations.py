"""Revoked web-chat conversations, in the shared store so that every process refuses them.

The quick exit revokes its conversation: a token captured before it (a shoulder, a shared
phone's history) must not reopen or replay that conversation afterwards, whichever process
the socket lands on. Only a keyed digest of the conversation id is stored, until the tokens
would have expired anyway; older rows are dropped as new ones arrive.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from storage.crypto import Sealer

if TYPE_CHECKING:
    from storage.sqlite import _Db


def _subject(sealer: Sealer, subject: str) -> str:
    return sealer.digest("revoked:" + subject)


class SQLiteRevocations:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def revoke(self, subject: str, until: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM revocations WHERE until < ?",
                               (datetime.now(until.tzinfo).timestamp(),))
            await conn.execute(
                "INSERT INTO revocations (subject, until) VALUES (?, ?) ON CONFLICT (subject) "
                "DO UPDATE SET until = max(until, excluded.until)",
                (_subject(self._sealer, subject), until.timestamp()))

    async def revoked(self, subject: str, now: datetime) -> bool:
        row = await self._db.one("SELECT 1 FROM revocations WHERE subject = ? AND until > ?",
                                 (_subject(self._sealer, subject), now.timestamp()))
        return row is not None


class PgRevocations:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def revoke(self, subject: str, until: datetime) -> None:
        await self._pool.execute(
            "WITH old AS (DELETE FROM revocations WHERE until < now()) "
            "INSERT INTO revocations (subject, until) VALUES ($1, $2) ON CONFLICT (subject) "
            "DO UPDATE SET until = greatest(revocations.until, excluded.until)",
            _subject(self._sealer, subject), until)

    async def revoked(self, subject: str, now: datetime) -> bool:
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM revocations WHERE subject = $1 AND until > $2)",
            _subject(self._sealer, subject), now))
