"""The PDPA ledger: data-subject requests, consent receipts and breaches, on every backend.

Requests keep their legal deadline and how they ended (a refusal keeps its written reason:
PDPA s.30/s.39). Consent events are append-only (a revocation is a new row, never an edit;
triggers refuse UPDATE/DELETE). Nothing here holds a phone number or message text: subjects
are keyed ids, records are references.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ACCESS, ERASURE = "access", "erasure"
OPEN, DONE, REFUSED = "open", "done", "refused"
GIVEN, REVOKED, OVERRIDE = "given", "revoked", "override"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, slots=True)
class SubjectRequest:
    id: str
    kind: str  # access | erasure
    subject: str  # keyed subject id
    selector: str  # how the subject was named (phone, line-user, reference), not the value
    received_at: datetime
    due_at: datetime
    actor: str
    status: str = OPEN
    closed_at: datetime | None = None
    reason: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """A consent given or revoked, or a supervisor's override of the consent gate.

    `catalog_key`/`catalog_version`/`text`: the words the person was shown (the catalog
    text and its version), so the receipt proves what was agreed to."""

    id: str
    kind: str  # given | revoked | override
    subject: str
    purposes: tuple[str, ...]
    channel: str
    actor: str
    at: datetime
    catalog_key: str = ""
    catalog_version: str = ""
    text: str = ""
    reference: str = ""  # the case (or incident) it concerns
    reason: str = ""  # an override's written reason


@dataclass(frozen=True, slots=True)
class Breach:
    id: str
    opened_at: datetime
    deadline: datetime
    scope: dict[str, Any]
    subjects: tuple[str, ...]
    references: tuple[str, ...]
    notice: str
    actor: str
    extra: dict[str, Any] = field(default_factory=dict)


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _at(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class _Sql:
    """The same statements on both backends: `?` marks, numbered for PostgreSQL."""

    def __init__(self, db: Any, postgres: bool):
        self._db = db
        self._pg = postgres

    def _sql(self, sql: str) -> str:
        if not self._pg:
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "")
                       for i, p in enumerate(parts))

    async def run(self, sql: str, params: Sequence[Any]) -> int:
        if self._pg:
            status = await self._db.execute(self._sql(sql), *params)
            return int(status.rsplit(" ", 1)[-1])
        return int(await self._db.execute(sql, params))

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._pg:
            return list(await self._db.fetch(self._sql(sql), *params))
        return list(await self._db.all(sql, params))


_REQUEST = ("id, kind, subject, selector, received_at, due_at, actor, status, closed_at, "
            "reason, refs")
_CONSENT = ("id, kind, subject, purposes, channel, actor, at, catalog_key, catalog_version, "
            "text, reference, reason")
_BREACH = "id, opened_at, deadline, scope, subjects, refs, notice, actor"


class SqlPrivacy:
    """The ledger over SQLite (`_Db`) or PostgreSQL (a pool)."""

    def __init__(self, db: Any, postgres: bool):
        self._q = _Sql(db, postgres)

    async def add_request(self, r: SubjectRequest) -> None:
        await self._q.run(f"INSERT INTO subject_requests ({_REQUEST}) VALUES "
                          "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (r.id, r.kind, r.subject, r.selector, _ts(r.received_at),
                           _ts(r.due_at), r.actor, r.status, _ts(r.closed_at), r.reason,
                           json.dumps(list(r.references))))

    async def close_request(self, request_id: str, status: str, at: datetime, reason: str,
                            references: Sequence[str] = ()) -> bool:
        """Close an open request (done or refused); False when none is open by that id."""
        return await self._q.run(
            "UPDATE subject_requests SET status = ?, closed_at = ?, reason = ?, refs = ? "
            "WHERE id = ? AND status = 'open'",
            (status, _ts(at), reason, json.dumps(list(references)), request_id)) == 1

    async def request(self, request_id: str) -> SubjectRequest | None:
        rows = await self._q.rows(f"SELECT {_REQUEST} FROM subject_requests WHERE id = ?",
                                  (request_id,))
        return _request(rows[0]) if rows else None

    async def requests(self, *, open_only: bool = True) -> list[SubjectRequest]:
        where = "WHERE status = 'open' " if open_only else ""
        rows = await self._q.rows(f"SELECT {_REQUEST} FROM subject_requests {where}"
                                  "ORDER BY due_at")
        return [_request(r) for r in rows]

    async def add_consent(self, e: ConsentEvent) -> None:
        await self._q.run(f"INSERT INTO consent_events ({_CONSENT}) VALUES "
                          "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (e.id, e.kind, e.subject, json.dumps(list(e.purposes)), e.channel,
                           e.actor, _ts(e.at), e.catalog_key, e.catalog_version, e.text,
                           e.reference, e.reason))

    async def consents(self, subject: str) -> list[ConsentEvent]:
        rows = await self._q.rows(f"SELECT {_CONSENT} FROM consent_events WHERE subject = ? "
                                  "ORDER BY seq", (subject,))
        return [ConsentEvent(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], _at(r[6]),
                             r[7], r[8], r[9], r[10], r[11]) for r in rows]

    async def add_breach(self, b: Breach) -> None:
        await self._q.run(f"INSERT INTO breaches ({_BREACH}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (b.id, _ts(b.opened_at), _ts(b.deadline), json.dumps(b.scope),
                           json.dumps(list(b.subjects)), json.dumps(list(b.references)),
                           b.notice, b.actor))

    async def breaches(self) -> list[Breach]:
        rows = await self._q.rows(f"SELECT {_BREACH} FROM breaches ORDER BY opened_at DESC")
        return [Breach(r[0], _at(r[1]), _at(r[2]), json.loads(r[3]), tuple(json.loads(r[4])),
                       tuple(json.loads(r[5])), r[6], r[7]) for r in rows]


def _request(r: Any) -> SubjectRequest:
    return SubjectRequest(r[0], r[1], r[2], r[3], _at(r[4]), _at(r[5]), r[6], r[7], _dt(r[8]),
                          r[9] or "", tuple(json.loads(r[10] or "[]")))
