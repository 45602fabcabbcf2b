"""The breach workflow: PDPA s.37(4) gives 72 hours from becoming aware to notify the PDPC.

`open_breach` lists what the breach covers (the records whose data keys a leaked service
key wraps, or the records written since a moment), by reference and subject count only,
and drafts the notice to the regulator for the officer to complete.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.privacy.processing import Processing
from storage.audit import AuditEntry
from storage.cases import KIND_CASE
from storage.ports import Storage
from storage.privacy import Breach, new_id
from storage.vault import KIND_CONVERSATION

NOTIFY_WITHIN = timedelta(hours=72)


async def affected(storage: Storage, *, key_ids: list[str] | None = None,
                   since: datetime | None = None) -> tuple[list[str], int]:
    """The references of the records the breach covers, and how many subjects (counted in
    memory only: the draft names records, never people)."""
    references: list[str] = []
    subjects: set[str] = set()
    if key_ids:
        for status in await storage.vault.wrapped_by(key_ids):
            if status.kind == KIND_CASE:
                case = await storage.cases.get_by_id(status.record)
                if case is not None:
                    references.append(case.reference)
                    subjects.add(case.id)  # a case is about its own person
                continue
            if status.kind == KIND_CONVERSATION:
                # Live state (session, transcript, journal): its subject, no reference.
                subjects.add(status.subject or status.record)
                continue
            incident = await storage.incidents.get_by_id(status.record)
            if incident is not None:
                references.append(incident.reference)
            if status.subject:
                subjects.add(status.subject)
    if since is not None:
        for incident in await storage.incidents.recent(100_000):
            if incident.created_at >= since:
                references.append(incident.reference)
                subjects.add(incident.id if incident.reporter.startswith("erased:")
                             else incident.reporter)
        for case in await storage.cases.recent(100_000):
            if case.created_at >= since:
                references.append(case.reference)
                subjects.add(case.id)
    return sorted(set(references)), len(subjects)


def notice(breach_id: str, opened_at: datetime, deadline: datetime, scope: dict[str, Any],
           references: list[str], subjects: int, processing: Processing,
           description: str) -> str:
    c = processing.controller
    kinds = sorted({d for k in processing.kinds.values() if k.name == "incident"
                    for d in k.data})
    return "\n".join([
        f"# Personal data breach notification (draft) — {breach_id}", "",
        "To: the Personal Data Protection Committee (PDPC), under PDPA s.37(4)", "",
        f"- Controller: {c.get('name', '')}; contact: {c.get('contact', '')}",
        f"- Became aware: {opened_at.isoformat()}",
        f"- Notify by: {deadline.isoformat()} (72 hours)",
        f"- Scope: {', '.join(f'{k}={v}' for k, v in scope.items())}",
        f"- What happened: {description or '(to be completed)'}",
        f"- Records affected: {len(references)}; data subjects affected: about {subjects}",
        f"- Categories of data: {'; '.join(kinds) or '(to be completed)'}",
        "- Sensitive data (s.26): yes (reports may reveal violence, health, children)",
        "- Likely consequences: risk to the safety of reporters and of people in danger "
        "(to be assessed)",
        "- Measures taken: personal fields are sealed per record (AES-GCM); the affected "
        "service key is to be rotated (`ess keys rewrap`) and removed; "
        "(further measures to be completed)",
        "- Data subjects informed: (yes/no, when; required when the risk is high)", "",
        "## Records affected (references)", "",
        *[f"- {r}" for r in references], ""])


async def open_breach(storage: Storage, processing: Processing, actor: str, now: datetime,
                      *, key_ids: list[str] | None = None, since: datetime | None = None,
                      description: str = "") -> Breach:
    references, subjects = await affected(storage, key_ids=key_ids, since=since)
    scope: dict[str, Any] = {}
    if key_ids:
        scope["keys"] = ",".join(key_ids)
    if since is not None:
        scope["since"] = since.isoformat()
    breach_id = new_id("B")
    deadline = now + NOTIFY_WITHIN
    breach = Breach(breach_id, now, deadline, scope, (), tuple(references),
                    notice(breach_id, now, deadline, scope, references, subjects,
                           processing, description), actor)
    await storage.privacy.add_breach(breach)
    await storage.audit.append(AuditEntry(actor, "breach.open", detail=f"{breach_id}: "
                                          f"{len(references)} record(s)"))
    return breach
