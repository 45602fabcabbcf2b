"""Board accounts, their sessions and the board's event log, in SQLite and PostgreSQL.

Session ids and set-password tokens are stored as keyed digests (a copy of the database
opens no session); the event log is written by a trigger on the timeline (migration 0060),
so every path that changes an incident feeds it in its own transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.staff import BoardEvent, StaffMember
from storage.crypto import Sealer
from storage.pg_records import changed

if TYPE_CHECKING:
    from storage.sqlite import _Db

CHANNEL = "ess_board"  # the NOTIFY channel of the board log
_STAFF = "login, name, lang, roles, areas, agencies, disabled, created_at"
_EVENTS = ("SELECT b.seq, b.incident_id, i.reference, t.kind, i.status, i.area_codes, t.at, "
           "b.agencies "
           "FROM board_events b JOIN timeline t ON t.seq = b.timeline_seq "
           "JOIN incidents i ON i.id = b.incident_id ")


def _session_key(sealer: Sealer, token: str) -> str:
    return sealer.digest("staff-session:" + token)


def _token_key(sealer: Sealer, token: str) -> str:
    return sealer.digest("staff-token:" + token)


def _member(row: Sequence[Any]) -> StaffMember:
    def listed(value: Any) -> tuple[str, ...]:
        return tuple(json.loads(value) if isinstance(value, str) else value)

    at = row[7] if isinstance(row[7], datetime) else datetime.fromtimestamp(row[7], UTC)
    return StaffMember(row[0], row[1], row[2], listed(row[3]), listed(row[4]), listed(row[5]),
                       bool(row[6]), at)


def _lists(member: StaffMember) -> tuple[str, str, str]:
    return json.dumps(member.roles), json.dumps(member.areas), json.dumps(member.agencies)


class SQLiteStaff:
    def __init__(self, db: _Db, sealer: Sealer):
        self._db = db
        self._sealer = sealer

    async def add(self, member: StaffMember, password_hash: str | None) -> bool:
        try:
            await self._db.execute(
                f"INSERT INTO staff ({_STAFF}, password) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (member.login, member.name, member.lang, *_lists(member), int(member.disabled),
                 member.created_at.timestamp(), password_hash))
        except sqlite3.IntegrityError:
            return False
        return True

    async def get(self, login: str) -> StaffMember | None:
        row = await self._db.one(f"SELECT {_STAFF} FROM staff WHERE login = ?", (login,))
        return _member(row) if row else None

    async def all(self) -> list[StaffMember]:
        return [_member(r) for r in await self._db.all(
            f"SELECT {_STAFF} FROM staff ORDER BY login")]

    async def password_hash(self, login: str) -> str | None:
        row = await self._db.one("SELECT password FROM staff WHERE login = ? AND disabled = 0",
                                 (login,))
        return row[0] if row else None

    async def set_password(self, login: str, password_hash: str) -> bool:
        return await self._db.execute("UPDATE staff SET password = ? WHERE login = ?",
                                      (password_hash, login)) == 1

    async def disable(self, login: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute("UPDATE staff SET disabled = 1 WHERE login = ?", (login,))
            await conn.execute("DELETE FROM staff_sessions WHERE login = ?", (login,))
            await conn.execute("DELETE FROM staff_tokens WHERE login = ?", (login,))
            return bool(cur.rowcount == 1)

    async def issue_token(self, login: str, token: str, expires_at: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM staff_tokens WHERE login = ?", (login,))
            await conn.execute("INSERT INTO staff_tokens VALUES (?, ?, ?)",
                               (_token_key(self._sealer, token), login,
                                expires_at.timestamp()))

    async def redeem_token(self, token: str, now: datetime) -> str | None:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM staff_tokens WHERE token = ? AND expires_at > ? RETURNING login",
                (_token_key(self._sealer, token), now.timestamp()))
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def open_session(self, token: str, login: str, now: datetime,
                           expires_at: datetime) -> None:
        await self._db.execute(
            "INSERT INTO staff_sessions VALUES (?, ?, ?, ?)",
            (_session_key(self._sealer, token), login, now.timestamp(), expires_at.timestamp()))

    async def session(self, token: str, now: datetime) -> StaffMember | None:
        cols = ", ".join(f"s.{c.strip()}" for c in _STAFF.split(","))
        row = await self._db.one(
            f"SELECT {cols} FROM staff_sessions x JOIN staff s ON s.login = x.login "
            "WHERE x.token = ? AND x.expires_at > ? AND s.disabled = 0",
            (_session_key(self._sealer, token), now.timestamp()))
        return _member(row) if row else None

    async def end_session(self, token: str) -> None:
        await self._db.execute("DELETE FROM staff_sessions WHERE token = ?",
                               (_session_key(self._sealer, token),))

    async def update(self, member: StaffMember) -> bool:
        roles, areas, agencies = _lists(member)
        return await self._db.execute(
            "UPDATE staff SET name = ?, lang = ?, roles = ?, areas = ?, agencies = ? "
            "WHERE login = ?", (member.name, member.lang, roles, areas, agencies,
                                member.login)) == 1

    async def set_totp(self, login: str, secret: bytes | None) -> bool:
        sealed = self._sealer.seal(secret) if secret is not None else None
        return await self._db.execute(
            "UPDATE staff SET totp = ?, totp_step = 0 WHERE login = ?", (sealed, login)) == 1

    async def totp_secret(self, login: str) -> bytes | None:
        row = await self._db.one("SELECT totp FROM staff WHERE login = ? AND disabled = 0",
                                 (login,))
        return self._sealer.open(bytes(row[0])) if row and row[0] is not None else None

    async def use_totp_step(self, login: str, step: int) -> bool:
        return await self._db.execute(
            "UPDATE staff SET totp_step = ? WHERE login = ? AND totp_step < ? "
            "AND totp IS NOT NULL", (step, login, step)) == 1


class SQLiteBoardLog:
    def __init__(self, db: _Db):
        self._db = db

    async def after(self, seq: int, limit: int = 500) -> list[BoardEvent]:
        rows = await self._db.all(_EVENTS + "WHERE b.seq > ? ORDER BY b.seq LIMIT ?",
                                  (seq, limit))
        return [BoardEvent(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])),
                           datetime.fromtimestamp(r[6], UTC),
                           None if r[7] is None else tuple(json.loads(r[7]))) for r in rows]

    async def last(self) -> int:
        row = await self._db.one("SELECT coalesce(max(seq), 0) FROM board_events")
        return int(row[0])

    async def wake_on_append(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        # One file has no notifications: what this process commits wakes the reader at once
        # (the incident stores call `timeline_committed`); another process's, by the poll.
        self._db.on_timeline.append(wake)

        async def stop() -> None:
            with contextlib.suppress(ValueError):
                self._db.on_timeline.remove(wake)

        return stop


class PgStaff:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._sealer = sealer

    async def add(self, member: StaffMember, password_hash: str | None) -> bool:
        status = await self._pool.execute(
            f"INSERT INTO staff ({_STAFF}, password) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
            "$9) ON CONFLICT (login) DO NOTHING",
            member.login, member.name, member.lang, *_lists(member), member.disabled,
            member.created_at, password_hash)
        return changed(status) == 1

    async def get(self, login: str) -> StaffMember | None:
        row = await self._pool.fetchrow(f"SELECT {_STAFF} FROM staff WHERE login = $1", login)
        return _member(row) if row else None

    async def all(self) -> list[StaffMember]:
        return [_member(r) for r in await self._pool.fetch(
            f"SELECT {_STAFF} FROM staff ORDER BY login")]

    async def password_hash(self, login: str) -> str | None:
        value = await self._pool.fetchval(
            "SELECT password FROM staff WHERE login = $1 AND NOT disabled", login)
        return str(value) if value else None

    async def set_password(self, login: str, password_hash: str) -> bool:
        return changed(await self._pool.execute(
            "UPDATE staff SET password = $2 WHERE login = $1", login, password_hash)) == 1

    async def disable(self, login: str) -> bool:
        return bool(await self._pool.fetchval(
            "WITH s AS (DELETE FROM staff_sessions WHERE login = $1), "
            "t AS (DELETE FROM staff_tokens WHERE login = $1), "
            "u AS (UPDATE staff SET disabled = true WHERE login = $1 RETURNING 1) "
            "SELECT count(*) FROM u", login))

    async def issue_token(self, login: str, token: str, expires_at: datetime) -> None:
        await self._pool.execute(
            "WITH d AS (DELETE FROM staff_tokens WHERE login = $2) "
            "INSERT INTO staff_tokens VALUES ($1, $2, $3)",
            _token_key(self._sealer, token), login, expires_at)

    async def redeem_token(self, token: str, now: datetime) -> str | None:
        value = await self._pool.fetchval(
            "DELETE FROM staff_tokens WHERE token = $1 AND expires_at > $2 RETURNING login",
            _token_key(self._sealer, token), now)
        return str(value) if value else None

    async def open_session(self, token: str, login: str, now: datetime,
                           expires_at: datetime) -> None:
        await self._pool.execute("INSERT INTO staff_sessions VALUES ($1, $2, $3, $4)",
                                 _session_key(self._sealer, token), login, now, expires_at)

    async def session(self, token: str, now: datetime) -> StaffMember | None:
        cols = ", ".join(f"s.{c.strip()}" for c in _STAFF.split(","))
        row = await self._pool.fetchrow(
            f"SELECT {cols} FROM staff_sessions x JOIN staff s ON s.login = x.login "
            "WHERE x.token = $1 AND x.expires_at > $2 AND NOT s.disabled",
            _session_key(self._sealer, token), now)
        return _member(row) if row else None

    async def end_session(self, token: str) -> None:
        await self._pool.execute("DELETE FROM staff_sessions WHERE token = $1",
                                 _session_key(self._sealer, token))

    async def update(self, member: StaffMember) -> bool:
        return changed(await self._pool.execute(
            "UPDATE staff SET name = $2, lang = $3, roles = $4, areas = $5, agencies = $6 "
            "WHERE login = $1", member.login, member.name, member.lang,
            *_lists(member))) == 1

    async def set_totp(self, login: str, secret: bytes | None) -> bool:
        sealed = self._sealer.seal(secret) if secret is not None else None
        return changed(await self._pool.execute(
            "UPDATE staff SET totp = $2, totp_step = 0 WHERE login = $1", login, sealed)) == 1

    async def totp_secret(self, login: str) -> bytes | None:
        value = await self._pool.fetchval(
            "SELECT totp FROM staff WHERE login = $1 AND NOT disabled", login)
        return self._sealer.open(bytes(value)) if value is not None else None

    async def use_totp_step(self, login: str, step: int) -> bool:
        # One row update: of two processes given the same code, one changes the row.
        return changed(await self._pool.execute(
            "UPDATE staff SET totp_step = $2 WHERE login = $1 AND totp_step < $2 "
            "AND totp IS NOT NULL", login, step)) == 1


class PgBoardLog:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def after(self, seq: int, limit: int = 500) -> list[BoardEvent]:
        rows = await self._pool.fetch(_EVENTS + "WHERE b.seq > $1 ORDER BY b.seq LIMIT $2",
                                      seq, limit)
        return [BoardEvent(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6],
                           None if r[7] is None else tuple(r[7])) for r in rows]

    async def last(self) -> int:
        return int(await self._pool.fetchval("SELECT coalesce(max(seq), 0) FROM board_events"))

    async def wake_on_append(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        # One connection of the pool, held while listening (the trigger of migration 0060
        # NOTIFYs at every commit that appends).
        conn = await self._pool.acquire()

        def notified(*_: object) -> None:
            wake()

        await conn.add_listener(CHANNEL, notified)

        async def stop() -> None:
            try:
                await conn.remove_listener(CHANNEL, notified)
            finally:
                await self._pool.release(conn)

        return stop
