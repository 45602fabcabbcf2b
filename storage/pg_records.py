"""PostgreSQL incidents, outbox, timers and responder bindings (see storage/postgres.py).

Outbox and timer claims use `FOR UPDATE SKIP LOCKED` plus a lease: two dispatchers never
take the same row (the second skips what the first has locked, and a leased row is not due
for anyone else), and a crashed dispatcher's rows come back when its lease runs out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bot.incident import (
    Incident,
    Notification,
    TimelineEvent,
    dispatched_agencies,
    new_binding_code,
    new_reference,
)
from bot.staff import NATIONAL
from bot.text import dump_json
from storage import analytics, count_rollups, rollups
from storage.audit import AuditEntry, PgAudit
from storage.crypto import CLEAR_DETAILS, Sealer, seal_fields
from storage.ports import Binding, Milestone, StaleSession, StorageError, Timer
from storage.vault import (
    CLOSED_STATUSES,
    KIND_INCIDENT,
    Keyring,
    incident_from,
    kept_details,
    open_details,
    opened_notifications,
    phone_key,
)


def changed(status: str) -> int:
    """Rows changed, from a command tag such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])


_COLUMNS = ("id, reference, source_event, type, status, channel, reporter, lang, silent, "
            "do_not_call, drill, phone, location, location_source, area_codes, details, "
            "version, created_at, updated_at, synthetic")

# Outbox rows travel as parallel arrays: one statement inserts any number of them.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, incident_id, recipient, kind, payload, idempotency_key, status, "
    "attempts, next_attempt_at, last_error, created_at, sent_at) "
    "SELECT n.id, i.id, n.recipient, n.kind, n.payload, n.key, n.status, n.attempts, "
    "n.next_at, n.error, n.created, n.sent FROM {source} AS i, "
    "unnest(${a}::text[], ${b}::bytea[], ${c}::text[], ${d}::bytea[], ${e}::text[], "
    "${f}::text[], ${g}::int[], ${h}::timestamptz[], ${i}::text[], ${j}::timestamptz[], "
    "${k}::timestamptz[]) AS n(id, recipient, kind, payload, key, status, attempts, next_at, "
    "error, created, sent)"
)


def _outbox_sql(source: str, first: int) -> str:
    names = "abcdefghijk"
    return _OUTBOX_INSERT.format(source=source, **{n: first + k for k, n in enumerate(names)})


def _timers_sql(source: str, first: int) -> str:
    """Timers as six parallel arrays, scheduled (replacing one of the same id, its lease
    dropped) only when `source` returned a row."""
    a, b, c, d, e, f = range(first, first + 6)
    return (f"INSERT INTO timers (id, kind, subject, due_at, subject_version, data) "
            f"SELECT t.id, t.kind, t.subject, t.due_at, t.v, t.data::jsonb FROM {source}, "
            f"unnest(${a}::text[], ${b}::text[], ${c}::text[], ${d}::timestamptz[], "
            f"${e}::bigint[], ${f}::text[]) AS t(id, kind, subject, due_at, v, data) "
            "ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, subject = EXCLUDED.subject, "
            "due_at = EXCLUDED.due_at, subject_version = EXCLUDED.subject_version, "
            "data = EXCLUDED.data, lease_owner = NULL, lease_until = NULL")


def _timer_arrays(timers: Sequence[Timer]) -> list[list[Any]]:
    return [[t.id for t in timers], [t.kind for t in timers], [t.subject for t in timers],
            [t.due_at for t in timers], [t.subject_version for t in timers],
            [dump_json(t.data) for t in timers]]


_NAMES = [c.strip() for c in _COLUMNS.split(",")]
# Every read takes the record's wrapped data key in the same statement (storage/vault.py).
_SELECT = (f"SELECT {', '.join('i.' + c for c in _NAMES)}, k.record, k.wrapped "
           "FROM incidents i LEFT JOIN vault.data_keys k ON k.record = i.id")


class PgIncidents:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, keyring: Keyring | None = None):
        self._pool = pool
        self._sealer = sealer
        self._keys = keyring or Keyring(sealer)

    def _notification_arrays(self, own: Sealer,
                             notifications: Sequence[Notification]) -> list[list[Any]]:
        return [
            [n.id for n in notifications],
            [own.seal_text(n.recipient) for n in notifications],
            [n.kind for n in notifications],
            [own.seal_json(n.payload) for n in notifications],
            [n.key for n in notifications],
            [n.status for n in notifications],
            [n.attempts for n in notifications],
            [n.next_attempt_at for n in notifications],
            [n.last_error for n in notifications],
            [n.created_at for n in notifications],
            [n.sent_at for n in notifications],
        ]

    def _incident(self, row: Sequence[Any]) -> Incident:
        n = len(_NAMES)
        data = dict(zip(_NAMES, row[:n], strict=True))
        data["area_codes"] = json.loads(data["area_codes"])
        return incident_from(data, self._keys.opened(row[0], row[n] is not None, row[n + 1]))

    async def _own(self, incident_id: str) -> Sealer:
        own = self._keys.cached(incident_id)
        if own is not None:
            return own
        row = await self._pool.fetchrow(
            "SELECT record, wrapped FROM vault.data_keys WHERE record = $1", incident_id)
        return self._keys.for_write(incident_id, row is not None, row[1] if row else None)

    async def create(self, incident: Incident, notifications: Sequence[Notification],
                     event: TimelineEvent, timers: Sequence[Timer] = ()) -> Incident:
        # One statement: the incident, its first event and its outbox rows commit together;
        # a repeated source event inserts nothing and we return the first incident instead.
        sql = (
            f"WITH ins AS (INSERT INTO incidents ({_COLUMNS}, reporter_key, phone_key, "
            "province, district, station, cell, local_day, local_week, local_month, "
            "hour_of_week, agencies) "
            f"VALUES ({', '.join(f'${k}' for k in range(1, 20))}, $43, $42, $53, "
            "$44, $45, $46, $47, $48, $49, $50, $51, $54::text[]) "
            "ON CONFLICT (source_event) DO NOTHING RETURNING id), "
            "dk AS (INSERT INTO vault.data_keys (record, kind, subject, wrapped, made_at) "
            f"SELECT id, '{KIND_INCIDENT}', $42, $52, $18 FROM ins), "
            "tl AS (INSERT INTO timeline (incident_id, at, kind, actor, channel, data) "
            "SELECT id, $20, $21, $22, $23, $24 FROM ins), "
            f"ob AS ({_outbox_sql('ins', 25)}), "
            f"tm AS ({_timers_sql('ins', 36)}), "
            # The report counts in its day's and month's rollups (storage/rollups.py), in
            # key order.
            f"ru AS (INSERT INTO {rollups.TABLE} (local_day, province, agency, level, "
            "synthetic, drill, reports) SELECT v.d, v.p, v.a, v.l, $43, $11, 1 FROM ins, "
            "(VALUES (1, substr($48, 1, 7), '*', '-', '-'), "
            "(2, substr($48, 1, 7), coalesce($44, '-'), '*', '*'), (3, $48, '*', '-', '-'), "
            "(4, $48, coalesce($44, '-'), '*', '*')) AS v(o, d, p, a, l) "
            f"ORDER BY v.o ON CONFLICT ({', '.join(rollups.KEYS)}) "
            f"DO UPDATE SET reports = {rollups.TABLE}.reports + 1 RETURNING 1), "
            f"rd AS (INSERT INTO {rollups.DISTRICT_TABLE} (local_day, province, district, "
            "synthetic, drill, reports) SELECT v.d, coalesce($44, '-'), coalesce($45, '-'), "
            "$43, $11, 1 FROM ins, (SELECT count(*) FROM ru) z, "
            "(VALUES (1, substr($48, 1, 7)), (2, $48)) AS v(o, d) ORDER BY v.o "
            f"ON CONFLICT ({', '.join(rollups.DISTRICT_KEYS)}) "
            f"DO UPDATE SET reports = {rollups.DISTRICT_TABLE}.reports + 1 RETURNING 1), "
            # ... and in the count rollups (storage/count_rollups.py), after those.
            f"rc AS ({count_rollups.create_cte(55, '$43', '$11', 'ins', 'rd')}) "
            "SELECT count(*) FROM ins")
        for n in notifications:
            n.incident_id = incident.id
        own, wrapped = self._keys.create(incident.id)
        count_keys = [list(column) for column in zip(*count_rollups.incident_keys(incident),
                                                     strict=True)]
        for _ in range(8):
            row = (
                incident.id, incident.reference, incident.source_event, incident.type,
                incident.status, incident.channel,
                own.seal_text(incident.reporter), incident.lang, incident.silent,
                incident.do_not_call, incident.drill,
                own.seal_text(incident.phone) if incident.phone else None,
                own.seal_json(incident.location.to_dict()),
                incident.location.source.value, json.dumps(incident.area_codes),
                seal_fields(own, incident.details, CLEAR_DETAILS), incident.version,
                incident.created_at, incident.updated_at)
            try:
                inserted = await self._pool.fetchval(
                    sql, *row, event.at, event.kind, event.actor, event.channel,
                    seal_fields(own, event.data),
                    *self._notification_arrays(own, notifications),
                    *_timer_arrays(timers),
                    self._sealer.digest(incident.reporter), incident.synthetic,
                    *analytics.area_columns(incident), analytics.cell_of(incident),
                    *analytics.local_columns(incident.created_at), wrapped,
                    phone_key(self._sealer, incident), dispatched_agencies(incident.details),
                    *count_keys)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "incidents_reference_key":
                    raise
                incident.reference = new_reference()  # the rare collision: draw again
                continue
            if inserted:
                return incident
            existing = await self._one("source_event", incident.source_event)
            if existing is None:  # deleted in between: cannot happen without retention
                raise StorageError("incident vanished during an idempotent create")
            return existing
        raise StorageError("could not find a free incident reference")

    async def _one(self, column: str, value: Any) -> Incident | None:
        row = await self._pool.fetchrow(f"{_SELECT} WHERE i.{column} = $1", value)
        return self._incident(row) if row else None

    async def get(self, reference: str) -> Incident | None:
        return await self._one("reference", reference)

    async def get_by_id(self, incident_id: str) -> Incident | None:
        return await self._one("id", incident_id)

    async def for_reporter(self, reporter: str, since: datetime,
                           limit: int = 20) -> list[Incident]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE i.reporter_key = $1 AND i.created_at >= $2 "
            "ORDER BY i.created_at DESC LIMIT $3", self._sealer.digest(reporter), since, limit)
        return [self._incident(r) for r in rows]

    async def recent(self, limit: int = 50, *, include_drills: bool = True) -> list[Incident]:
        where = "" if include_drills else "WHERE NOT i.drill"
        rows = await self._pool.fetch(
            f"{_SELECT} {where} ORDER BY i.created_at DESC LIMIT $1",
            limit)
        return [self._incident(r) for r in rows]

    async def update(self, incident: Incident, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Incident:
        for n in notifications:
            n.incident_id = incident.id
        own = await self._own(incident.id)
        # The analytics columns change in the same statement: a milestone is never lost.
        marks = analytics.milestone_marks(incident, event)
        sets = "".join(f", {column} = coalesce({column}, ${25 + k})"
                       for k, column in enumerate(marks))
        changed = set(marks)  # every column the SET items below write, for the rollups
        if event.kind == "escalated":
            sets += ", escalations = escalations + 1"
            changed.add("escalations")
        if "on_scene_at" in marks:  # en_route_at is the row's value before this statement
            sets += (f", {analytics.ETA_OVER} = coalesce({analytics.ETA_OVER}, "
                     "extract(epoch FROM $6 - en_route_at) - eta_minutes * 60)")
            changed.add(analytics.ETA_OVER)
        # An event that moves a rollup figure (storage/rollups.py) takes the row's facts
        # before and after, and the rollups change in the same statement: only the columns
        # that the facts it changes can move.
        moved = rollups.moved_columns(changed)
        moves = bool(moved)
        # The dispatched agencies, indexed for the staff's scope (in_areas): the parameter
        # after the milestones (set on every update; it moves no rollup figure).
        sets += f", agencies = ${25 + len(marks)}::text[]"
        tm = 26 + len(marks)  # the timers' arrays follow
        facts = ", ".join(rollups.FACTS)
        sql = (
            # The status before the write, for the count rollups (storage/count_rollups.py).
            "WITH so AS (SELECT local_day, province, status, synthetic, drill FROM incidents "
            "WHERE id = $7 AND version = $8), "
            + (f"old AS (SELECT {facts} FROM incidents WHERE id = $7 AND version = $8), "
               if moves else "")
            + "u AS (UPDATE incidents SET status = $1, phone = $2, do_not_call = $3, "
            f"area_codes = $4, details = $5, version = version + 1, updated_at = $6, "
            f"phone_key = $24{sets} WHERE id = $7 AND version = $8 RETURNING id"
            f"{', ' + facts if moves else ''}), "
            "tl AS (INSERT INTO timeline (incident_id, at, kind, actor, channel, data) "
            "SELECT id, $6, $9, $10, $11, $12 FROM u), "
            f"ob AS ({_outbox_sql('u', 13)}), "
            f"tm AS ({_timers_sql('u', tm)}) "
            + (f", c AS (SELECT -1 AS sign, {', '.join('o.' + f for f in rollups.FACTS)} "
               f"FROM old o, u UNION ALL SELECT 1, {facts} FROM u), "
               f"{rollups.moved_ctes('c', moved)} " if moves else "")
            + f", sc AS ({count_rollups.status_cte('so', '$1', 'u', 'rd' if moves else None)}) "
            + "SELECT count(*) FROM u")
        args = (
            incident.status,
            own.seal_text(incident.phone) if incident.phone else None,
            incident.do_not_call, json.dumps(incident.area_codes),
            seal_fields(own, kept_details(incident.details), CLEAR_DETAILS), event.at,
            incident.id, incident.version, event.kind, event.actor, event.channel,
            seal_fields(own, event.data),
            *self._notification_arrays(own, notifications),
            phone_key(self._sealer, incident), *marks.values(),
            dispatched_agencies(incident.details), *_timer_arrays(timers))
        count = await self._pool.fetchval(sql, *args)
        if count != 1:
            raise StaleSession(incident.reference)
        incident.version += 1
        incident.updated_at = event.at
        return incident

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        rows = await self._pool.fetch(
            "SELECT t.kind, t.actor, t.channel, t.at, t.data, k.record, k.wrapped "
            "FROM timeline t LEFT JOIN vault.data_keys k ON k.record = t.incident_id "
            "WHERE t.incident_id = $1 ORDER BY t.seq", incident_id)
        if not rows:
            return []
        own = self._keys.opened(incident_id, rows[0][5] is not None, rows[0][6])
        return [TimelineEvent(r[0], r[1], r[2], r[3], open_details(own, r[4], frozenset()))
                for r in rows]

    async def milestones(self, since: datetime, kinds: Sequence[str]) -> list[Milestone]:
        rows = await self._pool.fetch(
            "SELECT i.id, i.created_at, i.area_codes, t.kind, min(t.at) FROM incidents i "
            "LEFT JOIN timeline t ON t.incident_id = i.id AND t.kind = ANY($1::text[]) "
            "WHERE i.created_at >= $2 AND NOT i.drill AND NOT i.synthetic GROUP BY i.id, t.kind",
            list(kinds), since)
        return [Milestone(r[0], r[1], tuple(json.loads(r[2])), r[3],
                          r[4] if r[3] is not None else None) for r in rows]

    async def counts(self, query: analytics.Query,
                     dims: Sequence[str]) -> list[analytics.CountRow]:
        async def fetch(sql: str, params: list[Any]) -> list[Any]:
            return list(await self._pool.fetch(sql, *params))

        return await count_rollups.counts("postgres", fetch, query, dims, lambda d: d)

    async def responses(self, query: analytics.Query, dims: Sequence[str],
                        now: datetime) -> list[analytics.ResponseRow]:
        async def fetch(sql: str, params: list[Any]) -> list[Any]:
            return list(await self._pool.fetch(sql, *params))

        return await rollups.responses("postgres", fetch, query, dims, now, lambda d: d)
    async def in_areas(self, areas: Sequence[str], *, agencies: Sequence[str] = (),
                       exclude_status: Sequence[str] = (), limit: int = 300) -> list[Incident]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE ($1 OR (i.area_codes ?| $2::text[] AND "
            "(cardinality($5::text[]) = 0 OR i.agencies && $5::text[]))) "
            "AND NOT (i.status = ANY($3::text[])) ORDER BY i.created_at DESC LIMIT $4",
            NATIONAL in areas, list(areas), list(exclude_status), limit, list(agencies))
        return [self._incident(r) for r in rows]

    async def get_in(self, reference: str, areas: Sequence[str],
                     agencies: Sequence[str] = ()) -> Incident | None:
        row = await self._pool.fetchrow(
            f"{_SELECT} WHERE i.reference = $1 "
            "AND ($2 OR (i.area_codes ?| $3::text[] AND "
            "(cardinality($4::text[]) = 0 OR i.agencies && $4::text[])))",
            reference, NATIONAL in areas, list(areas), list(agencies))
        return self._incident(row) if row else None

    async def for_subject(self, digests: Sequence[str], limit: int = 500) -> list[Incident]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE i.reporter_key = ANY($1::text[]) OR i.phone_key = ANY($1::text[]) "
            "ORDER BY i.created_at DESC LIMIT $2", list(digests), limit)
        return [self._incident(r) for r in rows]

    async def messages(self, incident_id: str) -> list[Notification]:
        rows = await self._pool.fetch(
            "SELECT o.id, o.incident_id, o.recipient, o.kind, o.payload, o.idempotency_key, "
            "o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, k.record, "
            "k.wrapped FROM outbox o LEFT JOIN vault.data_keys k ON k.record = o.incident_id "
            "WHERE o.incident_id = $1 ORDER BY o.created_at, o.id", incident_id)
        found, _ = opened_notifications(
            self._keys, list(rows), lambda r: r[11] is not None, lambda r: Notification(
                id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4], key=r[5],
                status=r[6], attempts=r[7], next_attempt_at=r[8], last_error=r[9],
                created_at=r[10]), 12)
        return found

    async def derived(self, incident_id: str) -> analytics.Derived | None:
        row = await self._pool.fetchrow(f"SELECT {', '.join(analytics.DERIVED)} FROM incidents "
                                        "WHERE id = $1", incident_id)
        return None if row is None else analytics.Derived(**dict(row))

    async def scrub(self, incident_ids: Sequence[str]) -> int:
        return int(await self._pool.fetchval(
            "WITH u AS (UPDATE incidents SET phone = NULL, phone_key = NULL, "
            "reporter_key = NULL WHERE id = ANY($1::text[]) RETURNING id), "
            "o AS (UPDATE outbox SET status = 'dead', last_error = 'erased' "
            "WHERE status = 'pending' AND incident_id = ANY($1::text[])) "
            "SELECT count(*) FROM u", list(incident_ids)))

    async def resolved_before(self, before: datetime, limit: int = 500) -> list[Incident]:
        rows = await self._pool.fetch(
            f"{_SELECT} WHERE i.status = ANY($1::text[]) AND i.updated_at < $2 "
            "AND k.wrapped IS NOT NULL ORDER BY i.updated_at LIMIT $3",
            list(CLOSED_STATUSES), before, limit)
        return [self._incident(r) for r in rows]

    async def record_access(self, actor: str, action: str, subject: str) -> None:
        await PgAudit(self._pool, self._sealer).append(
            AuditEntry(actor, action, reference=subject))


class PgOutbox:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, keyring: Keyring | None = None):
        self._pool = pool
        self._sealer = sealer
        self._keys = keyring or Keyring(sealer)

    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    now: datetime) -> list[Notification]:
        rows = await self._pool.fetch(
            "UPDATE outbox o SET lease_owner = $1, lease_until = $2, attempts = o.attempts + 1 "
            "FROM (SELECT id, incident_id FROM outbox WHERE status = 'pending' "
            "AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3) "
            "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE OF outbox SKIP LOCKED) AS due "
            "LEFT JOIN vault.data_keys k ON k.record = due.incident_id WHERE o.id = due.id "
            "RETURNING o.id, o.incident_id, o.recipient, o.kind, o.payload, o.idempotency_key, "
            "o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, k.record, "
            "k.wrapped",
            owner, now + timedelta(seconds=lease_seconds), now, limit)
        claimed, erased = opened_notifications(
            self._keys, list(rows), lambda r: r[11] is not None, lambda r: Notification(
                id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4],
                key=r[5], status=r[6], attempts=r[7], next_attempt_at=r[8], last_error=r[9],
                created_at=r[10]), 12)
        if erased:  # their key is destroyed: they can never be delivered
            await self._pool.execute(
                "UPDATE outbox SET status = 'dead', last_error = 'erased', lease_owner = NULL, "
                "lease_until = NULL WHERE id = ANY($1::text[])", erased)
        return sorted(claimed, key=lambda n: n.next_attempt_at)

    async def for_incident(self, incident_id: str) -> list[Notification]:
        # Opened with the incident's own key; none once it is destroyed (storage/vault.py).
        rows = await self._pool.fetch(
            "SELECT o.id, o.incident_id, o.recipient, o.kind, o.payload, o.idempotency_key, "
            "o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, o.sent_at, "
            "k.record, k.wrapped FROM outbox o LEFT JOIN vault.data_keys k "
            "ON k.record = o.incident_id WHERE o.incident_id = $1 ORDER BY o.created_at, o.id",
            incident_id)
        found, _ = opened_notifications(
            self._keys, list(rows), lambda r: r[12] is not None, lambda r: Notification(
                id=r[0], incident_id=r[1], recipient=r[2], kind=r[3], payload=r[4], key=r[5],
                status=r[6], attempts=r[7], next_attempt_at=r[8], last_error=r[9],
                created_at=r[10], sent_at=r[11]), 13)
        return found

    async def _finish(self, sql: str, *args: Any) -> bool:
        return changed(await self._pool.execute(sql, *args)) == 1

    async def complete(self, notification_id: str, owner: str, now: datetime) -> bool:
        return await self._finish(
            "UPDATE outbox SET status = 'sent', sent_at = $1, lease_owner = NULL, "
            "lease_until = NULL WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
            now, notification_id, owner)

    async def complete_all(self, ids: Sequence[str], owner: str, now: datetime) -> list[str]:
        rows = await self._pool.fetch(
            "UPDATE outbox SET status = 'sent', sent_at = $1, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ANY($2::text[]) AND lease_owner = $3 "
            "AND status = 'pending' RETURNING id", now, list(ids), owner)
        return [r[0] for r in rows]

    async def extend(self, ids: Sequence[str], owner: str, lease_seconds: float,
                     now: datetime) -> int:
        return changed(await self._pool.execute(
            "UPDATE outbox SET lease_until = $1 WHERE lease_owner = $2 AND status = 'pending' "
            "AND id = ANY($3::text[])", now + timedelta(seconds=lease_seconds), owner,
            list(ids)))

    async def retry(self, notification_id: str, owner: str, at: datetime, error: str) -> bool:
        return await self._finish(
            "UPDATE outbox SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, "
            "lease_until = NULL WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
            at, error[:500], notification_id, owner)

    async def bury(self, notification_id: str, owner: str, error: str) -> bool:
        return await self._finish(
            "UPDATE outbox SET status = 'dead', last_error = $1, lease_owner = NULL, "
            "lease_until = NULL WHERE id = $2 AND lease_owner = $3",
            error[:500], notification_id, owner)

    async def pending(self) -> int:
        return int(await self._pool.fetchval(
            "SELECT count(*) FROM outbox WHERE status = 'pending'"))

    async def forget_payloads(self, kind_prefix: str, before: datetime) -> int:
        return changed(await self._pool.execute(
            "UPDATE outbox SET payload = $1, erased_at = now() WHERE kind LIKE $2 "
            "AND status != 'pending' AND created_at < $3 AND erased_at IS NULL",
            self._sealer.seal_json({}), kind_prefix + "%", before))


class PgTimers:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def schedule(self, timer: Timer) -> None:
        await self._pool.execute(
            "INSERT INTO timers VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) "
            "ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, subject = EXCLUDED.subject, "
            "due_at = EXCLUDED.due_at, subject_version = EXCLUDED.subject_version, "
            "data = EXCLUDED.data, lease_owner = NULL, lease_until = NULL",
            timer.id, timer.kind, timer.subject, timer.due_at, timer.subject_version,
            dump_json(timer.data))

    async def cancel(self, subject: str, kind: str | None = None) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM timers WHERE subject = $1 AND ($2::text IS NULL OR kind = $2)",
            subject, kind))

    async def claim_due(self, owner: str, now: datetime, limit: int,
                        lease_seconds: float) -> list[Timer]:
        rows = await self._pool.fetch(
            "UPDATE timers t SET lease_owner = $1, lease_until = $2 FROM (SELECT id FROM timers "
            "WHERE due_at <= $3 AND (lease_until IS NULL OR lease_until < $3) ORDER BY due_at "
            "LIMIT $4 FOR UPDATE SKIP LOCKED) AS due WHERE t.id = due.id "
            "RETURNING t.id, t.kind, t.subject, t.due_at, t.subject_version, t.data",
            owner, now + timedelta(seconds=lease_seconds), now, limit)
        timers = [Timer(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
        return sorted(timers, key=lambda t: t.due_at)

    async def done(self, timer_id: str, owner: str) -> bool:
        return changed(await self._pool.execute(
            "DELETE FROM timers WHERE id = $1 AND lease_owner = $2", timer_id, owner)) == 1


class PgBindings:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def create_code(self, area: str, agency: str, ttl_seconds: float,
                          now: datetime) -> str:
        code = new_binding_code()
        await self._pool.execute(
            "INSERT INTO binding_codes VALUES ($1, $2, $3, $4, NULL)",
            code, area, agency, now + timedelta(seconds=ttl_seconds))
        return code

    async def redeem(self, code: str, address: str, now: datetime) -> Binding | None:
        # One statement: the code is spent and the binding made together, or neither.
        row = await self._pool.fetchrow(
            "WITH c AS (UPDATE binding_codes SET used_at = $1 WHERE code = $2 "
            "AND used_at IS NULL AND expires_at > $1 RETURNING area, agency), "
            "b AS (INSERT INTO bindings SELECT $3, area, agency, $1 FROM c "
            "ON CONFLICT (address, area, agency) DO UPDATE SET bound_at = EXCLUDED.bound_at) "
            "SELECT area, agency FROM c", now, code.strip().upper(), address)
        return Binding(address, row[0], row[1], now) if row else None

    async def unbind(self, address: str) -> int:
        return changed(await self._pool.execute(
            "DELETE FROM bindings WHERE address = $1", address))

    async def for_areas(self, areas: Sequence[str]) -> list[Binding]:
        if not areas:
            return []
        rows = await self._pool.fetch(
            "SELECT address, area, agency, bound_at FROM bindings WHERE area = ANY($1::text[]) "
            "ORDER BY bound_at", list(areas))
        return [Binding(*r) for r in rows]

    async def for_address(self, address: str) -> list[Binding]:
        rows = await self._pool.fetch(
            "SELECT address, area, agency, bound_at FROM bindings WHERE address = $1 "
            "ORDER BY bound_at", address)
        return [Binding(*r) for r in rows]
