"""The audit trail: append-only and hash-chained, on every backend.

Every row carries a keyed hash (HMAC) of the previous row's hash and its own content, so a
row edited, deleted or inserted by someone with database access breaks the chain at that row
and `verify` names it; without the key nobody can forge a matching hash. The tables refuse
UPDATE and DELETE (SQLite triggers, PostgreSQL trigger; migration 0090), so the application
itself cannot rewrite history either. Rows hold references and keyed subject ids, never
personal data: an erased subject's audit rows stay, and say nothing about them.

Rows written before the chain (migration 0090) have no hash; they are counted as legacy, and
a legacy row after the first chained row is a break.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from storage.crypto import Sealer

GENESIS = "0" * 64
# Any constant: appends take turns, so every row names the one really before it.
_APPEND_LOCK = 0x455353_415544


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened: `actor` (a staff id, `cli:<user>`), `action` (`incident.show`,
    `subject.export`, `staff.login` …), `subject` (a keyed subject id, may be empty),
    `reference` (an incident or case reference, may be empty), `detail` (no personal data)."""

    actor: str
    action: str
    subject: str = ""
    reference: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: datetime
    entry: AuditEntry
    prev: str | None
    hash: str | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of walking the chain: `broken_at` is the first bad row's seq (or None)."""

    rows: int
    legacy: int
    broken_at: int | None
    reason: str
    head: str

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def micros(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)


def now_micro() -> datetime:
    return datetime.fromtimestamp(micros(datetime.now(UTC)) / 1_000_000, UTC)


def chain_key(sealer: Sealer) -> bytes:
    return sealer.derived_key("audit-chain")


def row_hash(key: bytes, prev: str, seq: int, at: datetime, entry: AuditEntry) -> str:
    content = json.dumps([prev, seq, micros(at), entry.actor, entry.action, entry.subject,
                          entry.reference, entry.detail], ensure_ascii=False,
                         separators=(",", ":"))
    return hmac.new(key, content.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def verify(records: Iterable[AuditRecord], key: bytes) -> Verdict:
    """Walk the rows in order; the first row whose links or hash do not hold is named."""
    prev: str | None = None
    last_seq: int | None = None
    rows = legacy = 0
    for record in records:
        rows += 1
        if record.hash is None:
            if prev is None:
                legacy += 1
                last_seq = record.seq
                continue
            return Verdict(rows, legacy, record.seq, "a row without a hash inside the chain",
                           prev)
        expected_prev = GENESIS if prev is None else prev
        if prev is not None and last_seq is not None and record.seq != last_seq + 1:
            return Verdict(rows, legacy, record.seq,
                           f"rows {last_seq + 1}..{record.seq - 1} are missing", expected_prev)
        if record.prev != expected_prev:
            return Verdict(rows, legacy, record.seq,
                           "it does not link to the row before it (a row was deleted or "
                           "inserted)", expected_prev)
        good = row_hash(key, expected_prev, record.seq, record.at, record.entry)
        if not hmac.compare_digest(good.encode(), record.hash.encode()):
            return Verdict(rows, legacy, record.seq, "its content does not match its hash "
                           "(the row was edited)", expected_prev)
        prev, last_seq = record.hash, record.seq
    return Verdict(rows, legacy, None, "intact", prev or GENESIS)


_COLUMNS = "seq, at, actor, action, subject, reference, detail, prev, hash"


def _where(subject: str | None, staff: str | None, reference: str | None,
           mark: Sequence[str]) -> tuple[str, list[str]]:
    clauses, params = [], []
    for column, value in (("subject", subject), ("actor", staff), ("reference", reference)):
        if value:
            params.append(value)
            clauses.append(f"{column} = {mark[len(params) - 1]}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SQLiteAudit:
    def __init__(self, db: Any, sealer: Sealer):
        self._db = db
        self._key = chain_key(sealer)

    def _record(self, r: Sequence[Any]) -> AuditRecord:
        return AuditRecord(int(r[0]), datetime.fromtimestamp(r[1], UTC),
                           AuditEntry(r[2], r[3], r[4] or "", r[5] or "", r[6] or ""),
                           r[7], r[8])

    async def append(self, entry: AuditEntry) -> AuditRecord:
        at = now_micro()
        async with self._db.transaction() as conn:  # BEGIN IMMEDIATE: one writer at a time
            rows = list(await conn.execute_fetchall(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"))
            seq = int(rows[0][0]) + 1 if rows else 1
            prev = (rows[0][1] if rows else None) or GENESIS
            digest = row_hash(self._key, prev, seq, at, entry)
            await conn.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at.timestamp(), entry.actor, entry.action, entry.subject,
                 entry.reference, entry.detail, prev, digest))
        return AuditRecord(seq, at, entry, prev, digest)

    async def records(self, after: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        rows = await self._db.all(f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq "
                                  "LIMIT ?", (after, limit))
        return [self._record(r) for r in rows]

    async def find(self, *, subject: str | None = None, staff: str | None = None,
                   reference: str | None = None, limit: int = 200) -> list[AuditRecord]:
        where, params = _where(subject, staff, reference, ["?", "?", "?"])
        rows = await self._db.all(f"SELECT {_COLUMNS} FROM audit{where} ORDER BY seq DESC "
                                  "LIMIT ?", [*params, limit])
        return [self._record(r) for r in rows]

    async def verify(self) -> Verdict:
        return verify(await _all(self), self._key)


class PgAudit:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer):
        self._pool = pool
        self._key = chain_key(sealer)

    def _record(self, r: Sequence[Any]) -> AuditRecord:
        return AuditRecord(int(r[0]), r[1], AuditEntry(r[2], r[3], r[4] or "", r[5] or "",
                                                      r[6] or ""), r[7], r[8])

    async def append(self, entry: AuditEntry) -> AuditRecord:
        at = now_micro()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPEND_LOCK)
            last = await conn.fetchrow("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            seq = int(last[0]) + 1 if last else 1
            prev = (last[1] if last else None) or GENESIS
            digest = row_hash(self._key, prev, seq, at, entry)
            await conn.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                seq, at, entry.actor, entry.action, entry.subject, entry.reference,
                entry.detail, prev, digest)
        return AuditRecord(seq, at, entry, prev, digest)

    async def records(self, after: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM audit WHERE seq > $1 "
                                      "ORDER BY seq LIMIT $2", after, limit)
        return [self._record(r) for r in rows]

    async def find(self, *, subject: str | None = None, staff: str | None = None,
                   reference: str | None = None, limit: int = 200) -> list[AuditRecord]:
        where, params = _where(subject, staff, reference, ["$1", "$2", "$3"])
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM audit{where} ORDER BY seq "
                                      f"DESC LIMIT ${len(params) + 1}", *params, limit)
        return [self._record(r) for r in rows]

    async def verify(self) -> Verdict:
        return verify(await _all(self), self._key)


async def _all(trail: SQLiteAudit | PgAudit) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    while True:
        page = await trail.records(out[-1].seq if out else 0)
        if not page:
            return out
        out.extend(page)
