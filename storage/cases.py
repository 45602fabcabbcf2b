"""Welfare cases on SQLite and PostgreSQL (the composite store uses PostgreSQL's).

A case row keeps in clear only what lists and routing need (reference, status, area, flags,
the linked incident); everything personal is one sealed JSON body. Duplicate detection works
on keyed hashes in `case_keys` (`bot.case.duplicate_texts`), so a Thai ID is never stored or
compared in clear. Outbox rows and timers of a change commit with it, as for incidents.

The body and the timeline data are sealed with the case's own data key (storage/vault.py,
kind `case`), read in the same statement as the row: destroying the key (`ess subject erase
--case`, retention) erases every copy, backups included; the clear columns stay. A case's
outbox rows (short-lived notices to the office and the volunteer) use the service keys.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.case import Case, Person, duplicate_texts, new_case_reference
from bot.incident import Notification, TimelineEvent
from bot.staff import NATIONAL
from bot.text import dump_json
from bot.types import Location, LocationSource
from storage.crypto import Sealer, SealError, seal_fields
from storage.ports import StaleSession, StorageError, Timer
from storage.vault import ERASED, ERASED_FLAG, Keyring, open_details

if TYPE_CHECKING:
    import aiosqlite

    from storage.sqlite import _Db

_COLUMNS = ("id, reference, source_event, status, channel, lang, area, volunteer_key, "
            "incident_id, flags, body, version, created_at, updated_at")
KIND_CASE = "case"
# Every read takes the case's wrapped data key in the same statement.
_SELECT = (f"SELECT {_COLUMNS}, k.record, k.wrapped FROM cases "
           "LEFT JOIN vault.data_keys k ON k.record = cases.id")
_TIMELINE = ("SELECT t.kind, t.actor, t.channel, t.at, t.data, k.record, k.wrapped "
             "FROM case_timeline t LEFT JOIN vault.data_keys k ON k.record = t.case_id ")


def _blank(row: Sequence[Any], keys: Keyring, created: datetime, updated: datetime) -> Case:
    """The case of a row; its personal body left empty and flagged erased when its key is
    destroyed (the clear columns stay)."""
    case = Case(reference=row[1], volunteer="", channel=row[4], lang=row[5], area=row[6],
                location=Location(None, None, LocationSource.TEXT), person=Person(),
                flags=json.loads(row[9]), status=row[3], incident_id=row[8],
                source_event=row[2], id=row[0], version=row[11], created_at=created,
                updated_at=updated)
    own = keys.opened(row[0], row[14] is not None, row[15])
    try:
        if own is None:
            raise SealError("erased")
        case.open_body(own.open_json(row[10]))
    except SealError:
        case.needs = ERASED
        case.flags = [*case.flags, ERASED_FLAG]
    return case


def is_erased_case(case: Case) -> bool:
    return ERASED_FLAG in case.flags


class _Keys:
    def __init__(self, sealer: Sealer):
        self._sealer = sealer

    def volunteer(self, address: str) -> str:
        return self._sealer.digest("volunteer:" + address)

    def duplicates(self, case: Case) -> list[str]:
        return [self._sealer.digest(text) for text in duplicate_texts(case)]

    def split(self, case: Case) -> tuple[list[str], list[str]]:
        """Keys that match at any distance in time (a Thai ID), and keys that match only
        within the window (the same person and place)."""
        texts = duplicate_texts(case)
        return ([self._sealer.digest(t) for t in texts if t.startswith("thai_id:")],
                [self._sealer.digest(t) for t in texts if not t.startswith("thai_id:")])


class SQLiteCases:
    def __init__(self, db: _Db, sealer: Sealer, keyring: Keyring | None = None):
        self._db = db
        self._sealer = sealer
        self._keys = _Keys(sealer)
        self._ring = keyring or Keyring(sealer)

    def _case(self, row: Sequence[Any]) -> Case:
        return _blank(row, self._ring, datetime.fromtimestamp(row[12], UTC),
                      datetime.fromtimestamp(row[13], UTC))

    async def _own(self, conn: aiosqlite.Connection, case_id: str) -> Sealer:
        own = self._ring.cached(case_id)
        if own is not None:
            return own
        rows = list(await conn.execute_fetchall(
            "SELECT record, wrapped FROM vault.data_keys WHERE record = ?", (case_id,)))
        return self._ring.for_write(case_id, bool(rows), rows[0][1] if rows else None)

    async def _extras(self, conn: aiosqlite.Connection, own: Sealer, case: Case,
                      event: TimelineEvent, notifications: Sequence[Notification],
                      timers: Sequence[Timer]) -> None:
        await conn.execute(
            "INSERT INTO case_timeline (case_id, at, kind, actor, channel, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (case.id, event.at.timestamp(), event.kind, event.actor, event.channel,
             seal_fields(own, event.data)))
        await conn.executemany(
            "INSERT INTO outbox (id, incident_id, recipient, kind, payload, idempotency_key, "
            "status, attempts, next_attempt_at, last_error, created_at) "
            "VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(n.id, self._sealer.seal_text(n.recipient), n.kind,
              self._sealer.seal_json(n.payload), n.key, n.status, n.attempts,
              n.next_attempt_at.timestamp(), n.last_error, n.created_at.timestamp())
             for n in notifications])
        await conn.executemany(
            "INSERT OR REPLACE INTO timers VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            [(t.id, t.kind, t.subject, t.due_at.timestamp(), t.subject_version,
              dump_json(t.data)) for t in timers])
        await conn.executemany(
            "INSERT OR IGNORE INTO case_keys (case_id, key, at) VALUES (?, ?, ?)",
            [(case.id, key, case.created_at.timestamp()) for key in self._keys.duplicates(case)])

    async def create(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        if case.source_event:
            row = await self._db.one(f"{_SELECT} WHERE source_event = ?", (case.source_event,))
            if row:
                return self._case(row)
        own, wrapped = self._ring.create(case.id)
        # The key commits first, in its own file: a crash in between leaves an unused key,
        # never a case whose key is missing.
        await self._db.execute(
            "INSERT OR IGNORE INTO vault.data_keys VALUES (?, ?, ?, ?, ?, NULL)",
            (case.id, KIND_CASE, self._keys.volunteer(case.volunteer), wrapped,
             case.created_at.timestamp()))
        async with self._db.transaction() as conn:
            if case.source_event:
                rows = list(await conn.execute_fetchall(
                    f"{_SELECT} WHERE source_event = ?",
                    (case.source_event,)))
                if rows:
                    return self._case(rows[0])
            for _ in range(8):
                try:
                    await conn.execute(
                        f"INSERT INTO cases ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                        (case.id, case.reference, case.source_event, case.status, case.channel,
                         case.lang, case.area, self._keys.volunteer(case.volunteer),
                         case.incident_id, json.dumps(case.flags),
                         own.seal_json(case.sealed_body()), case.version,
                         case.created_at.timestamp(), case.updated_at.timestamp()))
                    break
                except sqlite3.IntegrityError:
                    case.reference = new_case_reference()
            else:
                raise StorageError("could not find a free case reference")
            await self._extras(conn, own, case, event, notifications, timers)
        return case

    async def get(self, reference: str) -> Case | None:
        row = await self._db.one(f"{_SELECT} WHERE reference = ?",
                                 (reference,))
        return self._case(row) if row else None

    async def get_by_id(self, case_id: str) -> Case | None:
        row = await self._db.one(f"{_SELECT} WHERE id = ?", (case_id,))
        return self._case(row) if row else None

    async def update(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        async with self._db.transaction() as conn:
            own = await self._own(conn, case.id)
            cur = await conn.execute(
                "UPDATE cases SET status = ?, area = ?, flags = ?, body = ?, incident_id = ?, "
                "version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
                (case.status, case.area, json.dumps(_kept(case.flags)),
                 own.seal_json(case.sealed_body()), case.incident_id,
                 event.at.timestamp(), case.id, case.version))
            if cur.rowcount != 1:
                raise StaleSession(case.reference)
            await self._extras(conn, own, case, event, notifications, timers)
        case.version += 1
        case.updated_at = event.at
        return case

    async def timeline(self, case_id: str) -> list[TimelineEvent]:
        rows = await self._db.all(f"{_TIMELINE} WHERE t.case_id = ? ORDER BY t.seq", (case_id,))
        return [TimelineEvent(r[0], r[1], r[2], datetime.fromtimestamp(r[3], UTC),
                              open_details(self._ring.opened(case_id, r[5] is not None, r[6]),
                                           r[4], frozenset())) for r in rows]

    async def for_volunteer(self, volunteer: str, limit: int = 20) -> list[Case]:
        rows = await self._db.all(
            f"{_SELECT} WHERE volunteer_key = ? "
            "ORDER BY created_at DESC LIMIT ?", (self._keys.volunteer(volunteer), limit))
        return [self._case(r) for r in rows]

    @staticmethod
    def _where(areas: Sequence[str] | None, flag: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = ["1 = 1"]
        args: list[Any] = []
        if areas is not None and NATIONAL not in areas:
            marks = ", ".join("?" * len(areas)) or "NULL"
            clauses.append(f"(area IN ({marks}) OR substr(area, 1, 2) IN ({marks}))")
            args += [*areas, *areas]
        if flag is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(cases.flags) WHERE value = ?)")
            args.append(flag)
        return " AND ".join(clauses), args

    async def recent(self, limit: int = 50, areas: Sequence[str] | None = None,
                     flag: str | None = None) -> list[Case]:
        where, args = self._where(areas, flag)
        rows = await self._db.all(
            f"{_SELECT} WHERE {where} ORDER BY created_at DESC LIMIT ?",
            (*args, limit))
        return [self._case(r) for r in rows]

    async def get_in(self, reference: str, areas: Sequence[str]) -> Case | None:
        where, args = self._where(areas, None)
        row = await self._db.one(
            f"{_SELECT} WHERE reference = ? AND {where}",
            (reference, *args))
        return self._case(row) if row else None

    async def for_incident(self, incident_id: str) -> list[Case]:
        rows = await self._db.all(
            f"{_SELECT} WHERE incident_id = ? ORDER BY created_at",
            (incident_id,))
        return [self._case(r) for r in rows]

    async def possible_duplicates(self, case: Case, since: datetime) -> list[str]:
        always, windowed = self._keys.split(case)
        a = ", ".join("?" * len(always)) or "NULL"
        w = ", ".join("?" * len(windowed)) or "NULL"
        rows = await self._db.all(
            "SELECT DISTINCT c.reference FROM case_keys k JOIN cases c ON c.id = k.case_id "
            f"WHERE k.case_id != ? AND (k.key IN ({a}) OR (k.key IN ({w}) AND k.at >= ?)) "
            "ORDER BY c.reference", (case.id, *always, *windowed, since.timestamp()))
        return [r[0] for r in rows]

    async def closed_before(self, before: datetime, limit: int = 500) -> list[Case]:
        rows = await self._db.all(
            f"{_SELECT} WHERE status = 'closed' AND updated_at < ? AND k.wrapped IS NOT NULL "
            "ORDER BY updated_at LIMIT ?", (before.timestamp(), limit))
        return [self._case(r) for r in rows]

    async def scrub(self, case_ids: Sequence[str]) -> int:
        if not case_ids:
            return 0
        return await self._db.execute(
            f"DELETE FROM case_keys WHERE case_id IN ({', '.join('?' * len(case_ids))})",
            list(case_ids))


class PgCases:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, keyring: Keyring | None = None):
        self._pool = pool
        self._sealer = sealer
        self._keys = _Keys(sealer)
        self._ring = keyring or Keyring(sealer)

    def _case(self, row: Sequence[Any]) -> Case:
        return _blank(row, self._ring, row[12], row[13])

    async def _own(self, conn: asyncpg.Connection, case_id: str) -> Sealer:
        own = self._ring.cached(case_id)
        if own is not None:
            return own
        row = await conn.fetchrow(
            "SELECT record, wrapped FROM vault.data_keys WHERE record = $1", case_id)
        return self._ring.for_write(case_id, row is not None, row[1] if row else None)

    async def _extras(self, conn: asyncpg.Connection, own: Sealer, case: Case,
                      event: TimelineEvent, notifications: Sequence[Notification],
                      timers: Sequence[Timer]) -> None:
        await conn.execute(
            "INSERT INTO case_timeline (case_id, at, kind, actor, channel, data) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            case.id, event.at, event.kind, event.actor, event.channel,
            seal_fields(own, event.data))
        if notifications:
            await conn.executemany(
                "INSERT INTO outbox (id, incident_id, recipient, kind, payload, "
                "idempotency_key, status, attempts, next_attempt_at, last_error, created_at) "
                "VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [(n.id, self._sealer.seal_text(n.recipient), n.kind,
                  self._sealer.seal_json(n.payload), n.key, n.status, n.attempts,
                  n.next_attempt_at, n.last_error, n.created_at) for n in notifications])
        if timers:
            await conn.executemany(
                "INSERT INTO timers (id, kind, subject, due_at, subject_version, data) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (id) DO UPDATE SET "
                "kind = excluded.kind, subject = excluded.subject, due_at = excluded.due_at, "
                "subject_version = excluded.subject_version, data = excluded.data, "
                "lease_owner = NULL, lease_until = NULL",
                [(t.id, t.kind, t.subject, t.due_at, t.subject_version, dump_json(t.data))
                 for t in timers])
        await conn.executemany(
            "INSERT INTO case_keys (case_id, key, at) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            [(case.id, key, case.created_at) for key in self._keys.duplicates(case)])

    async def create(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        own, wrapped = self._ring.create(case.id)
        async with self._pool.acquire() as conn:
            for _ in range(8):
                try:
                    async with conn.transaction():
                        if case.source_event:
                            row = await conn.fetchrow(
                                f"{_SELECT} WHERE source_event = $1",
                                case.source_event)
                            if row:
                                return self._case(row)
                        await conn.execute(
                            f"INSERT INTO cases ({_COLUMNS}) VALUES "
                            f"({', '.join(f'${k}' for k in range(1, 15))})",
                            case.id, case.reference, case.source_event, case.status,
                            case.channel, case.lang, case.area,
                            self._keys.volunteer(case.volunteer), case.incident_id,
                            json.dumps(case.flags), own.seal_json(case.sealed_body()),
                            case.version, case.created_at, case.updated_at)
                        # The vault is a schema of the same database: one transaction.
                        await conn.execute(
                            "INSERT INTO vault.data_keys (record, kind, subject, wrapped, "
                            "made_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                            case.id, KIND_CASE, self._keys.volunteer(case.volunteer), wrapped,
                            case.created_at)
                        await self._extras(conn, own, case, event, notifications, timers)
                        return case
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name != "cases_reference_key":
                        raise
                    case.reference = new_case_reference()
        raise StorageError("could not find a free case reference")

    async def get(self, reference: str) -> Case | None:
        row = await self._pool.fetchrow(f"{_SELECT} WHERE reference = $1",
                                        reference)
        return self._case(row) if row else None

    async def get_by_id(self, case_id: str) -> Case | None:
        row = await self._pool.fetchrow(f"{_SELECT} WHERE id = $1", case_id)
        return self._case(row) if row else None

    async def update(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        async with self._pool.acquire() as conn, conn.transaction():
            own = await self._own(conn, case.id)
            status = await conn.execute(
                "UPDATE cases SET status = $1, area = $2, flags = $3, body = $4, "
                "incident_id = $5, version = version + 1, updated_at = $6 "
                "WHERE id = $7 AND version = $8",
                case.status, case.area, json.dumps(_kept(case.flags)),
                own.seal_json(case.sealed_body()), case.incident_id, event.at,
                case.id, case.version)
            if status.rsplit(" ", 1)[-1] != "1":
                raise StaleSession(case.reference)
            await self._extras(conn, own, case, event, notifications, timers)
        case.version += 1
        case.updated_at = event.at
        return case

    async def timeline(self, case_id: str) -> list[TimelineEvent]:
        rows = await self._pool.fetch(f"{_TIMELINE} WHERE t.case_id = $1 ORDER BY t.seq",
                                      case_id)
        return [TimelineEvent(r[0], r[1], r[2], r[3], open_details(
            self._ring.opened(case_id, r[5] is not None, r[6]), r[4], frozenset()))
            for r in rows]

    async def for_volunteer(self, volunteer: str, limit: int = 20) -> list[Case]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE volunteer_key = $1 "
            "ORDER BY created_at DESC LIMIT $2", self._keys.volunteer(volunteer), limit)
        return [self._case(r) for r in rows]

    @staticmethod
    def _where(areas: Sequence[str] | None, flag: str | None,
               first: int) -> tuple[str, list[Any]]:
        clauses: list[str] = ["TRUE"]
        args: list[Any] = []
        if areas is not None and NATIONAL not in areas:
            args.append(list(areas))
            n = first + len(args) - 1
            clauses.append(f"(area = ANY(${n}::text[]) OR left(area, 2) = ANY(${n}::text[]))")
        if flag is not None:
            args.append(flag)
            clauses.append(f"flags::jsonb ? ${first + len(args) - 1}")
        return " AND ".join(clauses), args

    async def recent(self, limit: int = 50, areas: Sequence[str] | None = None,
                     flag: str | None = None) -> list[Case]:
        where, args = self._where(areas, flag, 2)
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE {where} ORDER BY created_at DESC LIMIT $1",
            limit, *args)
        return [self._case(r) for r in rows]

    async def get_in(self, reference: str, areas: Sequence[str]) -> Case | None:
        where, args = self._where(areas, None, 2)
        row = await self._pool.fetchrow(
            f"{_SELECT} WHERE reference = $1 AND {where}", reference, *args)
        return self._case(row) if row else None

    async def for_incident(self, incident_id: str) -> list[Case]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE incident_id = $1 ORDER BY created_at",
            incident_id)
        return [self._case(r) for r in rows]

    async def possible_duplicates(self, case: Case, since: datetime) -> list[str]:
        always, windowed = self._keys.split(case)
        rows = await self._pool.fetch(
            "SELECT DISTINCT c.reference FROM case_keys k JOIN cases c ON c.id = k.case_id "
            "WHERE k.case_id != $1 AND (k.key = ANY($2::text[]) "
            "OR (k.key = ANY($3::text[]) AND k.at >= $4)) ORDER BY c.reference",
            case.id, always, windowed, since)
        return [r[0] for r in rows]

    async def closed_before(self, before: datetime, limit: int = 500) -> list[Case]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE status = 'closed' AND updated_at < $1 AND k.wrapped IS NOT NULL "
            "ORDER BY updated_at LIMIT $2", before, limit)
        return [self._case(r) for r in rows]

    async def scrub(self, case_ids: Sequence[str]) -> int:
        status = await self._pool.execute(
            "DELETE FROM case_keys WHERE case_id = ANY($1::text[])", list(case_ids))
        return int(status.rsplit(" ", 1)[-1])


def _kept(flags: Sequence[str]) -> list[str]:
    """The flags to store: `erased` is set by `scrub` only, never written back by a save."""
    return [f for f in flags if f != ERASED_FLAG]
