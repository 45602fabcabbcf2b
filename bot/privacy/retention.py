"""Retention enforced: what processing.yaml says is kept N days is erased after N days.

Incidents: `personal_after_resolution_days` after they were closed, their data key is
destroyed (phone, exact pin, answers, relay texts: every copy); the clear columns stay for
statistics. Cases: `personal_after_resolution_days` of kind `case` after they were closed,
the same (their key; their duplicate-detection hashes; their photos), and their photos of
documents already `photos_after_resolution_days` after closing. Relay messages:
`relay_messages_days` after they were sent, their payload is emptied in the live store
(copies become unreadable when the record's key goes). Run by the sweeper; idempotent (a
destroyed key is not destroyed twice); the clock is injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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


def _days(processing: Processing, kind: str, name: str) -> int | None:
    found = processing.kinds.get(kind)
    return found.days(name) if found else None


async def due(storage: Storage, processing: Processing, now: datetime,
              within: timedelta) -> list[Due]:
    """What retention will erase between now and `now + within`, soonest first."""
    found: list[Due] = []
    days = _days(processing, "incident", "personal_after_resolution_days")
    if days is not None:
        keep = timedelta(days=days)
        found += [Due("incident", i.reference, i.id, max(now, i.updated_at + keep),
                      "phone, exact location, answers, relay messages")
                  for i in await storage.incidents.resolved_before(now + within - keep,
                                                                   limit=10_000)]
    days = _days(processing, "case", "personal_after_resolution_days")
    if days is not None:
        keep = timedelta(days=days)
        found += [Due("case", c.reference, c.id, max(now, c.updated_at + keep),
                      "the person, household, Thai IDs, place, needs, consent")
                  for c in await storage.cases.closed_before(now + within - keep,
                                                             limit=10_000)]
    found += await _photos_due(storage, processing, now, within)
    return sorted(found, key=lambda d: d.erase_at)


async def _photos_due(storage: Storage, processing: Processing, now: datetime,
                      within: timedelta) -> list[Due]:
    days = _days(processing, "case", "photos_after_resolution_days")
    if days is None:
        return []
    keep = timedelta(days=days)
    return [Due("case photos", c.reference, c.id, max(now, c.updated_at + keep),
                f"{len(photos)} photo(s) of documents")
            for c in await storage.cases.closed_before(now + within - keep, limit=10_000)
            if (photos := await storage.case_photos.listed(c.id))]


async def _photos(storage: Storage, processing: Processing, now: datetime) -> int:
    """Photos of documents of cases closed `photos_after_resolution_days` ago: removed
    (the case itself stays until its own period)."""
    days = _days(processing, "case", "photos_after_resolution_days")
    if days is None:
        return 0
    dropped = 0
    for case in await storage.cases.closed_before(now - timedelta(days=days), limit=10_000):
        count = await storage.case_photos.drop([case.id])
        if count:
            dropped += count
            await storage.audit.append(AuditEntry(
                ACTOR, "retention.photos", reference=case.reference,
                detail=f"{count} photo(s), {days} days after closing"))
    return dropped


async def run(storage: Storage, processing: Processing, now: datetime) -> int:
    """Erase what is due now; how many records and messages were erased."""
    erased = 0
    days = _days(processing, "incident", "personal_after_resolution_days")
    if days is not None:
        while True:
            batch = await storage.incidents.resolved_before(now - timedelta(days=days))
            if not batch:
                break
            ids = [i.id for i in batch]
            erased += await storage.vault.shred(ids, now)
            await storage.incidents.scrub(ids)
            for incident in batch:
                await storage.audit.append(AuditEntry(
                    ACTOR, "retention.erase", reference=incident.reference,
                    detail=f"{days} days after resolution"))
    days = _days(processing, "case", "personal_after_resolution_days")
    if days is not None:
        while True:
            cases = await storage.cases.closed_before(now - timedelta(days=days))
            if not cases:
                break
            ids = [c.id for c in cases]
            erased += await storage.vault.shred(ids, now)
            await storage.cases.scrub(ids)
            await storage.case_photos.drop(ids)
            for case in cases:
                await storage.audit.append(AuditEntry(
                    ACTOR, "retention.erase", reference=case.reference,
                    detail=f"{days} days after closing"))
    erased += await _photos(storage, processing, now)
    relay = _days(processing, "incident", "relay_messages_days")
    if relay is not None:
        emptied = await storage.outbox.forget_payloads(RELAY_KINDS, now - timedelta(days=relay))
        if emptied:
            await storage.audit.append(AuditEntry(ACTOR, "retention.relay",
                                                  detail=f"{emptied} message(s)"))
        erased += emptied
    return erased
