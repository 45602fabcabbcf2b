"""The report actions flows run: submit, enrich after submit, and "I am safe now".

Submit writes the incident and its outbox rows in one transaction before the reporter is told
"received" (invariant 1); any failure becomes the outcome `not_received`, and the flow tells
the reporter plainly to call 191 or 1300.

A report is submitted once and told once. The submit is idempotent per run of the flow (the
`run_id` fixed when the flow starts, see `flows.runtime.RUN_ID`), so a "send" tapped again
after a crash finds the incident the first tap stored. The receipt ("received, reference
ESS-…") is an outbox row written in the incident's own transaction, and the outbox alone
delivers it: a crash at any instant after the commit still tells the reporter, and a replay
or a re-tap (which find the incident and write nothing) cannot tell them twice. The
in-request reply could not promise either: it is lost when the process dies before it is
sent, and it cannot know whether an earlier attempt's reply went out. So the flows do not
say the receipt themselves. Slot names are the shipped flows' convention:
`incident_type`, `location`, `phone`, `callback` (`no` means do not call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from bot.incident import Incident, Notification, TimelineEvent, new_reference
from bot.metrics import standard
from bot.phone import display_thai_phone
from bot.types import Location
from flows.actions import ActionContext, ActionRegistry, ActionResult
from flows.runtime import RUN_ID
from routing.messages import KIND_RECEIPT, KIND_RESPONDER, message
from routing.ports import Router
from routing.responders import Policy, dispatch_state, plan_first_dispatch, watchdog
from storage.ports import StaleSession, Storage

log = structlog.get_logger(__name__)

ENRICHMENT = ("role", "injured", "children")
STALE_RETRIES = 10


class Reports:
    """Creates and updates incidents for the flows."""

    def __init__(self, storage: Storage, router: Router, policy: Policy | None = None):
        self.storage = storage
        self.router = router
        self.policy = policy or Policy()
        # Called after outbox rows are committed: wakes the dispatcher instead of waiting
        # for its next poll (the wiring sets it).
        self.on_queued: Callable[[], None] = lambda: None
        # Called with an incident just committed with its cards (the wiring hands it to the
        # responders, whose first arming then need not read it back).
        self.on_created: Callable[[Incident], None] = lambda incident: None
        self.metrics = standard()  # the application shares one instance (bot.wiring)

    async def submit(self, ctx: ActionContext) -> ActionResult:
        result = await self._submit(ctx)
        self.metrics.inc("ess_reports_total", outcome=result.outcome)
        return result

    async def _submit(self, ctx: ActionContext) -> ActionResult:
        session, slots = ctx.session, ctx.slots
        try:
            incident = Incident(
                reference=new_reference(),
                type=str(slots["incident_type"]),
                location=Location.from_dict(slots["location"]),
                channel=ctx.inbound.channel,
                reporter=session.conversation,
                lang=session.lang,
                phone=slots.get("phone") if slots.get("callback") != "no" else None,
                do_not_call=slots.get("callback") == "no",
                silent=session.silent,
                drill=session.drill,
                source_event=_source(ctx),
            )
            phone_shown = display_thai_phone(str(slots["phone"])) if slots.get("phone") else ""
        except (KeyError, ValueError, TypeError):
            log.error("report.incomplete", flow=session.flow)
            return ActionResult("not_received")
        try:
            route = await self.router.route(incident)
        except Exception as exc:
            log.error("report.routing_failed", error=type(exc).__name__)
            return ActionResult("not_received")
        incident.area_codes = list(route.area_codes)
        if not route.recipients and not incident.drill:
            log.error("report.unrouted", flags=route.flags)
            return ActionResult("not_received")
        # The cards and the dispatch state are built before the write, so the incident, its
        # first event and every card commit together (invariant 1).
        cards = [] if incident.drill else plan_first_dispatch(incident, route)
        event = TimelineEvent("reported", "reporter", incident.channel, incident.created_at,
                              data={"flags": list(route.flags), "drill": incident.drill,
                                    "recipients": len(cards)})
        # The watchdog (escalate if no card is ever delivered) commits with the incident: a
        # crash right after the write must not leave a report that can never escalate.
        timers = [watchdog(incident, self.policy, incident.created_at)] if cards else []
        notifications = [*cards, receipt(incident, phone_shown)]
        try:
            stored = await self.storage.incidents.create(incident, notifications, event, timers)
        except Exception as exc:
            log.error("report.store_failed", error=type(exc).__name__)
            return ActionResult("not_received")
        if cards:
            self.on_created(stored)
        self.on_queued()
        log.info("report.received", reference=stored.reference, type=stored.type,
                 silent=stored.silent, drill=stored.drill, notifications=len(notifications))
        # A drill must never read as "sent to the police": the flow says so with its own text.
        return ActionResult("drill" if stored.drill else "received",
                            {"reference": stored.reference})

    async def _change(self, ctx: ActionContext, kind: str, details: dict[str, Any],
                      notify: bool) -> ActionResult:
        reference = ctx.slots.get("reference")
        if not reference:
            return ActionResult("failed")
        try:
            # A responder's action may commit between our read and our write: read again and
            # re-apply, so the reporter's tap and the responder's action both land.
            for _ in range(STALE_RETRIES):
                incident = await self.storage.incidents.get(str(reference))
                if incident is None:
                    return ActionResult("failed")
                incident.details.update(details)
                state = dispatch_state(incident)
                # Only the responders already told hear of it, each in their own language.
                notifications = [
                    Notification(a, KIND_RESPONDER, message(
                        f"dispatch.{kind}", {"reference": incident.reference},
                        state["targets"].get(a, {}).get("lang", "th"),
                        reference=incident.reference), incident_id=incident.id)
                    for a in state["notified"]
                ] if notify and not incident.drill else []
                try:
                    await self.storage.incidents.update(
                        incident, TimelineEvent(kind, "reporter", ctx.inbound.channel,
                                                data=details), notifications)
                except StaleSession:
                    continue
                if notifications:
                    self.on_queued()
                return ActionResult("ok")
            raise StaleSession("incident kept changing")
        except Exception as exc:
            log.error("report.update_failed", kind=kind, error=type(exc).__name__)
            return ActionResult("failed")

    async def enrich(self, ctx: ActionContext) -> ActionResult:
        details = {k: ctx.slots[k] for k in ENRICHMENT
                   if k in ctx.slots and ctx.slots[k] != "skip"}
        if not details:
            return ActionResult("ok")
        return await self._change(ctx, "details", details, notify=False)

    async def reporter_safe(self, ctx: ActionContext) -> ActionResult:
        # Never closes the incident: whoever holds the phone may not be the reporter.
        return await self._change(ctx, "reporter_safe", {"reporter_says_safe": True},
                                  notify=True)


async def relay_message(ctx: ActionContext) -> ActionResult:
    """A flow step that passes what the reporter typed to the responders of their report
    (`expect: text`, `save: message`, `run: relay_message`): outcome `sent` or `failed`."""
    reference, message = ctx.slots.get("reference"), ctx.slots.get("message")
    if not reference or not isinstance(message, str) or not message.strip():
        return ActionResult("failed")
    try:
        sent = await ctx.services.responders.relay_to_responders(
            str(reference), ctx.session.conversation, ctx.inbound.channel, message)
    except Exception as exc:
        log.error("report.relay_failed", error=type(exc).__name__)
        return ActionResult("failed")
    # The text is relayed, not kept in the conversation's answers.
    return ActionResult("sent" if sent else "failed", {"message": ""})


def _source(ctx: ActionContext) -> str:
    """What makes a submit idempotent: the flow's run, or (a session from before run ids)
    the submitting event."""
    run = ctx.slots.get(RUN_ID)
    if isinstance(run, str) and run:
        return f"run:{run}"
    return f"{ctx.inbound.channel}:{ctx.inbound.event_id}"


def receipt(incident: Incident, phone_shown: str) -> Notification:
    """The reporter's "received" as an outbox row: neutral words for a silent report, and a
    drill says it is one."""
    flow = "silent" if incident.silent else "report"
    key = f"{flow}.{'drill_received' if incident.drill else 'received'}"
    return Notification(incident.reporter, KIND_RECEIPT, message(
        key, {"reference": incident.reference, "phone": phone_shown}, incident.lang,
        silent=incident.silent, reference=incident.reference), incident_id=incident.id)


def register_report_actions(registry: ActionRegistry) -> None:
    """The shipped actions; they find the Reports service in the action context."""

    async def submit_report(ctx: ActionContext) -> ActionResult:
        return await ctx.services.reports.submit(ctx)  # type: ignore[no-any-return]

    async def update_report(ctx: ActionContext) -> ActionResult:
        return await ctx.services.reports.enrich(ctx)  # type: ignore[no-any-return]

    async def reporter_safe(ctx: ActionContext) -> ActionResult:
        return await ctx.services.reports.reporter_safe(ctx)  # type: ignore[no-any-return]

    registry.add("submit_report", submit_report)
    registry.add("update_report", update_report)
    registry.add("reporter_safe", reporter_safe)
    registry.add("relay_message", relay_message)
