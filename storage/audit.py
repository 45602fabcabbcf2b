"""The audit trail: append-only and hash-chained, on every backend.

Every row carries a keyed hash (HMAC) of the previous row's hash and its own content, so a
row edited, deleted or inserted by someone with database access breaks the chain at that row
and `verify` names it; without the key nobody can forge a matching hash. The tables refuse
UPDATE and DELETE (SQLite triggers, PostgreSQL trigger; migration 0090), so the application
itself cannot rewrite history either. Rows hold references and keyed subject ids, never
personal data: an erased subject's audit rows stay, and say nothing about them.

Rows written before the chain (migration 0090) have no hash; they are counted as legacy, and
a legacy row after the first chained row is a break.

The chain alone cannot tell its last rows were removed: what is left is a shorter valid chain.
So every append also moves an **anchor** kept outside the audited table — PostgreSQL: the one
row of `audit_head`, which a trigger lets only move forward (migration 0186); SQLite: the
0600 file `<database>.audit-head` next to the database, rewritten only forward under a lock
— and logs the new head (`audit.head`: its seq and hash, nothing personal), so a copy exists
where a database user cannot reach. `verify` checks the chain's end against the anchor, and
against any head noted elsewhere (`ess audit verify --head SEQ:HASH`).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from storage.crypto import Sealer

log = structlog.get_logger(__name__)

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
class Head:
    """Where the chain ended at some moment: row `seq` had `hash` (a noted-down head may give
    only the hash's first 16 or more hex digits, as `ess audit verify` prints it)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


_HEAD = re.compile(r"(\d{1,18}):([0-9a-f]{16,64})")


def parse_head(text: str) -> Head:
    """`SEQ:HASH` as `ess audit verify` prints it; ValueError saying what is expected."""
    found = _HEAD.fullmatch(text.strip().lower())
    if found is None or int(found.group(1)) < 1:
        raise ValueError("expected SEQ:HASH, a row number and 16 to 64 hex digits of its "
                         "hash (e.g. 42:3f9a0c…)")
    return Head(int(found.group(1)), found.group(2))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of walking the chain: `broken_at` is the first bad row's seq (or None);
    `head_seq` the last row's seq; `anchored` the highest anchor row checked (0: none)."""

    rows: int
    legacy: int
    broken_at: int | None
    reason: str
    head: str
    head_seq: int = 0
    anchored: int = 0

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


def verify(records: Iterable[AuditRecord], key: bytes, anchors: Sequence[Head] = ()
           ) -> Verdict:
    """Walk the rows in order; the first row whose links or hash do not hold is named; then
    the end is checked against each anchor (a head the chain reached once)."""
    hashes: dict[int, str] = {}
    walked = _walk(records, key, hashes)
    if not walked.intact:
        return walked
    last = max(hashes, default=0)
    for anchor in sorted(anchors, key=lambda a: a.seq, reverse=True):
        if anchor.seq < 1:
            return Verdict(walked.rows, walked.legacy, last + 1, "the chain's anchor is "
                           "unreadable: its end cannot be checked", walked.head, last)
        if anchor.seq > last:
            tail = (f"row {anchor.seq}" if anchor.seq == last + 1
                    else f"rows {last + 1}…{anchor.seq}")
            return Verdict(walked.rows, walked.legacy, last + 1,
                           f"{tail} missing: the chain ends at row "
                           f"{last} but reached row {anchor.seq} (anchor {anchor})",
                           walked.head, last)
        held = hashes.get(anchor.seq)
        if held is None or not hmac.compare_digest(held[:len(anchor.hash)].encode(),
                                                   anchor.hash.encode()):
            return Verdict(walked.rows, walked.legacy, anchor.seq,
                           "it is not the row the chain's anchor recorded (the rows from "
                           "here on were replaced)", walked.head, last)
    return Verdict(walked.rows, walked.legacy, None, "intact", walked.head, last,
                   max((a.seq for a in anchors), default=0))


def _walk(records: Iterable[AuditRecord], key: bytes, hashes: dict[int, str]) -> Verdict:
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
        hashes[record.seq] = record.hash
    return Verdict(rows, legacy, None, "intact", prev or GENESIS, last_seq or 0)


_COLUMNS = "seq, at, actor, action, subject, reference, detail, prev, hash"


def _where(subject: str | None, staff: str | None, reference: str | None,
           mark: Sequence[str]) -> tuple[str, list[str]]:
    clauses, params = [], []
    for column, value in (("subject", subject), ("actor", staff), ("reference", reference)):
        if value:
            params.append(value)
            clauses.append(f"{column} = {mark[len(params) - 1]}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def head_file(database: Path) -> Path:
    return database.with_name(database.name + ".audit-head")


def _advance_file(path: Path, head: Head) -> bool:
    """Write `head` into the anchor file unless it already holds a later row; the read and
    the write under one exclusive lock (every process appending to this database)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = _parse_file(os.read(fd, 256))
        if held is not None and held.seq >= head.seq:
            return False
        line = f"{head}\n".encode()
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, line)
        os.ftruncate(fd, len(line))
        os.fsync(fd)
        return True
    finally:
        os.close(fd)  # releases the lock


def _parse_file(raw: bytes) -> Head | None:
    text = raw.decode("ascii", "replace").strip()
    if not text:
        return None
    try:
        return parse_head(text)
    except ValueError:
        return Head(0, "")  # unreadable: every row is past it; verify says so


def _read_file(path: Path) -> Head | None:
    try:
        return _parse_file(path.read_bytes())
    except FileNotFoundError:
        return None


def _moved(record: AuditRecord, moved: bool) -> None:
    if moved:
        log.info("audit.head", seq=record.seq, head=record.hash)
    else:  # the table is behind its anchor: its last rows were removed
        log.warning("audit.head_behind", seq=record.seq, head=record.hash)


class SQLiteAudit:
    def __init__(self, db: Any, sealer: Sealer):
        self._db = db
        self._key = chain_key(sealer)
        path: Path | None = getattr(db, "path", None)
        self._head = head_file(path) if path is not None else None

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
        record = AuditRecord(seq, at, entry, prev, digest)
        if self._head is not None:
            # After the commit: a crash in between leaves the anchor one row behind (never
            # ahead of rows that were not written).
            _moved(record, await asyncio.to_thread(_advance_file, self._head,
                                                   Head(seq, digest)))
        return record

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

    async def anchor(self) -> Head | None:
        """The head the anchor file holds (None: nothing appended since it exists)."""
        return None if self._head is None else await asyncio.to_thread(_read_file, self._head)

    async def verify(self, heads: Sequence[Head] = ()) -> Verdict:
        anchor = await self.anchor()
        return verify(await _all(self), self._key, [*heads, *([anchor] if anchor else [])])


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
            # In the same transaction; only forward (the trigger of 0186 refuses the rest).
            status = await conn.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) "
                "DO UPDATE SET seq = excluded.seq, hash = excluded.hash "
                "WHERE audit_head.seq < excluded.seq", seq, digest)
        record = AuditRecord(seq, at, entry, prev, digest)
        _moved(record, status.endswith(" 1"))
        return record

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

    async def anchor(self) -> Head | None:
        row = await self._pool.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
        return None if row is None else Head(int(row[0]), str(row[1]))

    async def verify(self, heads: Sequence[Head] = ()) -> Verdict:
        anchor = await self.anchor()
        return verify(await _all(self), self._key, [*heads, *([anchor] if anchor else [])])


async def _all(trail: SQLiteAudit | PgAudit) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    while True:
        page = await trail.records(out[-1].seq if out else 0)
        if not page:
            return out
        out.extend(page)
