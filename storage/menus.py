"""The last numbered menu sent to each responder address, in SQLite and PostgreSQL.

The address is a Sealer.digest (an SMS address is a phone number), the menu is sealed JSON,
the expiry Unix seconds (migration 0110). PostgreSQL serves the composite backend too: a
menu must outlive a Redis restart as much as a process restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from storage.crypto import Sealer
from storage.ports import Menu

if TYPE_CHECKING:
    from storage.sqlite import _Db


def _sealed(sealer: Sealer, menu: Menu) -> bytes:
    return sealer.seal_json({"choices": [list(c) for c in menu.choices], "lang": menu.lang})


def _opened(sealer: Sealer, body: bytes, expires_at: float) -> Menu:
    data: dict[str, Any] = sealer.open_json(bytes(body))
    return Menu(tuple((str(t), str(label)) for t, label in data["choices"]), str(data["lang"]),
                datetime.fromtimestamp(expires_at, UTC))


class SQLiteMenus:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def remember(self, address: str, menu: Menu) -> None:
        await self._db.execute(
            "INSERT INTO menus (address, body, expires_at) VALUES (?, ?, ?) ON CONFLICT "
            "(address) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at",
            (self._sealer.digest(address), _sealed(self._sealer, menu),
             menu.expires_at.timestamp()))

    async def last(self, address: str) -> Menu | None:
        row = await self._db.one("SELECT body, expires_at FROM menus WHERE address = ?",
                                 (self._sealer.digest(address),))
        return None if row is None else _opened(self._sealer, row[0], float(row[1]))


class PgMenus:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def remember(self, address: str, menu: Menu) -> None:
        await self._pool.execute(
            "INSERT INTO menus (address, body, expires_at) VALUES ($1, $2, $3) ON CONFLICT "
            "(address) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at",
            self._sealer.digest(address), _sealed(self._sealer, menu),
            menu.expires_at.timestamp())

    async def last(self, address: str) -> Menu | None:
        row = await self._pool.fetchrow("SELECT body, expires_at FROM menus WHERE address = $1",
                                        self._sealer.digest(address))
        return None if row is None else _opened(self._sealer, row["body"],
                                                float(row["expires_at"]))
