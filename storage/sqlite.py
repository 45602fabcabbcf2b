"""The embedded default store: one SQLite file in WAL mode, through aiosqlite.

One connection serves the process; an asyncio lock makes each transaction whole, because
statements from two coroutines on one connection would otherwise land in each other's
transaction. `synchronous=FULL`: a report the reporter was told is received must survive a
power cut, not only a crashed process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.incident import (
    Incident,
    Notification,
    TimelineEvent,
    dispatched_agencies,
    new_binding_code,
    new_reference,
)
from bot.session import Session
from bot.staff import NATIONAL
from bot.text import dump_json
from storage import analytics, count_rollups, rollups
from storage.audit import AuditEntry, SQLiteAudit
from storage.case_photos import SQLiteCasePhotos
from storage.cases import SQLiteCases
from storage.conversation_keys import ConversationKeys, session_from
from storage.crypto import CLEAR_DETAILS, Sealer, private_folder, seal_fields
from storage.exports import SqlExports
from storage.inbound_journal import SQLiteJournal
from storage.locks import LocalLocks
from storage.menus import SQLiteMenus
from storage.migrations import check_version, missing
from storage.ports import Binding, Loaded, Milestone, StaleSession, StorageError, Timer
from storage.privacy import SqlPrivacy
from storage.revocations import SQLiteRevocations
from storage.shared_sqlite import (
    SQLiteDedupe,
    SQLiteOptOuts,
    SQLiteRateLimits,
    SQLiteTranscripts,
)
from storage.staff import SQLiteBoardLog, SQLiteStaff
from storage.vault import (
    CLOSED_STATUSES,
    KIND_INCIDENT,
    Keyring,
    SQLiteVault,
    attach_vault,
    incident_from,
    open_details,
    opened_notifications,
    phone_key,
)
from storage.vault import kept_details as _kept

BACKEND = "sqlite"


def ts(dt: datetime) -> float:
    return dt.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def private_database(path: Path) -> None:
    """The database file readable by its owner only, before SQLite opens it: SQLite gives
    the -wal and -shm files the database file's mode, so they follow."""
    private_folder(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + suffix)
        if part.exists() and part.stat().st_mode & 0o077:
            os.chmod(part, 0o600)  # a file from an older release, created 0644


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class _Db:
    def __init__(self, conn: aiosqlite.Connection, path: Path | None = None):
        self.conn = conn
        self.path = path  # the audit trail's anchor lives next to it (storage/audit.py)
        self.lock = asyncio.Lock()
        # Who wants to know when this process committed a timeline event (the board's feed:
        # one file has no NOTIFY, and waiting for its poll cost a viewer up to its interval).
        self.on_timeline: list[Callable[[], None]] = []

    def timeline_committed(self) -> None:
        for wake in list(self.on_timeline):
            wake()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self.lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
            except BaseException:
                # Also when cancelled during BEGIN: it still runs on aiosqlite's thread, and
                # the ROLLBACK queued after it undoes it (or finds nothing to undo).
                with contextlib.suppress(sqlite3.OperationalError):
                    await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in autocommit mode (atomic by itself); returns the rows changed."""
        async with self.lock:
            cur = await self.conn.execute(sql, params)
            return int(cur.rowcount)

    # execute_fetchall is one trip to aiosqlite's thread; execute + fetch + close is three.
    async def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.lock:
            return list(await self.conn.execute_fetchall(sql, params))


class SQLiteSessions:
    """Sessions sealed with their conversation's own key (storage/conversation_keys.py)."""

    def __init__(self, db: _Db, sealer: Sealer, keys: ConversationKeys):
        self._db = db
        self._sealer = sealer
        self._keys = keys

    async def load(self, conversation: str, event_key: str) -> Loaded:
        # One statement: the dedupe check and the session, in one round trip.
        record = self._keys.record(conversation)
        row = await self._db.one(
            "SELECT EXISTS (SELECT 1 FROM handled_events WHERE event_key = ?), s.data, "
            "s.version, s.updated_at, s.expires_at FROM (SELECT 1) "
            "LEFT JOIN sessions s ON s.conversation = ?",
            (event_key, record))
        duplicate = bool(row[0])
        if row[1] is None:
            return Loaded(duplicate, None)
        own = await self._keys.for_read(record, row[1])
        return Loaded(duplicate, session_from(own, conversation, row[1], row[2], _dt(row[3]),
                                              dt(row[4])))

    async def save(self, session: Session, event_key: str) -> None:
        record = self._keys.record(session.conversation)
        own = (await self._keys.for_write([record]))[record].sealer
        blob = own.seal_json(session.to_dict())
        expires = ts(session.expires_at) if session.expires_at and session.active else None
        # A single statement is atomic; the trigger of migration 0003 records the event id
        # inside it, so the session and its dedupe record are written together or not at all.
        if session.version == 0:
            try:
                await self._db.execute(
                    "INSERT INTO sessions (conversation, data, version, updated_at, "
                    "expires_at, last_event) VALUES (?, ?, 1, ?, ?, ?)",
                    (record, blob, ts(session.updated_at), expires, event_key))
            except sqlite3.IntegrityError:
                raise StaleSession(session.conversation) from None
        else:
            changed = await self._db.execute(
                "UPDATE sessions SET data = ?, version = version + 1, updated_at = ?, "
                "expires_at = ?, last_event = ? WHERE conversation = ? AND version = ?",
                (blob, ts(session.updated_at), expires, event_key, record, session.version))
            if changed != 1:
                raise StaleSession(session.conversation)
        session.version += 1

    async def sweep_idle(self, now: datetime) -> int:
        rows = await self._db.all(
            "SELECT conversation, data, version FROM sessions "
            "WHERE expires_at IS NOT NULL AND expires_at < ? LIMIT 500", (ts(now),))
        owns = await self._keys.for_write([r[0] for r in rows]) if rows else {}
        # Opened before the transaction: a key may have to come from the vault (same lock).
        ended_sessions = []
        for record, blob, version in rows:
            session = session_from(await self._keys.for_read(record, blob), record, blob,
                                   version, now, None)
            session.end()
            session.expired = True
            ended_sessions.append((owns[record].sealer.seal_json(session.to_dict()), record,
                                   version))
        ended = 0
        async with self._db.transaction() as conn:
            for update in ended_sessions:
                cur = await conn.execute(
                    "UPDATE sessions SET data = ?, version = version + 1, expires_at = NULL "
                    "WHERE conversation = ? AND version = ?", update)
                ended += cur.rowcount
        return ended

    async def erase(self, conversation: str) -> int:
        return await self._db.execute("DELETE FROM sessions WHERE conversation = ?",
                                      (self._sealer.digest(conversation),))

    async def forget_events(self, before: datetime) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM handled_events WHERE handled_at < ?",
                                     (ts(before),))
            return cur.rowcount


_INCIDENT_COLUMNS = (
    "id, reference, source_event, type, status, channel, reporter, lang, silent, do_not_call, "
    "drill, phone, location, location_source, area_codes, details, version, created_at, "
    "updated_at, synthetic"
)
_NAMES = [c.strip() for c in _INCIDENT_COLUMNS.split(",")]
# Every read takes the record's wrapped data key in the same statement (storage/vault.py).
_SELECT = (f"SELECT {_INCIDENT_COLUMNS}, k.record, k.wrapped FROM incidents "
           "LEFT JOIN vault.data_keys k ON k.record = incidents.id")


def _scope(areas: Sequence[str], agencies: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """The SQL condition "routed to one of `areas`" and, with `agencies`, "dispatched to one
    of them" (everything for the national centre)."""
    if NATIONAL in areas:
        return "1 = 1", []
    if not areas:
        return "1 = 0", []
    where = (f"EXISTS (SELECT 1 FROM json_each(incidents.area_codes) WHERE value IN "
             f"({', '.join('?' * len(areas))}))")
    if agencies:
        where += (" AND EXISTS (SELECT 1 FROM incident_agencies a WHERE a.incident_id = "
                  f"incidents.id AND a.agency IN ({', '.join('?' * len(agencies))}))")
    return where, [*areas, *agencies]


async def _count(conn: aiosqlite.Connection, changes: Sequence[tuple[count_rollups.Key, int]],
                 synthetic: bool, drill: bool) -> None:
    # The count rollups (storage/count_rollups.py), in the incident's transaction.
    if changes:
        await conn.executemany(count_rollups.upsert_sql("sqlite"), [
            (*key, int(synthetic), int(drill), n) for key, n in changes])


async def _index_agencies(conn: aiosqlite.Connection, incident: Incident) -> None:
    """Keep `incident_agencies` equal to the incident's dispatched agencies."""
    await conn.execute("DELETE FROM incident_agencies WHERE incident_id = ?", (incident.id,))
    await conn.executemany(
        "INSERT INTO incident_agencies (agency, incident_id) VALUES (?, ?)",
        [(agency, incident.id) for agency in dispatched_agencies(incident.details)])


class SQLiteIncidents:
    def __init__(self, db: _Db, sealer: Sealer, keyring: Keyring | None = None):
        self._db = db
        self._sealer = sealer
        self._keys = keyring or Keyring(sealer)

    def _row(self, incident: Incident, own: Sealer) -> tuple[Any, ...]:
        return (
            incident.id, incident.reference, incident.source_event, incident.type,
            incident.status, incident.channel, own.seal_text(incident.reporter),
            incident.lang,
            int(incident.silent), int(incident.do_not_call), int(incident.drill),
            own.seal_text(incident.phone) if incident.phone else None,
            own.seal_json(incident.location.to_dict()), incident.location.source.value,
            json.dumps(incident.area_codes),
            seal_fields(own, incident.details, CLEAR_DETAILS),
            incident.version, ts(incident.created_at), ts(incident.updated_at),
            int(incident.synthetic),
        )

    def _incident(self, row: Sequence[Any]) -> Incident:
        n = len(_NAMES)
        data = dict(zip(_NAMES, row[:n], strict=True))
        data.update(area_codes=json.loads(data["area_codes"]),
                    created_at=_dt(data["created_at"]), updated_at=_dt(data["updated_at"]))
        return incident_from(data, self._keys.opened(row[0], row[n] is not None, row[n + 1]))

    async def _own(self, conn: aiosqlite.Connection, incident_id: str) -> Sealer:
        own = self._keys.cached(incident_id)
        if own is not None:
            return own
        rows = list(await conn.execute_fetchall(
            "SELECT record, wrapped FROM vault.data_keys WHERE record = ?", (incident_id,)))
        return self._keys.for_write(incident_id, bool(rows), rows[0][1] if rows else None)

    async def _queue(self, conn: aiosqlite.Connection, own: Sealer,
                     notifications: Sequence[Notification]) -> None:
        await conn.executemany(
            "INSERT INTO outbox (id, incident_id, recipient, kind, payload, idempotency_key, "
            "status, attempts, next_attempt_at, lease_owner, lease_until, last_error, "
            "created_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
            [(n.id, n.incident_id, own.seal_text(n.recipient), n.kind,
              own.seal_json(n.payload),
              n.key, n.status, n.attempts, ts(n.next_attempt_at), n.last_error,
              ts(n.created_at), ts(n.sent_at) if n.sent_at else None) for n in notifications])

    async def _event(self, conn: aiosqlite.Connection, own: Sealer, incident_id: str,
                     event: TimelineEvent) -> None:
        await conn.execute(
            "INSERT INTO timeline (incident_id, at, kind, actor, channel, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (incident_id, ts(event.at), event.kind, event.actor, event.channel,
             seal_fields(own, event.data)))

    async def create(self, incident: Incident, notifications: Sequence[Notification],
                     event: TimelineEvent, timers: Sequence[Timer] = ()) -> Incident:
        if incident.source_event:
            row = await self._db.one(f"{_SELECT} WHERE source_event = ?",
                                     (incident.source_event,))
            if row:
                return self._incident(row)
        own, wrapped = self._keys.create(incident.id)
        # The key commits first, in its own file: a crash in between leaves an unused key,
        # never an incident whose key is missing.
        await self._db.execute(
            "INSERT OR IGNORE INTO vault.data_keys VALUES (?, ?, ?, ?, ?, NULL)",
            (incident.id, KIND_INCIDENT, self._sealer.digest(incident.reporter), wrapped,
             ts(incident.created_at)))
        async with self._db.transaction() as conn:
            if incident.source_event:
                rows = list(await conn.execute_fetchall(
                    f"{_SELECT} WHERE source_event = ?", (incident.source_event,)))
                if rows:
                    return self._incident(rows[0])
            for _ in range(8):
                try:
                    await conn.execute(
                        f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) "
                        f"VALUES ({', '.join('?' * 20)})", self._row(incident, own))
                    break
                except sqlite3.IntegrityError:
                    incident.reference = new_reference()
            else:
                raise StorageError("could not find a free incident reference")
            await conn.execute(
                "UPDATE incidents SET reporter_key = ?, phone_key = ?, province = ?, "
                "district = ?, station = ?, cell = ?, local_day = ?, local_week = ?, "
                "local_month = ?, hour_of_week = ? WHERE id = ?",
                (self._sealer.digest(incident.reporter), phone_key(self._sealer, incident),
                 *analytics.area_columns(incident), analytics.cell_of(incident),
                 *analytics.local_columns(incident.created_at), incident.id))
            await _index_agencies(conn, incident)
            await self._rollup(conn, None, await self._facts(conn, incident.id))
            await _count(conn, [(k, 1) for k in count_rollups.incident_keys(incident)],
                         incident.synthetic, incident.drill)
            await self._event(conn, own, incident.id, event)
            for n in notifications:
                n.incident_id = incident.id
            await self._queue(conn, own, notifications)
            await _schedule(conn, timers)
        self._db.timeline_committed()
        return incident

    async def get(self, reference: str) -> Incident | None:
        row = await self._db.one(
            f"{_SELECT} WHERE reference = ?", (reference,))
        return self._incident(row) if row else None

    async def get_by_id(self, incident_id: str) -> Incident | None:
        row = await self._db.one(
            f"{_SELECT} WHERE id = ?", (incident_id,))
        return self._incident(row) if row else None

    async def for_reporter(self, reporter: str, since: datetime,
                           limit: int = 20) -> list[Incident]:
        rows = await self._db.all(
            f"{_SELECT} WHERE reporter_key = ? "
            "AND created_at >= ? ORDER BY created_at DESC LIMIT ?",
            (self._sealer.digest(reporter), ts(since), limit))
        return [self._incident(r) for r in rows]

    async def recent(self, limit: int = 50, *, include_drills: bool = True) -> list[Incident]:
        where = "" if include_drills else "WHERE drill = 0"
        rows = await self._db.all(
            f"{_SELECT} {where} "
            "ORDER BY created_at DESC LIMIT ?", (limit,))
        return [self._incident(r) for r in rows]

    async def update(self, incident: Incident, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Incident:
        async with self._db.transaction() as conn:
            own = await self._own(conn, incident.id)
            was = list(await conn.execute_fetchall(
                "SELECT local_day, province, status, synthetic, drill FROM incidents "
                "WHERE id = ? AND version = ?",
                (incident.id, incident.version)))
            cur = await conn.execute(
                "UPDATE incidents SET status = ?, phone = ?, phone_key = ?, do_not_call = ?, "
                "area_codes = ?, details = ?, version = version + 1, updated_at = ? "
                "WHERE id = ? AND version = ?",
                (incident.status,
                 own.seal_text(incident.phone) if incident.phone else None,
                 phone_key(self._sealer, incident),
                 int(incident.do_not_call), json.dumps(incident.area_codes),
                 seal_fields(own, _kept(incident.details), CLEAR_DETAILS), ts(event.at),
                 incident.id, incident.version))
            if cur.rowcount != 1:
                raise StaleSession(incident.reference)
            await _index_agencies(conn, incident)
            await self._event(conn, own, incident.id, event)
            await self._mark(conn, incident, event)
            if was and was[0][0] is not None:  # the count rollups follow the status
                day, province, status, synthetic, drill = was[0]
                await _count(conn, count_rollups.status_keys(
                    day, province, status, incident.status), bool(synthetic), bool(drill))
            for n in notifications:
                n.incident_id = incident.id
            await self._queue(conn, own, notifications)
            await _schedule(conn, timers)
        self._db.timeline_committed()
        incident.version += 1
        incident.updated_at = event.at
        return incident

    @staticmethod
    async def _facts(conn: aiosqlite.Connection, incident_id: str) -> rollups.Facts | None:
        rows = list(await conn.execute_fetchall(
            f"SELECT {', '.join(rollups.FACTS)} FROM incidents WHERE id = ?", (incident_id,)))
        return rollups.Facts.of(rows[0]) if rows and rows[0][0] is not None else None

    @staticmethod
    async def _rollup(conn: aiosqlite.Connection, before: rollups.Facts | None,
                      after: rollups.Facts | None) -> None:
        # Both tables of the response rollups: the area and help families, the districts.
        for table, keys, family in (
                (rollups.TABLE, rollups.KEYS, rollups.Facts.rollup_keys),
                (rollups.DISTRICT_TABLE, rollups.DISTRICT_KEYS, rollups.Facts.district_keys)):
            changes = rollups.delta(before, after, family)
            if changes:
                await conn.executemany(rollups.upsert_sql("sqlite", table, keys),
                                       rollups.upsert_rows(changes, int))

    async def _mark(self, conn: aiosqlite.Connection, incident: Incident,
                    event: TimelineEvent) -> None:
        marks = analytics.milestone_marks(incident, event)
        sets = [f"{column} = coalesce({column}, ?)" for column in marks]
        params = [ts(v) if isinstance(v, datetime) else v for v in marks.values()]
        if event.kind == "escalated":
            sets.append("escalations = escalations + 1")
        if "on_scene_at" in marks:
            sets.append(f"{analytics.ETA_OVER} = coalesce({analytics.ETA_OVER}, "
                        "(? - en_route_at) - eta_minutes * 60)")
            params.append(ts(event.at))
        if sets:
            # The daily rollups change with the row, in the same transaction.
            before = await self._facts(conn, incident.id)
            await conn.execute(
                f"UPDATE incidents SET {', '.join(sets)} WHERE id = ?", [*params, incident.id])
            await self._rollup(conn, before, await self._facts(conn, incident.id))

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        rows = await self._db.all(
            "SELECT t.kind, t.actor, t.channel, t.at, t.data, k.record, k.wrapped "
            "FROM timeline t LEFT JOIN vault.data_keys k ON k.record = t.incident_id "
            "WHERE t.incident_id = ? ORDER BY t.seq", (incident_id,))
        if not rows:
            return []
        own = self._keys.opened(incident_id, rows[0][5] is not None, rows[0][6])
        return [TimelineEvent(r[0], r[1], r[2], _dt(r[3]), open_details(own, r[4], frozenset()))
                for r in rows]

    async def milestones(self, since: datetime, kinds: Sequence[str]) -> list[Milestone]:
        marks = ", ".join("?" * len(kinds)) or "NULL"
        rows = await self._db.all(
            "SELECT i.id, i.created_at, i.area_codes, t.kind, min(t.at) FROM incidents i "
            f"LEFT JOIN timeline t ON t.incident_id = i.id AND t.kind IN ({marks}) "
            "WHERE i.created_at >= ? AND i.drill = 0 AND i.synthetic = 0 GROUP BY i.id, t.kind",
            [*kinds, ts(since)])
        return [Milestone(r[0], _dt(r[1]), tuple(json.loads(r[2])), r[3],
                          dt(r[4]) if r[3] is not None else None) for r in rows]

    async def counts(self, query: analytics.Query,
                     dims: Sequence[str]) -> list[analytics.CountRow]:
        async def fetch(sql: str, params: list[Any]) -> list[Any]:
            return list(await self._db.all(sql, params))

        return await count_rollups.counts("sqlite", fetch, query, dims, ts)

    async def responses(self, query: analytics.Query, dims: Sequence[str],
                        now: datetime) -> list[analytics.ResponseRow]:
        async def fetch(sql: str, params: list[Any]) -> list[Any]:
            return list(await self._db.all(sql, params))

        return await rollups.responses("sqlite", fetch, query, dims, now, ts)
    async def in_areas(self, areas: Sequence[str], *, agencies: Sequence[str] = (),
                       exclude_status: Sequence[str] = (), limit: int = 300) -> list[Incident]:
        where, params = _scope(areas, agencies)
        if exclude_status:
            where += f" AND status NOT IN ({', '.join('?' * len(exclude_status))})"
            params += list(exclude_status)
        rows = await self._db.all(
            f"{_SELECT} WHERE {where} "
            "ORDER BY created_at DESC LIMIT ?", [*params, limit])
        return [self._incident(r) for r in rows]

    async def get_in(self, reference: str, areas: Sequence[str],
                     agencies: Sequence[str] = ()) -> Incident | None:
        where, params = _scope(areas, agencies)
        row = await self._db.one(
            f"{_SELECT} WHERE reference = ? AND {where}",
            [reference, *params])
        return self._incident(row) if row else None

    async def for_subject(self, digests: Sequence[str], limit: int = 500) -> list[Incident]:
        if not digests:
            return []
        marks = ", ".join("?" * len(digests))
        rows = await self._db.all(
            f"{_SELECT} WHERE reporter_key IN ({marks}) OR phone_key IN ({marks}) "
            "ORDER BY created_at DESC LIMIT ?", [*digests, *digests, limit])
        return [self._incident(r) for r in rows]

    async def messages(self, incident_id: str) -> list[Notification]:
        rows = await self._db.all(
            "SELECT o.id, o.incident_id, o.recipient, o.kind, o.payload, o.idempotency_key, "
            "o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, k.record, "
            "k.wrapped FROM outbox o LEFT JOIN vault.data_keys k ON k.record = o.incident_id "
            "WHERE o.incident_id = ? ORDER BY o.created_at, o.id", (incident_id,))
        found, _ = opened_notifications(
            self._keys, rows, lambda r: r[11] is not None, lambda r: Notification(
                id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4], key=r[5],
                status=r[6], attempts=r[7], next_attempt_at=_dt(r[8]), last_error=r[9],
                created_at=_dt(r[10])), 12)
        return found

    async def derived(self, incident_id: str) -> analytics.Derived | None:
        row = await self._db.one(f"SELECT {', '.join(analytics.DERIVED)} FROM incidents "
                                 "WHERE id = ?", (incident_id,))
        if row is None:
            return None
        values = dict(zip(analytics.DERIVED, row, strict=True))
        for name in analytics.DERIVED_TIMES:
            values[name] = dt(values[name])
        values["synthetic"] = bool(values["synthetic"])
        return analytics.Derived(**values)

    async def scrub(self, incident_ids: Sequence[str]) -> int:
        if not incident_ids:
            return 0
        marks = ", ".join("?" * len(incident_ids))
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE incidents SET phone = NULL, phone_key = NULL, reporter_key = NULL "
                f"WHERE id IN ({marks})", list(incident_ids))
            await conn.execute(
                "UPDATE outbox SET status = 'dead', last_error = 'erased' "
                f"WHERE status = 'pending' AND incident_id IN ({marks})", list(incident_ids))
            return int(cur.rowcount)

    async def resolved_before(self, before: datetime, limit: int = 500) -> list[Incident]:
        rows = await self._db.all(
            f"{_SELECT} WHERE status IN ({', '.join('?' * len(CLOSED_STATUSES))}) "
            "AND updated_at < ? AND k.wrapped IS NOT NULL ORDER BY updated_at LIMIT ?",
            [*CLOSED_STATUSES, ts(before), limit])
        return [self._incident(r) for r in rows]

    async def record_access(self, actor: str, action: str, subject: str) -> None:
        await SQLiteAudit(self._db, self._sealer).append(
            AuditEntry(actor, action, reference=subject))


class SQLiteOutbox:
    def __init__(self, db: _Db, sealer: Sealer, keyring: Keyring | None = None):
        self._db = db
        self._sealer = sealer
        self._keys = keyring or Keyring(sealer)

    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    now: datetime) -> list[Notification]:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(
                "SELECT o.id, o.incident_id, o.recipient, o.kind, o.payload, "
                "o.idempotency_key, o.status, o.attempts, o.next_attempt_at, o.last_error, "
                "o.created_at, k.record, k.wrapped "
                "FROM outbox o LEFT JOIN vault.data_keys k ON k.record = o.incident_id "
                "WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) "
                "ORDER BY next_attempt_at LIMIT ?", (ts(now), ts(now), limit)))
            claimed, erased = opened_notifications(
                self._keys, rows, lambda r: r[11] is not None, lambda r: Notification(
                    id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4],
                    key=r[5], status=r[6], attempts=r[7] + 1, next_attempt_at=_dt(r[8]),
                    last_error=r[9], created_at=_dt(r[10])), 12)
            await conn.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
                "WHERE id = ?", [(owner, ts(now) + lease_seconds, n.id) for n in claimed])
            await conn.executemany(
                "UPDATE outbox SET status = 'dead', last_error = 'erased' WHERE id = ?",
                [(i,) for i in erased])
        return claimed

    async def for_incident(self, incident_id: str) -> list[Notification]:
        # Opened with the incident's own key; none once it is destroyed (storage/vault.py).
        rows = await self._db.all(
            "SELECT o.id, o.incident_id, o.recipient, o.kind, o.payload, o.idempotency_key, "
            "o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, o.sent_at, "
            "k.record, k.wrapped FROM outbox o LEFT JOIN vault.data_keys k "
            "ON k.record = o.incident_id WHERE o.incident_id = ? ORDER BY o.created_at, o.rowid",
            (incident_id,))
        found, _ = opened_notifications(
            self._keys, rows, lambda r: r[12] is not None, lambda r: Notification(
                id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4], key=r[5],
                status=r[6], attempts=r[7], next_attempt_at=_dt(r[8]), last_error=r[9],
                created_at=_dt(r[10]), sent_at=_dt(r[11]) if r[11] is not None else None), 13)
        return found

    async def _finish(self, sql: str, params: tuple[Any, ...]) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(sql, params)
            return bool(cur.rowcount == 1)

    async def complete(self, notification_id: str, owner: str, now: datetime) -> bool:
        return await self._finish(
            "UPDATE outbox SET status = 'sent', sent_at = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'pending'",
            (ts(now), notification_id, owner))

    async def complete_all(self, ids: Sequence[str], owner: str, now: datetime) -> list[str]:
        async with self._db.transaction() as conn:
            rows = await conn.execute_fetchall(
                "UPDATE outbox SET status = 'sent', sent_at = ?, lease_owner = NULL, "
                "lease_until = NULL WHERE id IN (SELECT value FROM json_each(?)) "
                "AND lease_owner = ? AND status = 'pending' RETURNING id",
                (ts(now), json.dumps(list(ids)), owner))
        return [r[0] for r in rows]

    async def extend(self, ids: Sequence[str], owner: str, lease_seconds: float,
                     now: datetime) -> int:
        return await self._db.execute(
            "UPDATE outbox SET lease_until = ? WHERE lease_owner = ? AND status = 'pending' "
            "AND id IN (SELECT value FROM json_each(?))",
            (ts(now) + lease_seconds, owner, json.dumps(list(ids))))

    async def retry(self, notification_id: str, owner: str, at: datetime, error: str) -> bool:
        return await self._finish(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'pending'",
            (ts(at), error[:500], notification_id, owner))

    async def bury(self, notification_id: str, owner: str, error: str) -> bool:
        return await self._finish(
            "UPDATE outbox SET status = 'dead', last_error = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ? AND lease_owner = ?",
            (error[:500], notification_id, owner))

    async def pending(self) -> int:
        row = await self._db.one("SELECT count(*) FROM outbox WHERE status = 'pending'")
        return int(row[0])

    async def forget_payloads(self, kind_prefix: str, before: datetime) -> int:
        return await self._db.execute(
            "UPDATE outbox SET payload = ?, erased_at = ? WHERE kind LIKE ? "
            "AND status != 'pending' AND created_at < ? AND erased_at IS NULL",
            (self._sealer.seal_json({}), ts(datetime.now(UTC)), kind_prefix + "%",
             ts(before)))


async def _schedule(conn: aiosqlite.Connection, timers: Sequence[Timer]) -> None:
    # A timer of the same id is replaced: due time, version and data, and its lease dropped.
    await conn.executemany(
        "INSERT OR REPLACE INTO timers VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        [(t.id, t.kind, t.subject, ts(t.due_at), t.subject_version, dump_json(t.data))
         for t in timers])


class SQLiteTimers:
    def __init__(self, db: _Db):
        self._db = db

    async def schedule(self, timer: Timer) -> None:
        async with self._db.transaction() as conn:
            await _schedule(conn, [timer])

    async def cancel(self, subject: str, kind: str | None = None) -> int:
        async with self._db.transaction() as conn:
            if kind is None:
                cur = await conn.execute("DELETE FROM timers WHERE subject = ?", (subject,))
            else:
                cur = await conn.execute("DELETE FROM timers WHERE subject = ? AND kind = ?",
                                         (subject, kind))
            return cur.rowcount

    async def claim_due(self, owner: str, now: datetime, limit: int,
                        lease_seconds: float) -> list[Timer]:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(
                "SELECT id, kind, subject, due_at, subject_version, data FROM timers "
                "WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?) "
                "ORDER BY due_at LIMIT ?", (ts(now), ts(now), limit)))
            await conn.executemany(
                "UPDATE timers SET lease_owner = ?, lease_until = ? WHERE id = ?",
                [(owner, ts(now) + lease_seconds, r[0]) for r in rows])
        return [Timer(r[0], r[1], r[2], _dt(r[3]), r[4], json.loads(r[5])) for r in rows]

    async def done(self, timer_id: str, owner: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM timers WHERE id = ? AND lease_owner = ?",
                                     (timer_id, owner))
            return bool(cur.rowcount == 1)


class SQLiteBindings:
    def __init__(self, db: _Db):
        self._db = db

    async def create_code(self, area: str, agency: str, ttl_seconds: float,
                          now: datetime) -> str:
        code = new_binding_code()
        async with self._db.transaction() as conn:
            await conn.execute("INSERT INTO binding_codes VALUES (?, ?, ?, ?, NULL)",
                               (code, area, agency, ts(now) + ttl_seconds))
        return code

    async def redeem(self, code: str, address: str, now: datetime) -> Binding | None:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE binding_codes SET used_at = ? WHERE code = ? AND used_at IS NULL "
                "AND expires_at > ? RETURNING area, agency", (ts(now), code.strip().upper(),
                                                             ts(now)))
            row = await cur.fetchone()
            if row is None:
                return None
            await conn.execute("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?)",
                               (address, row[0], row[1], ts(now)))
        return Binding(address, row[0], row[1], now)

    async def unbind(self, address: str) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM bindings WHERE address = ?", (address,))
            return cur.rowcount

    async def for_areas(self, areas: Sequence[str]) -> list[Binding]:
        if not areas:
            return []
        rows = await self._db.all(
            f"SELECT address, area, agency, bound_at FROM bindings WHERE area IN "
            f"({', '.join('?' * len(areas))}) ORDER BY bound_at", list(areas))
        return [Binding(r[0], r[1], r[2], _dt(r[3])) for r in rows]

    async def for_address(self, address: str) -> list[Binding]:
        rows = await self._db.all(
            "SELECT address, area, agency, bound_at FROM bindings WHERE address = ? "
            "ORDER BY bound_at", (address,))
        return [Binding(r[0], r[1], r[2], _dt(r[3])) for r in rows]


class SQLiteStorage:
    """The embedded store; `await SQLiteStorage.open(path, sealer)`."""

    def __init__(self, db: _Db, sealer: Sealer, path: Path):
        self.path = path
        self._db = db
        keyring = Keyring(sealer)
        self.vault = SQLiteVault(db, sealer, keyring)
        self.conversation_keys = self.vault.conversations = ConversationKeys(sealer, self.vault)
        self.sessions = SQLiteSessions(db, sealer, self.conversation_keys)
        self.incidents = SQLiteIncidents(db, sealer, keyring)
        self.cases = SQLiteCases(db, sealer, keyring)
        self.case_photos = SQLiteCasePhotos(db, keyring)
        self.outbox = SQLiteOutbox(db, sealer, keyring)
        self.timers = SQLiteTimers(db)
        self.bindings = SQLiteBindings(db)
        self.revocations = SQLiteRevocations(db, sealer)
        self.journal = SQLiteJournal(db, self.conversation_keys)
        self.locks = LocalLocks()
        self.dedupe = SQLiteDedupe(db, sealer)
        self.optouts = SQLiteOptOuts(db, sealer)
        self.transcripts = SQLiteTranscripts(db, self.conversation_keys)
        self.menus = SQLiteMenus(db, sealer)
        self.limits = SQLiteRateLimits(db, sealer)
        self.audit = SQLiteAudit(db, sealer)
        self.privacy = SqlPrivacy(db, postgres=False)
        self.exports = SqlExports(db, sealer, postgres=False)
        self.staff = SQLiteStaff(db, sealer)
        self.board = SQLiteBoardLog(db)

    @classmethod
    async def open(cls, path: Path, sealer: Sealer) -> SQLiteStorage:
        try:
            private_database(path)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from None
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA busy_timeout = 5000")
        try:
            await attach_vault(conn, path)
        except (sqlite3.Error, OSError) as exc:
            await conn.close()
            raise StorageError(f"cannot open the key vault next to {path}: {exc}") from None
        db = _Db(conn, path)
        try:
            await _migrate(db)
        except BaseException:
            await conn.close()
            raise
        return cls(db, sealer, path)

    async def ping(self) -> bool:
        try:
            return bool(await self._db.one("SELECT 1"))
        except (sqlite3.Error, ValueError):
            return False

    async def close(self) -> None:
        await self._db.conn.close()


async def _migrate(db: _Db) -> None:
    """Bring the embedded database to the code's schema (the default needs no separate step)."""
    await db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL)")
    applied = {int(r[0]) for r in await db.all("SELECT version FROM schema_migrations")}
    check_version(BACKEND, max(applied, default=0))
    # Every shipped number not recorded, lower ones too (storage/migrations: features land
    # in any order).
    for migration in missing(BACKEND, applied):
        # The migration and its record in one transaction; executescript accepts triggers,
        # whose bodies hold semicolons. Name and version come from the file name pattern.
        script = (f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                  f"INSERT INTO schema_migrations VALUES ({migration.version}, "
                  f"'{migration.name}', {datetime.now(UTC).timestamp()});\nCOMMIT;")
        async with db.lock:
            try:
                await db.conn.executescript(script)
            except sqlite3.Error as exc:
                if db.conn.in_transaction:
                    await db.conn.execute("ROLLBACK")
                raise StorageError(f"migration {migration.version}_{migration.name} "
                                   f"failed: {exc}") from None
