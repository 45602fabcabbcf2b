"""The responder side of an incident: actions, escalation, reminders, relay chat.

Every change is read → decide (pure: routing.lifecycle) → one `IncidentStore.update` that
appends the timeline event, queues every message and schedules its timers in the same
transaction, retried from a fresh read when another writer got there first (optimistic,
`StaleSession`). That is what makes the first acknowledgement win, and a late escalation
harmless: it re-reads, sees the acknowledgement, and does nothing.

Dispatch state lives in `incident.details["dispatch"]`:
    seq       lifecycle version: bumped by every lifecycle transition. Timers remember it
              (`Timer.subject_version`) and do nothing when it moved on. The row's own
              `version` is not used for that, because a reporter adding "children involved"
              bumps it and must not cancel an escalation.
    level     escalation level reached (0, 1, 2)
    armed     highest level whose first message reached a channel (its clock is running)
    notified  responder addresses told so far: only they may act
    targets   per address: agency, names and distance, for "who has it" and the ETA
    holder    the acknowledging responder: address, person, display name
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.histograms import FIRST_ACK, FIRST_DELIVERY
from bot.incident import Incident, Notification, TimelineEvent, normalize_reference
from bot.phone import to_ascii_digits
from bot.types import Choice, Inbound, Kind, Reply, Text, utcnow
from routing import lifecycle as lc
from routing.agencies import agency_name
from routing.messages import (
    KIND_NEW,
    KIND_RELAY_TO_REPORTER,
    KIND_RELAY_TO_RESPONDER,
    KIND_REMINDER,
    KIND_RESPONDER,
    card_choices,
    card_notification,
    estimate_eta,
    message,
    parse_relay,
    parse_token,
    parse_typed,
    reporter_update,
    responder_actions,
)
from routing.ports import Route, Router, Target
from storage.locks import LocalLocks
from storage.ports import StaleSession, Storage, Timer

log = structlog.get_logger(__name__)

MAX_LEVEL = 2
ARMED_MEMO = 4096  # incidents whose armed level this process remembers
FRESH_SECONDS = 60.0  # how long a just-committed incident is kept for its first arming
MAX_RELAY_TEXT = 1000
ALIASES = {
    "ack": "acknowledge", "accept": "acknowledge", "eta": "en_route", "arrived": "on_scene",
    "close": "resolve", "resolved": "resolve", "referred": "refer",
}
# Typed words that are not lifecycle triggers: refer with a destination, and a note.
REFER_TO = {"refer_protection": "protection", "refer_welfare": "welfare"}
NOTE = "note"
TYPED_ONLY = frozenset({*REFER_TO, NOTE})
TIMER_ESCALATE = "escalate"
TIMER_UNDELIVERED = "undelivered"
TIMER_REMIND = "remind"


@dataclass(frozen=True)
class Policy:
    """Timings, all in seconds."""

    escalate_after: float = 300.0
    remind_after: float = 600.0
    arrival_grace: float = 300.0
    max_reminders: int = 3


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the chat it came from (`line:C…`, `sms:+66…`) and, if known, the person."""

    address: str
    id: str = ""
    name: str = ""
    # The channel vouches that this person may act on the incident although their address
    # was not notified: the board, whose staff read only incidents of their own areas.
    vouched: bool = False

    @property
    def label(self) -> str:
        return f"{self.address}/{self.id}" if self.id else self.address


@dataclass(frozen=True)
class ActResult:
    """The answer to the acting responder (render `reply` in their chat at once).

    outcome: done | taken | not_notified | unknown | invalid | need_ack | closed
    """

    outcome: str
    reply: Reply
    reference: str | None = None
    status: str | None = None


# -- dispatch state ------------------------------------------------------------------------


def dispatch_state(incident: Incident) -> dict[str, Any]:
    state: dict[str, Any] = incident.details.setdefault("dispatch", {
        "seq": 0, "level": 0, "armed": -1, "notified": [], "targets": {}, "holder": None,
        "reminders": 0,
    })
    return state


def _remember(state: dict[str, Any], targets: list[Target]) -> None:
    for t in targets:
        if t.address not in state["notified"]:
            state["notified"].append(t.address)
            state["targets"][t.address] = {
                "agency": t.agency, "name_th": t.name_th, "name_en": t.name_en,
                "km": None if t.distance_km is None else round(t.distance_km, 2),
                "level": t.level, "lang": t.lang,
            }


def plan_first_dispatch(incident: Incident, route: Route) -> list[Notification]:
    """Record who is told at once and build their cards (called before the incident is
    stored, so incident, state and outbox rows are written in one transaction)."""
    state = dispatch_state(incident)
    state["flags"] = list(route.flags)
    state["station"] = route.station
    state["km"] = None if route.distance_km is None else round(route.distance_km, 2)
    state["where"] = {lang: dict(names) for lang, names in route.places.items()}
    _remember(state, list(route.targets))
    return [card_notification(incident, t, 0) for t in route.targets]


def watchdog(incident: Incident, policy: Policy, now: datetime) -> Timer:
    """Escalates a report whose first messages never reach a channel (a channel down)."""
    return Timer(f"{TIMER_UNDELIVERED}:{incident.id}", TIMER_UNDELIVERED, incident.id,
                 now + timedelta(seconds=policy.escalate_after), 0, {})


@dataclass
class _Change:
    """What a decision produced: the event, the messages and the timers (all written in the
    incident's transaction), and the timer work after commit (cancellations)."""

    event: TimelineEvent
    notifications: list[Notification] = field(default_factory=list)
    after: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


Decide = Callable[[Incident], _Change | None]


class Responders:
    """Responder actions and the timers the dispatcher fires."""

    def __init__(self, storage: Storage, router: Router, policy: Policy = Policy(),
                 clock: Callable[[], datetime] = utcnow,
                 words: Mapping[str, set[str]] | None = None):
        self.storage = storage
        self.words = words or {}  # typed action words per trigger (dispatch.words.*)
        self.router = router
        self.policy = policy
        self.clock = clock
        self.on_queued: Callable[[], None] = lambda: None  # wakes the dispatcher
        # Incident id → a level known armed. `armed` only ever grows, so a card of a level
        # at or below it is a no-op in every process: no read for the incident's other cards.
        self._armed: OrderedDict[str, int] = OrderedDict()
        # An incident's cards are sent together (one batch): they arm one after the other in
        # this process, so the first arms and the others read the memo, instead of all
        # reading the same version and all but one failing a long update and reading again.
        self._arming = LocalLocks()
        # Incidents as this process's report service committed them, until their first card
        # arms: that arming starts from the copy instead of reading the row back. The update
        # is conditional on the version, so a copy another writer outdated fails as stale
        # and the retry reads. Kept `FRESH_SECONDS` at most: a card normally arms within a
        # second, and personal data is not held longer than needed.
        self._fresh: OrderedDict[str, tuple[float, Incident]] = OrderedDict()
        # "Refer to a welfare case": the composition root opens the linked case (bot.casework).
        self.on_welfare_referral: Callable[[Incident, str, str], Awaitable[object]] | None = \
            None

    # -- the read → decide → write loop ----------------------------------------------------

    async def _change(self, load: Callable[[], Awaitable[Incident | None]],
                      decide: Decide) -> tuple[Incident | None, _Change | None]:
        for _ in range(10):
            incident = await load()
            if incident is None:
                return None, None
            change = decide(incident)
            if change is None:
                return incident, None
            try:
                await self.storage.incidents.update(incident, change.event,
                                                    change.notifications, change.timers)
            except StaleSession:
                continue
            if change.notifications:
                self.on_queued()
            for job in change.after:
                await job()
            return incident, change
        raise StaleSession("incident kept changing")

    def _schedule(self, kind: str, incident: Incident, after: float,
                  data: dict[str, Any] | None = None) -> Timer:
        # Remembers the lifecycle version as it stands now: fired later, it does nothing if
        # the incident moved on.
        return Timer(f"{kind}:{incident.id}", kind, incident.id,
                     self.clock() + timedelta(seconds=after), dispatch_state(incident)["seq"],
                     data or {})

    def _cancel(self, incident: Incident, kind: str | None = None
                ) -> Callable[[], Awaitable[int]]:
        return lambda: self.storage.timers.cancel(incident.id, kind)

    # -- responder actions -----------------------------------------------------------------

    async def act(self, incident_ref_or_token: str, action: str | None, actor: Actor,
                  channel: str, eta_minutes: int | None = None,
                  event_id: str | None = None, detail: str = "") -> ActResult:
        """Apply a responder's action (a tapped token, or a reference and an action name).

        `event_id` (the channel's id for the tap) makes a redelivered tap a no-op that gets
        the same answer.
        """
        token = parse_token(incident_ref_or_token)
        if token is not None:
            action = action or token.action
            reference = token.reference
            if eta_minutes is None:
                eta_minutes = token.minutes
        else:
            reference = normalize_reference(incident_ref_or_token)
        trigger = ALIASES.get(action or "", action or "")
        extra: dict[str, str] = {}
        if trigger in REFER_TO:
            trigger, extra = "refer", {"to": REFER_TO[trigger]}
        elif trigger == "duplicate" and detail:
            extra = {"of": normalize_reference(detail)}
        elif trigger == NOTE:
            return await self.note(reference, actor, channel, detail, event_id)
        if eta_minutes is not None and not 1 <= eta_minutes <= 24 * 60:
            eta_minutes = None
        if trigger not in lc.RESPONDER_TRIGGERS:
            return ActResult("invalid", _reply("dispatch.invalid", reference=reference),
                             reference)
        outcome: dict[str, ActResult] = {}

        def decide(incident: Incident) -> _Change | None:
            state = dispatch_state(incident)
            lang = state["targets"].get(actor.address, {}).get("lang", "th")
            if actor.address not in state["notified"] and not actor.vouched:
                outcome["r"] = ActResult("not_notified", _reply("dispatch.not_notified",
                                                                reference=reference))
                return None
            if event_id and event_id in state.get("handled", []):
                outcome["r"] = self._result("done", "dispatch.repeated", incident, lang)
                return None
            holder = state.get("holder")
            if incident.status in lc.CLOSED:
                outcome["r"] = self._result("closed", "dispatch.closed_already", incident, lang)
                return None
            if trigger == "acknowledge" and holder:
                if holder["address"] == actor.address:
                    outcome["r"] = self._result("done", "dispatch.you_have_it", incident, lang)
                else:
                    outcome["r"] = self._result("taken", "dispatch.taken", incident, lang,
                                                who=_who(holder))
                return None
            if trigger != "acknowledge":
                if not holder:
                    outcome["r"] = self._result("need_ack", "dispatch.need_ack", incident, lang)
                    return None
                if holder["address"] != actor.address:
                    outcome["r"] = self._result("taken", "dispatch.taken", incident, lang,
                                                who=_who(holder))
                    return None
            try:
                status = lc.apply(incident.status, trigger)
            except lc.InvalidTransition:
                outcome["r"] = self._result("invalid", "dispatch.invalid", incident, lang)
                return None
            change = self._apply(incident, trigger, status, actor, channel, eta_minutes)
            change.event.data.update(extra)
            if event_id:
                # The last few tap ids are enough: channels redeliver within minutes.
                state["handled"] = [*state.get("handled", [])[-19:], event_id]
            done = f"refer_{extra['to']}" if trigger == "refer" and extra else trigger
            outcome["r"] = self._result("done", f"dispatch.done.{done}", incident, lang,
                                        **change.event.data.get("say", {}))
            return change

        try:
            incident, _ = await self._change(lambda: self.storage.incidents.get(reference),
                                             decide)
        except StaleSession:
            log.error("responder.act_gave_up", reference=reference, action=trigger)
            return ActResult("invalid", _reply("dispatch.retry", reference=reference),
                             reference)
        if incident is None:
            return ActResult("unknown", _reply("dispatch.unknown", reference=reference),
                             reference)
        result = outcome["r"]
        if result.outcome == "not_notified":
            # A failed authorisation is logged, without the person's data (ASVS V16.3.2).
            log.warning("dispatch.not_notified", reference=reference, action=trigger,
                        channel=channel)
        else:
            log.info("responder.act", reference=reference, action=trigger,
                     outcome=result.outcome, status=incident.status)
        if result.outcome == "done" and extra.get("to") == "welfare" and \
                self.on_welfare_referral is not None:
            try:
                await self.on_welfare_referral(incident, actor.address, channel)
            except Exception as exc:
                # The referral stands; `ess cases` can open the case again (idempotent).
                log.error("responder.case_not_opened", reference=reference,
                          error=type(exc).__name__)
        return result

    async def on_action(self, inbound: Inbound) -> list[Reply]:
        """A responder's event from any channel (`bot.inbound` routes it here): a tapped
        `act:` button, a typed command (`ESS-7K3F9 ack`, `ESS-7K3F9 eta 10`, Thai words and
        digits too), or `ESS-7K3F9: text` for the reporter.

        `hints["chat"]` is the address that was notified when it is not the conversation
        (an operator at the console), `hints["actor"]` the person who acted, when the
        channel knows them; idempotent on the event id. Anything else gets the command list.
        """
        chat = inbound.hints.get("chat") or inbound.conversation
        actor = Actor(chat, inbound.hints.get("actor", ""), inbound.hints.get("name", ""))
        typed = to_ascii_digits(inbound.text) if inbound.kind is Kind.TEXT else inbound.text
        token = parse_token(typed)
        relay = parse_relay(inbound.text) if inbound.kind is Kind.TEXT else None
        if relay is not None:
            reference, text = relay
            return [(await self.relay_to_reporter(reference, actor, inbound.channel,
                                                  text)).reply]
        if token is None and inbound.kind is Kind.TEXT:
            # SMS and plain chats: "ack ESS-7K3F9", "ESS-7K3F9 12", "ESS-7K3F9 รับ".
            token = parse_typed(typed, self.words)
        if token is None:
            return [_reply("dispatch.help", reference="ESS-…")]
        result = await self.act(token.reference, token.action, actor, inbound.channel,
                                token.minutes, event_id=inbound.event_id, detail=token.detail)
        return [result.reply]

    async def note(self, reference: str, actor: Actor, channel: str, text: str,
                   event_id: str | None = None) -> ActResult:
        """A notified responder's note on the timeline; the incident's state is unchanged.
        The text is personal data: the timeline keeps it sealed with the incident's details,
        the log only its length."""
        result: dict[str, ActResult] = {}

        def decide(incident: Incident) -> _Change | None:
            state = dispatch_state(incident)
            lang = state["targets"].get(actor.address, {}).get("lang", "th")
            if actor.address not in state["notified"] and not actor.vouched:
                result["r"] = ActResult("not_notified", _reply("dispatch.not_notified",
                                                               reference=reference))
                return None
            if not text.strip():
                result["r"] = self._result("invalid", "dispatch.help", incident, lang)
                return None
            if event_id and event_id in state.get("handled", []):
                result["r"] = self._result("done", "dispatch.repeated", incident, lang)
                return None
            if event_id:
                state["handled"] = [*state.get("handled", [])[-19:], event_id]
            notes = incident.details.setdefault("notes", [])
            notes.append({"by": actor.label, "at": self.clock().isoformat(),
                          "text": text[:MAX_RELAY_TEXT]})
            result["r"] = self._result("done", "dispatch.done.note", incident, lang)
            return _Change(TimelineEvent("note", actor.label, channel, self.clock(),
                                         {"chars": len(text)}))

        incident, _ = await self._change(lambda: self.storage.incidents.get(reference), decide)
        if incident is None:
            return ActResult("unknown", _reply("dispatch.unknown", reference=reference),
                             reference)
        return result["r"]

    def _result(self, outcome: str, key: str, incident: Incident, lang: str = "th",
                **params: Any) -> ActResult:
        # Buttons only for someone who can use them: never for "taken by" or "closed".
        offer = outcome in ("done", "need_ack", "invalid")
        choices = tuple(Choice(v, Text(label)) for v, label in
                        card_choices(incident.reference, responder_actions(incident.status))) \
            if offer else ()
        return ActResult(outcome, Reply(Text(key, {"reference": incident.reference, **params}),
                                        lang, choices), incident.reference,
                         incident.status)

    def _apply(self, incident: Incident, trigger: str, status: str, actor: Actor,
               channel: str, eta_minutes: int | None) -> _Change:
        state = dispatch_state(incident)
        now = self.clock()
        incident.status = status
        state["seq"] += 1
        state["reminders"] = 0  # each step gets its own bounded reminders
        data: dict[str, Any] = {"action": trigger, "by": actor.id, "name": actor.name}
        notes: list[Notification] = []
        after: list[Callable[[], Awaitable[Any]]] = []
        timers: list[Timer] = []
        target = state["targets"].get(actor.address, {})
        if trigger == "acknowledge":
            FIRST_ACK.observe(_since(incident, now))
            state["holder"] = {"address": actor.address, "id": actor.id, "name": actor.name,
                               "agency": target.get("agency", ""),
                               "name_th": target.get("name_th", ""),
                               "name_en": target.get("name_en", ""),
                               "at": now.isoformat()}
            who = _who(state["holder"])
            notes.append(reporter_update(incident, "acknowledged",
                                         agency=agency_name(state, incident.lang)))
            notes += self._to_others(incident, actor.address, "dispatch.taken", who=who)
            after += [self._cancel(incident, TIMER_ESCALATE),
                      self._cancel(incident, TIMER_UNDELIVERED)]
            timers.append(self._schedule(TIMER_REMIND, incident, self.policy.remind_after))
        elif trigger == "en_route":
            estimated = eta_minutes is None
            minutes = eta_minutes if eta_minutes is not None else estimate_eta(target.get("km"))
            state["eta_minutes"] = minutes
            state["en_route_at"] = now.isoformat()  # the board's "ETA promised vs elapsed"
            data.update(eta_minutes=minutes, estimated=estimated)
            notes.append(reporter_update(incident, "en_route", minutes=minutes)
                         if minutes is not None else reporter_update(incident, "en_route_soon"))
            wait = (minutes or 15) * 60 + self.policy.arrival_grace
            timers.append(self._schedule(TIMER_REMIND, incident, wait))
            data["say"] = {"minutes": minutes if minutes is not None else "?"}
        elif trigger == "on_scene":
            state["on_scene_at"] = now.isoformat()
            notes.append(reporter_update(incident, "on_scene"))
            after.append(self._cancel(incident, TIMER_REMIND))
        else:  # closing: resolve | refer | unfounded | duplicate
            notes.append(reporter_update(incident, "closed"))
            notes += self._to_others(incident, actor.address, "dispatch.closed",
                                     outcome=Text(f"dispatch.outcome.{trigger}"))
            after.append(self._cancel(incident))
        event = TimelineEvent(status, actor.label, channel, now, data)
        return _Change(event, notes, after, timers)

    def _to_others(self, incident: Incident, actor_address: str, key: str,
                   **params: Any) -> list[Notification]:
        state = dispatch_state(incident)
        return [Notification(a, KIND_RESPONDER, message(
                    key, {"reference": incident.reference, **params},
                    state["targets"].get(a, {}).get("lang", "th"), reference=incident.reference),
                    incident_id=incident.id)
                for a in state["notified"] if a != actor_address]

    # -- the dispatcher's hooks ------------------------------------------------------------

    async def delivered(self, notification: Notification) -> None:
        """A responder card reached its channel: start that level's escalation clock."""
        if notification.kind not in (KIND_NEW, KIND_REMINDER) or not notification.incident_id:
            return
        level = int(notification.payload.get("level", 0))
        incident_id = notification.incident_id
        if self._armed.get(incident_id, -1) >= level:
            return
        async with self._arming.hold(incident_id):
            if self._armed.get(incident_id, -1) < level:
                await self._arm(incident_id, level, notification.recipient)

    def created(self, incident: Incident) -> None:
        """An incident just committed with its cards (bot.reports): kept for their arming."""
        now = time.monotonic()
        self._fresh[incident.id] = (now + FRESH_SECONDS, copy.deepcopy(incident))
        while self._fresh:
            oldest = next(iter(self._fresh.values()))
            if oldest[0] > now and len(self._fresh) <= ARMED_MEMO:
                break
            self._fresh.popitem(last=False)

    async def _fresh_or_read(self, incident_id: str) -> Incident | None:
        fresh = self._fresh.pop(incident_id, None)
        if fresh is not None and fresh[0] > time.monotonic():
            return fresh[1]
        return await self.storage.incidents.get_by_id(incident_id)

    async def _arm(self, incident_id: str, level: int, recipient: str) -> None:
        def decide(incident: Incident) -> _Change | None:
            state = dispatch_state(incident)
            if incident.status not in lc.WAITING or state["armed"] >= level \
                    or level != state["level"]:
                return None
            state["armed"] = level
            state["armed_at"] = self.clock().isoformat()  # the board counts down from it
            notes: list[Notification] = []
            if incident.status == lc.NEW:
                FIRST_DELIVERY.observe(_since(incident, self.clock()))
                incident.status = lc.apply(incident.status, "dispatch")
                state["seq"] += 1
                notes.append(reporter_update(incident, "dispatched"))
                kind = lc.DISPATCHED
            else:
                kind = "delivered"
            timers = [self._schedule(TIMER_ESCALATE, incident, self.policy.escalate_after)]
            return _Change(TimelineEvent(kind, "dispatcher", _scheme(recipient),
                                         self.clock(), {"level": level}), notes,
                           timers=timers)

        incident, _ = await self._change(lambda: self._fresh_or_read(incident_id), decide)
        if incident is not None:  # as committed, or as read when there was nothing to do
            self._remember_armed(incident_id, int(dispatch_state(incident)["armed"]))

    def _remember_armed(self, incident_id: str, level: int) -> None:
        if level < 0:
            return
        self._armed[incident_id] = level
        self._armed.move_to_end(incident_id)
        while len(self._armed) > ARMED_MEMO:
            self._armed.popitem(last=False)

    async def fire(self, timer: Timer) -> str:
        """Run a due timer; 'stale' when the incident moved on since it was set."""
        done: dict[str, str] = {"outcome": "stale"}
        route: Route | None = None
        incident = await self.storage.incidents.get_by_id(timer.subject)
        if incident is None:
            return "gone"
        state = dispatch_state(incident)
        if timer.kind in (TIMER_ESCALATE, TIMER_UNDELIVERED) and state["level"] < MAX_LEVEL \
                and incident.status in lc.WAITING:
            route = await self.router.route(incident, state["level"] + 1)

        def decide(incident: Incident) -> _Change | None:
            state = dispatch_state(incident)
            if state["seq"] != timer.subject_version:
                return None
            if timer.kind in (TIMER_ESCALATE, TIMER_UNDELIVERED):
                if incident.status not in lc.WAITING:
                    return None
                done["outcome"] = "escalated"
                return self._escalate(incident, route)
            if timer.kind == TIMER_REMIND and incident.status in lc.HELD:
                done["outcome"] = "reminded"
                return self._remind_holder(incident)
            return None

        await self._change(lambda: self.storage.incidents.get_by_id(timer.subject), decide)
        log.info("timer.fired", kind=timer.kind, outcome=done["outcome"],
                 reference=incident.reference)
        return done["outcome"]

    def _escalate(self, incident: Incident, route: Route | None) -> _Change | None:
        state = dispatch_state(incident)
        level = state["level"]
        if level >= MAX_LEVEL or route is None:
            # Nobody left to add: remind everyone, a bounded number of times.
            if state["reminders"] >= self.policy.max_reminders:
                return None
            state["reminders"] += 1
            notes = [self.card_for(incident, a, level, KIND_REMINDER) for a in state["notified"]]
            return _Change(TimelineEvent("reminded", "dispatcher", "system", self.clock(),
                                         {"level": level, "count": state["reminders"]}),
                           notes, timers=[self._schedule(TIMER_ESCALATE, incident,
                                                         self.policy.escalate_after)])
        level += 1
        previous = list(state["notified"])
        added = [t for t in route.targets if t.address not in previous]
        _remember(state, added)
        incident.status = lc.apply(incident.status, "escalate")
        state["seq"] += 1
        state["level"] = level
        waited = round(self.policy.escalate_after / 60)
        notes = [card_notification(incident, t, level, KIND_NEW, waited) for t in added]
        notes += [self.card_for(incident, a, level, KIND_REMINDER) for a in previous]
        notes.append(reporter_update(incident, "escalated"))
        return _Change(TimelineEvent(lc.ESCALATED, "dispatcher", "system", self.clock(),
                                     {"level": level, "added": len(added)}), notes)

    @staticmethod
    def acting_address(incident: Incident) -> str | None:
        """Whom an operator acts for by default: the holder, else the first one notified."""
        state = dispatch_state(incident)
        holder = state.get("holder") or {}
        return holder.get("address") or next(iter(state["notified"]), None)

    def card_for(self, incident: Incident, address: str, level: int = 0,
                 kind: str = KIND_NEW) -> Notification:
        """The card for an address already notified, as the incident stands now."""
        t = dispatch_state(incident)["targets"].get(address, {})
        target = Target(address, t.get("agency", ""), t.get("name_th", ""),
                        t.get("name_en", ""), "", t.get("level", 0), t.get("km"),
                        t.get("lang", "th"))
        return card_notification(incident, target, level, kind,
                                 round(self.policy.escalate_after / 60))

    def _remind_holder(self, incident: Incident) -> _Change | None:
        state = dispatch_state(incident)
        if state["reminders"] >= self.policy.max_reminders:
            return None
        state["reminders"] += 1
        holder = state["holder"]["address"]
        choices = card_choices(incident.reference, responder_actions(incident.status))
        note = Notification(holder, KIND_RESPONDER, message(
            f"dispatch.remind.{incident.status}", {"reference": incident.reference},
            state["targets"].get(holder, {}).get("lang", "th"), choices=choices,
            reference=incident.reference), incident_id=incident.id)
        return _Change(TimelineEvent("reminded", "dispatcher", "system", self.clock(),
                                     {"status": incident.status, "count": state["reminders"]}),
                       [note], timers=[self._schedule(TIMER_REMIND, incident,
                                                      self.policy.remind_after)])

    # -- relay chat ------------------------------------------------------------------------

    async def relay_to_reporter(self, reference: str, actor: Actor, channel: str,
                                text: str) -> ActResult:
        """The holder writes to the reporter through the bot; neither sees the other's
        channel identity (the reporter sees the agency, the responder the reference)."""
        reference = normalize_reference(reference)
        result: dict[str, ActResult] = {}

        def decide(incident: Incident) -> _Change | None:
            state = dispatch_state(incident)
            lang = state["targets"].get(actor.address, {}).get("lang", "th")
            holder = state.get("holder")
            if actor.address not in state["notified"] and not actor.vouched:
                result["r"] = ActResult("not_notified", _reply("dispatch.not_notified",
                                                               reference=reference))
                return None
            if incident.status in lc.CLOSED:
                result["r"] = self._result("closed", "dispatch.closed_already", incident, lang)
                return None
            if not holder or holder["address"] != actor.address:
                result["r"] = self._result("need_ack", "dispatch.need_ack", incident, lang) \
                    if not holder else self._result("taken", "dispatch.taken", incident, lang,
                                                    who=_who(holder))
                return None
            result["r"] = self._result("done", "dispatch.relayed", incident, lang)
            note = reporter_update(incident, "relay", text=text[:MAX_RELAY_TEXT],
                                   agency=agency_name(state, incident.lang))
            note.kind = KIND_RELAY_TO_REPORTER
            # The text itself is personal data: the timeline keeps only that it was sent.
            return _Change(TimelineEvent("relay", actor.label, channel, self.clock(),
                                         {"direction": "to_reporter", "chars": len(text)}),
                           [note])

        incident, _ = await self._change(lambda: self.storage.incidents.get(reference), decide)
        if incident is None:
            return ActResult("unknown", _reply("dispatch.unknown", reference=reference))
        return result["r"]

    async def relay_to_responders(self, reference: str, reporter: str, channel: str,
                                  text: str) -> bool:
        """The reporter (conversation `reporter`) writes to whoever holds the incident, or to
        everyone notified while nobody does. False when it is not theirs or it is closed."""
        reference = normalize_reference(reference)
        sent = {"ok": False}

        def decide(incident: Incident) -> _Change | None:
            if incident.reporter != reporter or incident.status in lc.CLOSED:
                return None
            state = dispatch_state(incident)
            holder = state.get("holder")
            to = [holder["address"]] if holder else list(state["notified"])
            choices = card_choices(incident.reference, responder_actions(incident.status))
            notes = [Notification(a, KIND_RELAY_TO_RESPONDER, message(
                "dispatch.relay", {"reference": incident.reference,
                                    "text": text[:MAX_RELAY_TEXT]},
                state["targets"].get(a, {}).get("lang", "th"), choices=choices,
                reference=incident.reference), incident_id=incident.id) for a in to]
            sent["ok"] = True
            return _Change(TimelineEvent("relay", "reporter", channel, self.clock(),
                                         {"direction": "to_responder", "chars": len(text)}),
                           notes)

        await self._change(lambda: self.storage.incidents.get(reference), decide)
        return sent["ok"]


def _who(holder: dict[str, Any]) -> str:
    return str(holder.get("name") or holder.get("name_th") or holder.get("address"))


def _since(incident: Incident, now: datetime) -> float:
    return max(0.0, (now - incident.created_at).total_seconds())


def _scheme(address: str) -> str:
    return address.split(":", 1)[0]


def _reply(key: str, **params: Any) -> Reply:
    return Reply(Text(key, params), "th")


def new_id() -> str:
    return uuid.uuid4().hex
