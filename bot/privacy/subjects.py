"""Data subjects, and the registry of record kinds that know where a subject's data is.

A subject is named by what a person can prove: a phone number, a LINE user id, the
reference of a report they made, or the reference of their welfare case. It resolves to
their conversation keys and the keyed digests the stores index, never to a phone number
kept anywhere in clear. Each record kind (incidents, conversations, cases: a `RecordKind` in
`KINDS`) can find, export and erase what it holds about a subject.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.case import Case, is_case_reference, normalize_case_reference
from bot.incident import Incident, normalize_reference
from bot.phone import normalize_thai_phone
from storage.cases import is_erased_case
from storage.ports import Storage
from storage.vault import is_erased

Digest = Callable[[str], str]
# Where an incident's export lists its statistics columns (storage.analytics.Derived): computed
# from what the export holds, coarse, and kept after an erasure.
DERIVED_HEADING = "derived, kept for statistics"


class SubjectError(ValueError):
    """A selector that names nobody we could look for (the message says why)."""


@dataclass(frozen=True, slots=True)
class Selector:
    """How the subject was named: `phone`, `line-user`, `reference` or `case`, and the
    value."""

    kind: str
    value: str

    @classmethod
    def parse(cls, phone: str | None, line_user: str | None,
              reference: str | None, case: str | None = None) -> Selector:
        given = [(k, v) for k, v in (("phone", phone), ("line-user", line_user),
                                     ("reference", reference), ("case", case)) if v]
        if len(given) != 1:
            raise SubjectError("name the subject with exactly one of --phone, --line-user, "
                               "--reference or --case")
        kind, value = given[0]
        value = value.strip()
        if kind == "phone":
            e164 = normalize_thai_phone(value)
            if e164 is None:
                raise SubjectError(f"--phone: not a Thai phone number: {len(value)} "
                                   "character(s) given")
            return cls(kind, e164)
        if kind == "line-user":
            if not (value.startswith("U") and len(value) == 33 and value[1:].isalnum()):
                raise SubjectError("--line-user: a LINE user id is U followed by 32 hex "
                                   "characters")
            return cls(kind, value)
        if kind == "case":
            if not is_case_reference(value):
                raise SubjectError("--case: a case reference looks like CASE-7K3F9")
            return cls(kind, normalize_case_reference(value))
        return cls(kind, normalize_reference(value))


@dataclass(frozen=True, slots=True)
class Subject:
    """A resolved subject: a stable keyed id, their conversations and look-up digests."""

    id: str
    selector: str  # the selector kind only: the value may be personal
    conversations: tuple[str, ...]
    digests: tuple[str, ...]
    cases: tuple[str, ...] = ()  # ids of the welfare cases that are about this person
    # The vault records of the conversations' own keys (storage/conversation_keys.py): the
    # keyed digest of each of `conversations`, in the same order.
    records: tuple[str, ...] = ()


def subject_id(digest: Digest, conversation: str, phone: str | None = None) -> str:
    """A stable keyed id: by the phone number when one is known (so naming a person by
    their number or by a report they made gives the same id), else by the conversation."""
    if phone is None and conversation.startswith("sms:"):
        phone = conversation[4:]
    return "S-" + digest(f"subject:{f'phone:{phone}' if phone else conversation}")[:12]


async def resolve(storage: Storage, digest: Digest, selector: Selector) -> Subject:
    """The subject a selector names; a reference resolves to the reporter of that report."""
    if selector.kind == "phone":
        conversation = f"sms:{selector.value}"
        return Subject(subject_id(digest, conversation), selector.kind, (conversation,),
                       (digest(conversation), digest(f"phone:{selector.value}")),
                       records=(digest(conversation),))
    if selector.kind == "line-user":
        conversation = f"line:{selector.value}"
        return Subject(subject_id(digest, conversation), selector.kind, (conversation,),
                       (digest(conversation),), records=(digest(conversation),))
    if selector.kind == "case":
        return await _case_subject(storage, digest, selector)
    incident = await storage.incidents.get(selector.value)
    if incident is None:
        raise SubjectError(f"no incident {selector.value}")
    if is_erased(incident):
        return Subject(subject_id(digest, f"erased:{incident.id}"), selector.kind, (), ())
    digests = [digest(incident.reporter)]
    if incident.phone:
        digests += [digest(f"phone:{incident.phone}"), digest(f"sms:{incident.phone}")]
    return Subject(subject_id(digest, incident.reporter, incident.phone), selector.kind,
                   (incident.reporter,), tuple(dict.fromkeys(digests)),
                   records=(digest(incident.reporter),))


def case_subject(case: Case) -> str:
    """The subject id of the person a case is about, for consent receipts and requests:
    bound to the case (its person has no phone or chat of their own here). The case id is
    random, so the subject id says nothing about the person."""
    return f"S-case-{case.id[:12]}"


async def _case_subject(storage: Storage, digest: Digest, selector: Selector) -> Subject:
    """The person of a case; for a case opened from a report, the reporter as well (the
    case holds what they reported), so their report is found with it."""
    case = await storage.cases.get(selector.value)
    if case is None:
        raise SubjectError(f"no case {selector.value}")
    incident = (await storage.incidents.get_by_id(case.incident_id)
                if case.incident_id else None)
    if incident is None or is_erased(incident):
        return Subject(case_subject(case), selector.kind, (), (), (case.id,))
    found = await resolve(storage, digest, Selector("reference", incident.reference))
    return Subject(found.id, selector.kind, found.conversations, found.digests, (case.id,),
                   found.records)


@dataclass(frozen=True, slots=True)
class Held:
    """One record held about a subject, named by reference (never by its content)."""

    kind: str
    reference: str
    record_id: str
    created_at: datetime | None
    summary: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class RecordKind(Protocol):
    """A kind of record that holds personal data (incident, conversation, case …)."""

    name: str

    async def find(self, storage: Storage, subject: Subject) -> list[Held]: ...

    async def export(self, storage: Storage, held: Held) -> dict[str, Any]:
        """Everything the record holds, in clear, for the subject's own copy."""

    async def erase(self, storage: Storage, held: Sequence[Held], now: datetime) -> int:
        """Make the records' personal data unreadable everywhere; how many records."""


def _incident_data(incident: Incident) -> dict[str, Any]:
    return {"reference": incident.reference, "type": incident.type,
            "status": incident.status, "channel": incident.channel,
            "created_at": incident.created_at.isoformat(), "phone": incident.phone,
            "reporter": incident.reporter, "location": incident.location.to_dict(),
            "details": incident.details, "silent": incident.silent,
            "do_not_call": incident.do_not_call, "area_codes": incident.area_codes}


class IncidentRecords:
    """Reports: found by the reporter's conversation or the phone they gave."""

    name = "incident"

    async def find(self, storage: Storage, subject: Subject) -> list[Held]:
        found = await storage.incidents.for_subject(list(subject.digests))
        return [Held(self.name, i.reference, i.id, i.created_at, f"{i.type} {i.status}")
                for i in found if not is_erased(i)]

    async def export(self, storage: Storage, held: Held) -> dict[str, Any]:
        incident = await storage.incidents.get_by_id(held.record_id)
        if incident is None:
            return {"reference": held.reference, "gone": True}
        timeline = await storage.incidents.timeline(incident.id)
        messages = await storage.incidents.messages(incident.id)
        derived = await storage.incidents.derived(incident.id)
        return _incident_data(incident) | {DERIVED_HEADING: (
            derived.to_dict() if derived is not None else {}), "timeline": [
            {"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "channel": e.channel,
             "data": e.data} for e in timeline], "messages": [
            {"at": n.created_at.isoformat(), "kind": n.kind, "recipient": n.recipient,
             "status": n.status, "payload": n.payload} for n in messages]}

    async def erase(self, storage: Storage, held: Sequence[Held], now: datetime) -> int:
        ids = [h.record_id for h in held]
        shredded = await storage.vault.shred(ids, now)
        await storage.incidents.scrub(ids)
        return shredded


class ConversationRecords:
    """The live conversation state: a session's answers, a web chat's transcript, journal
    entries not yet handled; all sealed with the conversation's own data key, which an erase
    destroys before it deletes them (so a backup taken before holds them unreadable)."""

    name = "conversation"

    async def find(self, storage: Storage, subject: Subject) -> list[Held]:
        held = []
        named = dict(zip(subject.conversations, subject.records, strict=True))
        # And the conversations the subject reported from (a report found by the phone
        # given in it): the vault names each report's subject by its conversation's digest.
        reports = [i for i in await storage.incidents.for_subject(list(subject.digests))
                   if not is_erased(i)] if subject.digests else []
        by_id = {i.id: i.reporter for i in reports}
        for status in await storage.vault.status(list(by_id)):
            if status.subject is not None:
                named.setdefault(by_id[status.record], status.subject)
        live = {k.record for k in await storage.vault.status(list(named.values())) if k.live}
        for conversation, record in named.items():
            loaded = await storage.sessions.load(conversation, "privacy:find")
            transcript = await storage.transcripts.after(conversation, 0)
            if loaded.session is None and not transcript and record not in live:
                continue
            parts = [name for name, there in (("session", loaded.session is not None),
                                              ("transcript", bool(transcript))) if there]
            held.append(Held(self.name, conversation.split(":", 1)[0] + " conversation",
                             conversation,
                             loaded.session.updated_at if loaded.session else None,
                             " + ".join(parts) or "conversation key",
                             {"conversation": conversation, "record": record}))
        return held

    async def export(self, storage: Storage, held: Held) -> dict[str, Any]:
        loaded = await storage.sessions.load(held.record_id, "privacy:export")
        session = loaded.session
        return {"conversation": held.record_id,
                "session": session.to_dict() if session is not None else None,
                "transcript": [{"seq": e.seq, "message": e.body.decode("utf-8", "replace")}
                               for e in await storage.transcripts.after(held.record_id, 0)]}

    async def erase(self, storage: Storage, held: Sequence[Held], now: datetime) -> int:
        # The keys first: if the deletes below fail, nothing of it opens anywhere already.
        shredded = await storage.vault.shred(
            [h.extra["record"] for h in held if "record" in h.extra], now)
        count = 0
        for h in held:
            count += min(1, await storage.sessions.erase(h.record_id)
                         + await storage.transcripts.erase(h.record_id))
        return max(count, shredded)


def _case_data(case: Case) -> dict[str, Any]:
    return {"reference": case.reference, "status": case.status, "area": case.area,
            "channel": case.channel, "flags": case.flags,
            "created_at": case.created_at.isoformat(), **case.sealed_body()}


class CaseRecords:
    """Welfare cases: the one named by `--case`, and the cases opened from the subject's
    reports. Sealed with their own data keys, erased by destroying them."""

    name = "case"

    async def find(self, storage: Storage, subject: Subject) -> list[Held]:
        found: dict[str, Case] = {}
        for case_id in subject.cases:
            case = await storage.cases.get_by_id(case_id)
            if case is not None:
                found[case.id] = case
        if subject.digests:
            for incident in await storage.incidents.for_subject(list(subject.digests)):
                for case in await storage.cases.for_incident(incident.id):
                    found[case.id] = case
        return [Held(self.name, c.reference, c.id, c.created_at, f"case {c.status}")
                for c in found.values() if not is_erased_case(c)]

    async def export(self, storage: Storage, held: Held) -> dict[str, Any]:
        case = await storage.cases.get_by_id(held.record_id)
        if case is None:
            return {"reference": held.reference, "gone": True}
        consents = await storage.privacy.consents(case_subject(case))
        photos = [await storage.case_photos.get(case.id, p.id)
                  for p in await storage.case_photos.listed(case.id)]
        return _case_data(case) | {
            "photos": [{"at": p.at.isoformat(), "type": p.content_type, "size": p.size,
                        "base64": base64.b64encode(p.data).decode("ascii")}
                       for p in photos if p is not None],
            "timeline": [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor,
                          "channel": e.channel, "data": e.data}
                         for e in await storage.cases.timeline(case.id)],
            "consent_receipts": [{"at": e.at.isoformat(), "kind": e.kind,
                                  "purposes": list(e.purposes), "channel": e.channel,
                                  "words": e.text, "version": e.catalog_version,
                                  "reason": e.reason} for e in consents]}

    async def erase(self, storage: Storage, held: Sequence[Held], now: datetime) -> int:
        ids = [h.record_id for h in held]
        shredded = await storage.vault.shred(ids, now)
        await storage.cases.scrub(ids)
        await storage.case_photos.drop(ids)  # unreadable already: the key is gone
        return shredded


# The rights commands go through this tuple only.
KINDS: tuple[RecordKind, ...] = (IncidentRecords(), ConversationRecords(), CaseRecords())
