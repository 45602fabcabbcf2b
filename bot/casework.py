"""Welfare cases from the field: open one from the volunteer flow, move it, follow it.

The case service sits beside `bot.reports` (the incident side): it builds a `Case` from a
volunteer's answers, flags a Zero Dropout child and possible duplicates (never merging),
tells the area's social-welfare office (and its education-side group for a child out of
school) through the outbox in the same transaction, moves the case and its referrals along
`routing.case_lifecycle`, tells the volunteer at every change, and reminds the case officer
when a referral's follow-up is due (a durable timer, like escalation).

Consent (PDPA): the person's consent given in the volunteer flow is recorded as a receipt
in the consent store (`bot.privacy.consent`: the words shown and their version); a referral
passes the `may_refer` gate, so a case without a live consent (vital interest, a case
opened from a report, a consent revoked) is referred only after a supervisor records an
override with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.case import (
    DUPLICATE,
    SCHOOLING,
    ZERO_DROPOUT,
    Case,
    Consent,
    Person,
    Referral,
    new_case_reference,
    normalize_case_reference,
)
from bot.case_photos import register_case_photo_actions
from bot.i18n import Catalogs
from bot.incident import Incident, Notification, TimelineEvent
from bot.privacy.consent import ConsentError, Consents
from bot.privacy.subjects import case_subject
from bot.types import Location, Text
from flows.actions import ActionContext, ActionRegistry, ActionResult
from routing import case_lifecycle as cl
from routing.agencies import EDUCATION, WELFARE
from routing.directory import Directory
from routing.messages import message
from storage.ports import StaleSession, Storage, Timer

log = structlog.get_logger(__name__)

KIND_CASE_NEW = "case.new"  # to the area's office (and education group): a new case
KIND_CASE_UPDATE = "case.update"  # to the volunteer: what changed
KIND_CASE_REMINDER = "case.reminder"  # to the office: a follow-up is overdue
TIMER_FOLLOW_UP = "case_follow_up"
DUPLICATE_WINDOW = timedelta(days=90)
FOLLOW_UP = timedelta(days=14)
CONSENT_TEXT = "case.consent.prompt"
CONSENT_VERSION = "case.consent.version"
# What a case's consent covers (the words of `case.consent.prompt`), and what a referral needs.
PURPOSE_RECORD = "case.record"
PURPOSE_REFERRAL = "case.referral"
CONSENT_PURPOSES = (PURPOSE_RECORD, PURPOSE_REFERRAL)
NO_CONSENT = "no consent: a supervisor must record an override with a reason"
# What the volunteer is told, per trigger (catalog `case.update.<trigger>`).
TOLD = frozenset({"assess", "refer", "accept", "reject", "start_service", "close", "reopen",
                  "referral_accept", "referral_reject", "referral_done", "referral_revoke"})


@dataclass(frozen=True)
class Changed:
    """What `Casework.move` did: the case, or why not (`error` is a catalog-free word)."""

    case: Case | None
    error: str = ""


def province(area: str) -> str:
    """A district code (`6501`) or a province code (`65`) to its province code."""
    return area[:2]


class Casework:
    """The case side of the service; built by the composition root."""

    def __init__(self, storage: Storage, directory: Directory, catalogs: Catalogs,
                 clock: Callable[[], datetime],
                 screen: Callable[[Case], list[dict[str, Any]]] | None = None):
        self.storage = storage
        self.directory = directory
        self.catalogs = catalogs
        self.clock = clock
        self.screen = screen

    # -- routing ----------------------------------------------------------------------------

    def offices(self, case: Case) -> list[tuple[str, str]]:
        """(address, agency) of who is told of a new case: the province's social-welfare
        office, and its education-side group when a child is out of school or at risk."""
        wanted = {WELFARE} | ({EDUCATION} if ZERO_DROPOUT in case.flags else set())
        found = [(address, g.agency) for g in self.directory.groups_for([province(case.area)])
                 if g.agency in wanted for address in g.addresses]
        return list(dict.fromkeys(found))

    def _tell_offices(self, case: Case, key: str) -> list[Notification]:
        return [Notification(address, KIND_CASE_NEW, message(key, {
            "reference": case.reference, "area": case.area,
            "hardships": ", ".join(case.hardships),
            "flags": ", ".join(case.flags) or "-"}, "th")) for address, _ in self.offices(case)]

    def _tell_volunteer(self, case: Case, trigger: str, **params: Any) -> list[Notification]:
        if trigger not in TOLD or not case.volunteer:
            return []
        return [Notification(case.volunteer, KIND_CASE_UPDATE, message(
            f"case.update.{trigger}", {"reference": case.reference, **params}, case.lang))]

    # -- opening ----------------------------------------------------------------------------

    async def open(self, case: Case, actor: str) -> Case:
        """Store a new case with its flags, screening and who must be told, at once."""
        if set(case.hardships) & SCHOOLING and ZERO_DROPOUT not in case.flags:
            case.flags.append(ZERO_DROPOUT)
        if self.screen is not None:
            case.screening = self.screen(case)
        duplicates = await self.storage.cases.possible_duplicates(
            case, self.clock() - DUPLICATE_WINDOW)
        if duplicates and DUPLICATE not in case.flags:
            case.flags.append(DUPLICATE)
        event = TimelineEvent("opened", actor, case.channel, self.clock(), {
            "flags": list(case.flags), "duplicates": duplicates,
            "incident": case.incident_id or "",
            "offices": [agency for _, agency in self.offices(case)]})
        stored = await self.storage.cases.create(case, event, self._tell_offices(case,
                                                                                 "case.office"))
        await self._receipt(stored, actor)
        log.info("case.opened", reference=stored.reference, area=stored.area,
                 flags=stored.flags, duplicates=len(duplicates))
        return stored

    async def _receipt(self, case: Case, actor: str) -> None:
        """The consent receipt of a new case, once (a redelivered report finds it)."""
        consent = case.consent
        if consent is None or consent.ground != "consent":
            return  # vital interest: no consent to record; referrals need an override
        subject = case_subject(case)
        if await self.storage.privacy.consents(subject):
            return
        await Consents(self.storage).give(
            subject, list(CONSENT_PURPOSES), case.channel, actor, consent.at,
            catalog_key=consent.text_key, catalog_version=consent.version,
            text=consent.text, reference=case.reference)

    async def override_consent(self, reference: str, supervisor: str, reason: str) -> Changed:
        """A supervisor lets this case be referred without consent, saying why (audited;
        PDPA s.24(2)/s.26(1): vital interest)."""
        case = await self.storage.cases.get(normalize_case_reference(reference))
        if case is None:
            return Changed(None, "unknown")
        try:
            await Consents(self.storage).override(case_subject(case), PURPOSE_REFERRAL,
                                                  supervisor, reason, self.clock(),
                                                  case.reference)
        except ConsentError as exc:
            return Changed(case, str(exc))
        return Changed(case)

    async def from_incident(self, incident: Incident, actor: str, channel: str) -> Case:
        """A responder's "refer to a welfare case": a case linked to the incident, and the
        link on both timelines. Idempotent per incident."""
        existing = await self.storage.cases.for_incident(incident.id)
        if existing:
            return existing[0]
        case = Case(reference=new_case_reference(), volunteer="", channel=channel,
                    lang=incident.lang, area=(incident.area_codes or ["TH"])[0],
                    location=incident.location, person=Person(), hardships=["violence"]
                    if incident.type == "threat" else [], incident_id=incident.id,
                    source_event=f"incident:{incident.id}")
        stored = await self.open(case, actor)
        for _ in range(3):
            fresh = await self.storage.incidents.get_by_id(incident.id)
            if fresh is None:
                break
            try:
                await self.storage.incidents.update(fresh, TimelineEvent(
                    "case_opened", actor, channel, self.clock(),
                    {"case": stored.reference}))
                break
            except StaleSession:
                continue
        return stored

    # -- changes ----------------------------------------------------------------------------

    async def move(self, reference: str, trigger: str, actor: str, *, reason: str = "",
                   supervisor: bool = False, channel: str = "cli") -> Changed:
        """Move a case by a lifecycle trigger; the volunteer is told in the same commit."""
        for _ in range(3):
            case = await self.storage.cases.get(normalize_case_reference(reference))
            if case is None:
                return Changed(None, "unknown")
            try:
                case.status = cl.move_case(case.status, trigger, reason=reason,
                                           supervisor=supervisor)
            except cl.InvalidTransition as exc:
                return Changed(case, exc.why)
            event = TimelineEvent(trigger, actor, channel, self.clock(),
                                  {"reason": reason} if reason else {})
            try:
                await self.storage.cases.update(case, event,
                                                self._tell_volunteer(case, trigger,
                                                                     reason=reason))
            except StaleSession:
                continue
            return Changed(case)
        return Changed(None, "busy")

    async def refer(self, reference: str, to: str, actor: str, *,
                    due: timedelta = FOLLOW_UP, channel: str = "cli") -> Changed:
        """Add a referral (to a programme or a directory group) with a follow-up timer."""
        for _ in range(3):
            case = await self.storage.cases.get(normalize_case_reference(reference))
            if case is None:
                return Changed(None, "unknown")
            gate = await Consents(self.storage).may_refer(case_subject(case), PURPOSE_REFERRAL,
                                                          case.reference)
            if not gate.allowed:
                return Changed(case, NO_CONSENT)
            referral = Referral(to=to, due_at=self.clock() + due, created_at=self.clock())
            case.referrals.append(referral)
            if case.status in (cl.ASSESSED, cl.REJECTED):
                case.status = cl.move_case(case.status, "refer")
            timer = self._follow_up(case, referral, case.version + 1)
            event = TimelineEvent("referral", actor, channel, self.clock(),
                                  {"to": to, "referral": referral.id,
                                   "due_at": referral.due_at.isoformat(),
                                   "lawful_basis": gate.why})
            try:
                await self.storage.cases.update(case, event,
                                                self._tell_volunteer(case, "refer", to=to),
                                                [timer])
            except StaleSession:
                continue
            return Changed(case)
        return Changed(None, "busy")

    @staticmethod
    def _follow_up(case: Case, referral: Referral, version: int | None = None) -> Timer:
        return Timer(f"case:{referral.id}", TIMER_FOLLOW_UP, case.id, referral.due_at,
                     case.version if version is None else version, {"referral": referral.id})

    async def move_referral(self, reference: str, referral_id: str, trigger: str, actor: str,
                            *, reason: str = "", channel: str = "cli") -> Changed:
        for _ in range(3):
            case = await self.storage.cases.get(normalize_case_reference(reference))
            if case is None:
                return Changed(None, "unknown")
            referral = next((r for r in case.referrals if r.id == referral_id), None)
            if referral is None:
                return Changed(case, "no such referral")
            try:
                referral.state = cl.move_referral(referral.state, trigger, reason=reason)
            except cl.InvalidTransition as exc:
                return Changed(case, exc.why)
            referral.reason = reason or referral.reason
            event = TimelineEvent(f"referral_{trigger}", actor, channel, self.clock(),
                                  {"referral": referral_id, **({"reason": reason}
                                                               if reason else {})})
            try:
                await self.storage.cases.update(case, event, self._tell_volunteer(
                    case, f"referral_{trigger}", to=referral.to, reason=reason))
            except StaleSession:
                continue
            if referral.state not in cl.OPEN_REFERRAL:
                # The port cancels by subject and kind: every follow-up of the case goes,
                # so the ones still open are put back (schedule replaces by id).
                await self.storage.timers.cancel(case.id, TIMER_FOLLOW_UP)
                for other in case.referrals:
                    if other.state in cl.OPEN_REFERRAL:
                        await self.storage.timers.schedule(self._follow_up(case, other))
            return Changed(case)
        return Changed(None, "busy")

    async def fire(self, timer: Timer) -> str:
        """A referral's follow-up is due: remind the office, unless it was settled."""
        case = await self.storage.cases.get_by_id(timer.subject)
        if case is None:
            return "gone"
        referral = next((r for r in case.referrals if r.id == timer.data.get("referral")), None)
        if referral is None or referral.state not in cl.OPEN_REFERRAL \
                or case.status == cl.CLOSED:
            return "stale"
        event = TimelineEvent("overdue", "timer", "system", self.clock(),
                              {"referral": referral.id, "to": referral.to})
        await self.storage.cases.update(case, event, self._tell_offices(case, "case.overdue"))
        log.info("case.overdue", reference=case.reference)
        return "reminded"

    # -- the volunteer's side --------------------------------------------------------------

    async def mine(self, volunteer: str) -> list[Case]:
        return await self.storage.cases.for_volunteer(volunteer, limit=5)


# -- flow actions ---------------------------------------------------------------------------

def _person(slots: dict[str, Any], prefix: str = "") -> Person:
    year = slots.get(f"{prefix}birth_year")
    return Person(birth_year=int(year) if isinstance(year, int) else None,
                  sex=slots.get(f"{prefix}sex"), relation=slots.get(f"{prefix}relation"),
                  thai_id=slots.get("thai_id") if not prefix else None)


def case_from_answers(ctx: ActionContext, area: str, catalogs: Catalogs,
                      now: datetime) -> Case:
    """A case from the volunteer flow's answers (a typed object, no dicts passed on)."""
    slots = dict(ctx.slots)
    session = ctx.session
    ground = "vital_interest" if slots.get("consent") == "vital_interest" else "consent"
    consent = Consent(ground=ground, recorded_by=ctx.inbound.conversation, at=now,
                      text_key=CONSENT_TEXT,
                      text=catalogs.render(session.lang, Text(CONSENT_TEXT)),
                      version=catalogs.render(session.lang, Text(CONSENT_VERSION)),
                      lang=session.lang)
    members = [_person(item, "member_") for item in slots.get("members") or []
               if isinstance(item, dict)]
    return Case(reference=new_case_reference(), volunteer=ctx.inbound.conversation,
                channel=ctx.inbound.channel, lang=session.lang, area=area,
                location=Location.from_dict(slots["location"]), person=_person(slots),
                members=members if slots.get("kind") == "household" else [],
                hardships=[str(h) for h in slots.get("hardships") or []],
                needs=str(slots.get("needs") or ""), consent=consent,
                source_event=f"{ctx.inbound.channel}:{ctx.inbound.event_id}")


def _findings(case: Case) -> Text:
    if not case.screening:
        return Text("case.screening.none")
    shown: Text | None = None
    for finding in reversed(case.screening):
        line = Text("case.screening.item", {"programme": Text(
            f"programme.{finding['programme']}"), "why": finding.get("why", ""),
            "missing": finding.get("missing", "") or "-"})
        shown = line if shown is None else Text("case.lines", {"first": line, "rest": shown})
    assert shown is not None
    return shown


async def submit_case(ctx: ActionContext) -> ActionResult:
    area = ctx.inbound.hints.get("volunteer", "")
    if not area:
        return ActionResult("not_volunteer")
    casework: Casework = ctx.services.casework
    try:
        case = case_from_answers(ctx, area, casework.catalogs, casework.clock())
        stored = await casework.open(case, "volunteer")
    except Exception as exc:
        log.error("case.open_failed", error=type(exc).__name__)
        return ActionResult("failed")
    return ActionResult("opened", {"case_reference": stored.reference},
                        say=(Text("case.screening.title", {"findings": _findings(stored)}),))


def status_line(case: Case) -> Text:
    return Text("case.mine.item", {"reference": case.reference,
                                   "status": Text(f"case.status.{case.status}"),
                                   "referrals": len(case.referrals)})


def my_cases(cases: Sequence[Case]) -> tuple[Text, ...]:
    if not cases:
        return (Text("case.mine.none"),)
    return (Text("case.mine.title"), *[status_line(c) for c in cases])


def register_case_actions(actions: ActionRegistry) -> None:
    actions.add("submit_case", submit_case)
    register_case_photo_actions(actions)
