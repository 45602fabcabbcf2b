"""Sealed exports waiting for their one download, shared by every process (both SQL backends).

A subject's export is sealed to a one-time password before it reaches this store (the
password is shown once and never stored), so a row holds only ciphertext. The download link's
random token is stored as a keyed digest: a copy of the database cannot be turned into a
working link. A row is taken once: `take` deletes it in the same statement that reads it, so
of two downloads at once exactly one gets the file. Expired rows are never served and are
swept by every `put` and by the durable sweeper (`sweep`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.crypto import Sealer
from storage.privacy import _Sql


@dataclass(frozen=True, slots=True)
class HeldExport:
    """One sealed export: who may download it, whose it is, the request it answers."""

    login: str
    subject: str
    request: str
    blob: bytes
    until: datetime


def _token_key(sealer: Sealer, token: str) -> str:
    return sealer.digest("sealed-export:" + token)


class SqlExports:
    """The store over SQLite (`_Db`) or PostgreSQL (a pool)."""

    def __init__(self, db: Any, sealer: Sealer, postgres: bool):
        self._q = _Sql(db, postgres)
        self._sealer = sealer

    async def put(self, token: str, held: HeldExport, now: datetime) -> None:
        await self.sweep(now)
        await self._q.run("INSERT INTO sealed_exports (token, login, subject, request, blob, "
                          "until) VALUES (?, ?, ?, ?, ?, ?)",
                          (_token_key(self._sealer, token), held.login, held.subject,
                           held.request, held.blob, held.until.timestamp()))

    async def take(self, token: str, login: str, now: datetime) -> HeldExport | None:
        """The export, once: the row is gone after this call whoever asked (a link seen by
        another account is spent); None when unknown, expired or not `login`'s."""
        key = _token_key(self._sealer, token)
        rows = await self._q.rows("DELETE FROM sealed_exports WHERE token = ? RETURNING "
                                  "token, login, subject, request, blob, until", (key,))
        if not rows:
            return None
        r = rows[0]
        held = HeldExport(r[1], r[2], r[3], bytes(r[4]), datetime.fromtimestamp(r[5], UTC))
        if (not hmac.compare_digest(str(r[0]).encode(), key.encode())
                or not hmac.compare_digest(held.login.encode(), login.encode())
                or held.until <= now):
            return None
        return held

    async def sweep(self, now: datetime) -> int:
        """Delete the expired exports; how many."""
        return await self._q.run("DELETE FROM sealed_exports WHERE until <= ?",
                                 (now.timestamp(),))
