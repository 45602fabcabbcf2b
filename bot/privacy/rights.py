"""Data-subject rights: find, export, erase, each request tracked against its deadline.

PDPA s.30: access and a copy within 30 days; s.33 and the PDPC notice of 2024: erasure
within 90 days, copies and backups included (crypto-shredding: storage/vault.py). A refusal
is kept with its written reason (s.39 record). Every step is in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.privacy.subjects import KINDS, Digest, Held, RecordKind, Selector, Subject, resolve
from storage.audit import AuditEntry
from storage.ports import Storage
from storage.privacy import ACCESS, DONE, ERASURE, OPEN, REFUSED, SubjectRequest, new_id

DEADLINES = {ACCESS: timedelta(days=30), ERASURE: timedelta(days=90)}


class RequestError(ValueError):
    """A request that cannot be acted on (unknown, already closed, no reason given)."""


@dataclass(frozen=True, slots=True)
class Found:
    subject: Subject
    held: list[Held]


class Rights:
    """The rights of one store's subjects, acted on by `actor` (audited)."""

    def __init__(self, storage: Storage, digest: Digest, actor: str,
                 kinds: tuple[RecordKind, ...] = KINDS):
        self.storage = storage
        self.digest = digest
        self.actor = actor
        self.kinds = kinds

    async def _audit(self, action: str, subject: str, reference: str = "",
                     detail: str = "") -> None:
        await self.storage.audit.append(AuditEntry(self.actor, action, subject, reference,
                                                   detail))

    async def find(self, selector: Selector) -> Found:
        subject = await resolve(self.storage, self.digest, selector)
        held: list[Held] = []
        for kind in self.kinds:
            held += await kind.find(self.storage, subject)
        await self._audit("subject.find", subject.id, detail=f"by {selector.kind}: "
                          f"{len(held)} record(s)")
        return Found(subject, held)

    async def open_request(self, kind: str, selector: Selector, now: datetime,
                           received_at: datetime | None = None) -> SubjectRequest:
        subject = await resolve(self.storage, self.digest, selector)
        received = received_at or now
        request = SubjectRequest(new_id("R"), kind, subject.id, selector.kind, received,
                                 received + DEADLINES[kind], self.actor)
        await self.storage.privacy.add_request(request)
        await self._audit(f"request.{kind}", subject.id, detail=request.id)
        return request

    async def _request(self, request_id: str | None, kind: str, subject: Subject,
                       selector: Selector, now: datetime) -> SubjectRequest:
        if request_id is None:
            request = SubjectRequest(new_id("R"), kind, subject.id, selector.kind, now,
                                     now + DEADLINES[kind], self.actor)
            await self.storage.privacy.add_request(request)
            return request
        stored = await self.storage.privacy.request(request_id)
        if stored is None:
            raise RequestError(f"no request {request_id}")
        request = stored
        if request.status != OPEN:
            raise RequestError(f"request {request_id} is {request.status} already")
        if request.kind != kind:
            raise RequestError(f"request {request_id} is an {request.kind} request")
        if request.subject != subject.id:
            raise RequestError(f"request {request_id} is about another subject")
        return request

    async def export(self, selector: Selector, now: datetime,
                     request_id: str | None = None) -> tuple[SubjectRequest, dict[str, Any]]:
        found = await self.find(selector)
        request = await self._request(request_id, ACCESS, found.subject, selector, now)
        records = []
        for held in found.held:
            kind = next(k for k in self.kinds if k.name == held.kind)
            records.append({"kind": held.kind, "reference": held.reference,
                            "data": await kind.export(self.storage, held)})
        data = {"subject": found.subject.id, "exported_at": now.isoformat(),
                "request": request.id, "records": records}
        references = [h.reference for h in found.held]
        await self.storage.privacy.close_request(request.id, DONE, now, "", references)
        await self._audit("subject.export", found.subject.id,
                          detail=f"{request.id}: {len(records)} record(s)")
        return request, data

    async def erase(self, selector: Selector, reason: str, now: datetime,
                    request_id: str | None = None) -> tuple[SubjectRequest, int]:
        if not reason.strip():
            raise RequestError("--reason: say why (it is kept with the request)")
        found = await self.find(selector)
        request = await self._request(request_id, ERASURE, found.subject, selector, now)
        erased = 0
        for kind in self.kinds:
            mine = [h for h in found.held if h.kind == kind.name]
            if mine:
                erased += await kind.erase(self.storage, mine, now)
        references = [h.reference for h in found.held]
        await self.storage.privacy.close_request(request.id, DONE, now, reason.strip(),
                                                 references)
        for reference in references:
            await self._audit("subject.erase", found.subject.id, reference, request.id)
        await self._audit("subject.erase", found.subject.id,
                          detail=f"{request.id}: {erased} record(s)")
        return request, erased

    async def refuse(self, request_id: str, reason: str, now: datetime) -> SubjectRequest:
        if not reason.strip():
            raise RequestError("--reason: a refusal needs a written reason (PDPA s.39)")
        request = await self.storage.privacy.request(request_id)
        if request is None:
            raise RequestError(f"no request {request_id}")
        if not await self.storage.privacy.close_request(request_id, REFUSED, now,
                                                        reason.strip()):
            raise RequestError(f"request {request_id} is {request.status} already")
        await self._audit("request.refuse", request.subject, detail=request_id)
        return request
