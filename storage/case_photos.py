"""Photos of documents kept with welfare cases, on SQLite and PostgreSQL (the composite
store uses PostgreSQL's).

The bytes are sealed with the case's own data key (storage/vault.py, kind `case`), read in
the same statement as the row: destroying the case's key (`ess subject erase --case`,
retention) makes every copy unreadable, backups included, and the erasure then removes the
rows. Only the type, the size and the time are in clear, for the case page's list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.case import CasePhoto
from storage.crypto import SealError
from storage.vault import Keyring

if TYPE_CHECKING:
    from storage.sqlite import _Db

_KEY = "SELECT record, wrapped FROM vault.data_keys WHERE record = "
_READ = ("SELECT p.id, p.case_id, p.content_type, p.size, p.at, p.data, k.record, k.wrapped "
         "FROM case_photos p LEFT JOIN vault.data_keys k ON k.record = p.case_id ")


def _opened(ring: Keyring, row: Sequence[Any], at: datetime) -> CasePhoto | None:
    own = ring.opened(row[1], row[6] is not None, row[7])
    if own is None:
        return None  # the case's key is destroyed: nobody can see it again
    try:
        data = own.open(bytes(row[5]))
    except SealError:
        return None
    return CasePhoto(row[0], row[1], row[2], row[3], at, data)


class SQLiteCasePhotos:
    def __init__(self, db: _Db, keyring: Keyring):
        self._db = db
        self._ring = keyring

    async def add(self, photo: CasePhoto) -> bool:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(f"{_KEY}?", (photo.case_id,)))
            known = list(await conn.execute_fetchall(
                "SELECT 1 FROM cases WHERE id = ?", (photo.case_id,)))
            own = self._ring.opened(photo.case_id, bool(rows), rows[0][1] if rows else None)
            if own is None or not known:
                return False
            await conn.execute(
                "INSERT OR IGNORE INTO case_photos (id, case_id, content_type, size, data, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (photo.id, photo.case_id, photo.content_type, photo.size,
                 own.seal(photo.data), photo.at.timestamp()))
        return True

    async def listed(self, case_id: str) -> list[CasePhoto]:
        rows = await self._db.all(
            "SELECT id, case_id, content_type, size, at FROM case_photos WHERE case_id = ? "
            "ORDER BY at, id", (case_id,))
        return [CasePhoto(r[0], r[1], r[2], r[3], datetime.fromtimestamp(r[4], UTC))
                for r in rows]

    async def get(self, case_id: str, photo_id: str) -> CasePhoto | None:
        row = await self._db.one(f"{_READ}WHERE p.case_id = ? AND p.id = ?",
                                 (case_id, photo_id))
        return _opened(self._ring, row, datetime.fromtimestamp(row[4], UTC)) if row else None

    async def drop(self, case_ids: Sequence[str]) -> int:
        if not case_ids:
            return 0
        return await self._db.execute(
            f"DELETE FROM case_photos WHERE case_id IN ({', '.join('?' * len(case_ids))})",
            list(case_ids))

    async def counts(self, case_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._db.all(
            "SELECT case_id, count(*) FROM case_photos WHERE case_id IN "
            "(SELECT value FROM json_each(?)) GROUP BY case_id", (json.dumps(list(case_ids)),))
        return {r[0]: int(r[1]) for r in rows}


class PgCasePhotos:
    def __init__(self, pool: asyncpg.Pool, keyring: Keyring):
        self._pool = pool
        self._ring = keyring

    async def add(self, photo: CasePhoto) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            key = await conn.fetchrow(f"{_KEY}$1", photo.case_id)
            known = await conn.fetchval("SELECT 1 FROM cases WHERE id = $1", photo.case_id)
            own = self._ring.opened(photo.case_id, key is not None, key[1] if key else None)
            if own is None or not known:
                return False
            await conn.execute(
                "INSERT INTO case_photos (id, case_id, content_type, size, data, at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                photo.id, photo.case_id, photo.content_type, photo.size,
                own.seal(photo.data), photo.at)
        return True

    async def listed(self, case_id: str) -> list[CasePhoto]:
        rows = await self._pool.fetch(
            "SELECT id, case_id, content_type, size, at FROM case_photos WHERE case_id = $1 "
            "ORDER BY at, id", case_id)
        return [CasePhoto(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def get(self, case_id: str, photo_id: str) -> CasePhoto | None:
        row = await self._pool.fetchrow(f"{_READ}WHERE p.case_id = $1 AND p.id = $2",
                                        case_id, photo_id)
        return _opened(self._ring, row, row[4]) if row else None

    async def drop(self, case_ids: Sequence[str]) -> int:
        if not case_ids:
            return 0
        result = await self._pool.execute(
            "DELETE FROM case_photos WHERE case_id = ANY($1::text[])", list(case_ids))
        return int(result.split()[-1])

    async def counts(self, case_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT case_id, count(*) FROM case_photos WHERE case_id = ANY($1::text[]) "
            "GROUP BY case_id", list(case_ids))
        return {r[0]: int(r[1]) for r in rows}
