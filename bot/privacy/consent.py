"""Consent receipts and the referral gate (for cases, issue 13).

A receipt records who consented, to which purposes, when, through which channel and in what
words (the catalog key, its version and the text shown). A revocation is a new event, never
an edit (the table refuses UPDATE/DELETE). `may_refer` is the gate a referral passes: it is
allowed with a live consent to the purpose, or with a supervisor's recorded override (a
written reason, audited) when the person cannot consent (vital interest, PDPA s.26(1)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.audit import AuditEntry
from storage.ports import Storage
from storage.privacy import GIVEN, OVERRIDE, REVOKED, ConsentEvent, new_id


class ConsentError(ValueError):
    """A consent event that cannot be recorded as given (no purpose, no reason …)."""


@dataclass(frozen=True, slots=True)
class Gate:
    allowed: bool
    why: str  # "consent", "override", "no consent", "revoked"
    event: ConsentEvent | None = None


class Consents:
    def __init__(self, storage: Storage):
        self.storage = storage

    async def give(self, subject: str, purposes: list[str], channel: str, actor: str,
                   at: datetime, *, catalog_key: str, catalog_version: str, text: str,
                   reference: str = "") -> ConsentEvent:
        if not purposes or not all(p.strip() for p in purposes):
            raise ConsentError("a consent names at least one purpose")
        if not (catalog_key and catalog_version and text.strip()):
            raise ConsentError("a consent keeps the words shown: catalog key, version, text")
        event = ConsentEvent(new_id("C"), GIVEN, subject, tuple(purposes), channel, actor, at,
                             catalog_key, catalog_version, text, reference)
        await self.storage.privacy.add_consent(event)
        await self.storage.audit.append(AuditEntry(actor, "consent.give", subject, reference,
                                                   ",".join(purposes)))
        return event

    async def revoke(self, subject: str, purposes: list[str], channel: str, actor: str,
                     at: datetime, reference: str = "") -> ConsentEvent:
        event = ConsentEvent(new_id("C"), REVOKED, subject, tuple(purposes), channel, actor,
                             at, reference=reference)
        await self.storage.privacy.add_consent(event)
        await self.storage.audit.append(AuditEntry(actor, "consent.revoke", subject,
                                                   reference, ",".join(purposes)))
        return event

    async def override(self, subject: str, purpose: str, supervisor: str, reason: str,
                       at: datetime, reference: str) -> ConsentEvent:
        """A supervisor lets one referral through without consent, saying why."""
        if not reason.strip():
            raise ConsentError("an override needs the supervisor's written reason")
        event = ConsentEvent(new_id("C"), OVERRIDE, subject, (purpose,), "board", supervisor,
                             at, reference=reference, reason=reason.strip())
        await self.storage.privacy.add_consent(event)
        await self.storage.audit.append(AuditEntry(supervisor, "consent.override", subject,
                                                   reference, purpose))
        return event

    async def may_refer(self, subject: str, purpose: str, reference: str = "") -> Gate:
        """May this subject's case be referred for `purpose`? The latest word wins: a
        consent given and not revoked since, or an override for this very case."""
        state = Gate(False, "no consent")
        for event in await self.storage.privacy.consents(subject):
            if purpose not in event.purposes:
                continue
            if event.kind == GIVEN:
                state = Gate(True, "consent", event)
            elif event.kind == REVOKED:
                state = Gate(False, "revoked", event)
            elif event.kind == OVERRIDE and event.reference == reference and reference:
                state = Gate(True, "override", event)
        return state
