"""Retention enforced: what processing.yaml says is kept N days is erased after N days.

Incidents: `personal_after_resolution_days` after they were closed, their data key is
destroyed (phone, exact pin, answers, relay texts: every copy); the clear columns stay for
statistics. Cases: `personal_after_resolution_days` of kind `case` after they were closed,
the same (their key; their duplicate-detection hashes; their photos), and their photos of
documents already `photos_after_resolution_days` after closing (the case key stays: the
rows go). Relay messages:
`relay_messages_days` after they were sent, their payload is emptied in the live store
(copies become unreadable when the record's key goes). Run by the sweeper; idempotent (a
destroyed key is not destroyed twice); the clock is injected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.privacy.processing import Processing
from storage.audit import AuditEntry
from storage.ports import Storage

RELAY_KINDS = "relay."
ACTOR = "system:retention"


@dataclass(frozen=True, slots=True)
class Due:
    kind: str
    reference: str
    record_id: str
    erase_at: datetime
    what: str


class _Record(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class _Kind:
    """A record kind whose personal fields go N days after it was closed."""

    name: str
    what: str       # what the board says will be erased
    closed: str     # the audit detail: "N days after <closed>"
    closed_before: Callable[[Storage, datetime, int], Awaitable[Sequence[_Record]]]
    scrub: Callable[[Storage, list[str]], Awaitable[None]]


async def _incidents_before(storage: Storage, at: datetime, limit: int) -> Sequence[_Record]:
    return await storage.incidents.resolved_before(at, limit=limit)


async def _cases_before(storage: Storage, at: datetime, limit: int) -> Sequence[_Record]:
    return await storage.cases.closed_before(at, limit=limit)


async def _scrub_incidents(storage: Storage, ids: list[str]) -> None:
    await storage.incidents.scrub(ids)


async def _scrub_cases(storage: Storage, ids: list[str]) -> None:
    await storage.cases.scrub(ids)
    await storage.case_photos.drop(ids)  # unreadable already: the key is gone


# One row per kind; adding a kind of record kept until it is closed is one more row.
KINDS = (
    _Kind("incident", "phone, exact location, answers, relay messages", "resolution",
          _incidents_before, _scrub_incidents),
    _Kind("case", "the person, household, Thai IDs, place, needs, consent", "closing",
          _cases_before, _scrub_cases),
)
PERSONAL_DAYS = "personal_after_resolution_days"
BATCH = 500
LISTED = 10_000


def _days(processing: Processing, kind: str, name: str) -> int | None:
    found = processing.kinds.get(kind)
    return found.days(name) if found else None


async def due(storage: Storage, processing: Processing, now: datetime,
              within: timedelta) -> list[Due]:
    """What retention will erase between now and `now + within`, soonest first."""
    found: list[Due] = []
    for kind in KINDS:
        days = _days(processing, kind.name, PERSONAL_DAYS)
        if days is None:
            continue
        keep = timedelta(days=days)
        found += [Due(kind.name, r.reference, r.id, max(now, r.updated_at + keep), kind.what)
                  for r in await kind.closed_before(storage, now + within - keep, LISTED)]
    found += await _photos_due(storage, processing, now, within)
    return sorted(found, key=lambda d: d.erase_at)


# Photos of documents go before their case: not a row of KINDS, whose rows destroy the key.
PHOTO_DAYS = "photos_after_resolution_days"


async def _photos_due(storage: Storage, processing: Processing, now: datetime,
                      within: timedelta) -> list[Due]:
    days = _days(processing, "case", PHOTO_DAYS)
    if days is None:
        return []
    keep = timedelta(days=days)
    closed = await storage.cases.closed_before(now + within - keep, limit=LISTED)
    held = await storage.case_photos.counts([c.id for c in closed])  # one query, not one each
    return [Due("case photos", c.reference, c.id, max(now, c.updated_at + keep),
                f"{held[c.id]} photo(s) of documents") for c in closed if c.id in held]


async def _photos(storage: Storage, processing: Processing, now: datetime) -> int:
    """Photos of documents of cases closed `photos_after_resolution_days` ago: removed
    (the case itself stays until its own period)."""
    days = _days(processing, "case", PHOTO_DAYS)
    if days is None:
        return 0
    closed = await storage.cases.closed_before(now - timedelta(days=days), limit=LISTED)
    # Most closed cases had their photos removed by an earlier sweep: ask once which still
    # hold any, rather than one DELETE per closed case on every sweep.
    held = await storage.case_photos.counts([c.id for c in closed])
    if not held:
        return 0
    dropped = await storage.case_photos.drop(list(held))
    for case in closed:
        if case.id in held:
            await storage.audit.append(AuditEntry(
                ACTOR, "retention.photos", reference=case.reference,
                detail=f"{held[case.id]} photo(s), {days} days after closing"))
    return dropped


async def run(storage: Storage, processing: Processing, now: datetime) -> int:
    """Erase what is due now; how many records and messages were erased."""
    erased = 0
    for kind in KINDS:
        days = _days(processing, kind.name, PERSONAL_DAYS)
        if days is None:
            continue
        # Each batch is scrubbed before the next is read, so the loop ends.
        while batch := await kind.closed_before(storage, now - timedelta(days=days), BATCH):
            ids = [r.id for r in batch]
            erased += await storage.vault.shred(ids, now)
            await kind.scrub(storage, ids)
            for record in batch:
                await storage.audit.append(AuditEntry(
                    ACTOR, "retention.erase", reference=record.reference,
                    detail=f"{days} days after {kind.closed}"))
    erased += await _photos(storage, processing, now)
    relay = _days(processing, "incident", "relay_messages_days")
    if relay is not None:
        emptied = await storage.outbox.forget_payloads(RELAY_KINDS, now - timedelta(days=relay))
        if emptied:
            await storage.audit.append(AuditEntry(ACTOR, "retention.relay",
                                                  detail=f"{emptied} message(s)"))
        erased += emptied
    return erased
