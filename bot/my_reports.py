""""My reports": a reporter's own reports of the last 30 days, and a reference's status.

Channel-neutral: the `mine` command (any channel's "my reports" button or word) runs
`my_reports`, and a message that is only a reference runs `report_status`; both only read.

What a person holding the phone may see is decided here, not in the store:
- a silent report is never listed: whoever holds the phone may not be the reporter;
- a reference answers only for a report made from this same conversation, and a silent
  report (or a question asked inside a silent conversation) gets the neutral status words;
- nothing personal is shown beyond what the reporter entered: reference, type, time, where
  it stands, and the agency that has it (never a phone number or a place).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from bot.casework import my_cases
from bot.incident import Incident, normalize_reference
from bot.types import Text
from flows.actions import ActionContext, ActionRegistry, ActionResult
from routing import lifecycle as lc
from routing.agencies import agency_name
from routing.messages import local_time

log = structlog.get_logger(__name__)

WINDOW = timedelta(days=30)
MAX_LISTED = 5  # newest first; a longer list helps nobody on a small screen or one SMS


def _step(incident: Incident) -> str:
    """Where an incident stands, as the reporter is told it (`status.*.<step>`)."""
    status = incident.status
    if status in lc.CLOSED:
        return "closed"
    if status == lc.ESCALATED:
        return "escalated"
    if status in (lc.ACKNOWLEDGED, lc.ON_SCENE):
        return status
    if status == lc.EN_ROUTE:
        return "en_route" if _eta(incident) is not None else "en_route_soon"
    return "dispatched"


def _eta(incident: Incident) -> Any:
    return (incident.details.get("dispatch") or {}).get("eta_minutes")


def plain_status(incident: Incident) -> Text:
    """The status line of a listed report."""
    if incident.drill:
        return Text("mine.status.drill")
    state = incident.details.get("dispatch") or {}
    step = _step(incident)
    return Text(f"mine.status.{step}", {"agency": agency_name(state, incident.lang),
                                        "minutes": _eta(incident) or ""})


def silent_status(incident: Incident) -> Text:
    """The neutral status of a silent report: the same words its updates use."""
    if incident.drill:
        return Text("silent.drill_received", {"reference": incident.reference})
    return Text(f"status.silent.{_step(incident)}",
                {"reference": incident.reference, "minutes": _eta(incident) or ""})


def listed(incident: Incident) -> Text:
    return Text("mine.item", {"reference": incident.reference,
                              "type": Text(f"incident.{incident.type}"),
                              "time": local_time(incident), "status": plain_status(incident)})


async def my_reports(ctx: ActionContext) -> ActionResult:
    """The conversation's non-silent reports of the last 30 days, newest first."""
    if ctx.inbound.hints.get("volunteer"):
        return await _my_cases(ctx)  # a volunteer's "mine" is their cases
    since = ctx.services.engine.clock() - WINDOW
    try:
        found = await ctx.services.storage.incidents.for_reporter(
            ctx.session.conversation, since, limit=MAX_LISTED * 4)
    except Exception as exc:
        log.error("mine.failed", error=type(exc).__name__)
        return ActionResult("failed", say=(Text("mine.failed"),))
    shown = [i for i in found if not i.silent][:MAX_LISTED]
    log.info("mine.listed", count=len(shown))
    if not shown:
        return ActionResult("none", say=(Text("mine.none"), Text("mine.hint")))
    return ActionResult("listed", say=(Text("mine.title"), *map(listed, shown),
                                       Text("mine.hint")))


async def _my_cases(ctx: ActionContext) -> ActionResult:
    try:
        cases = await ctx.services.casework.mine(ctx.session.conversation)
    except Exception as exc:
        log.error("mine.cases_failed", error=type(exc).__name__)
        return ActionResult("failed", say=(Text("mine.failed"),))
    log.info("mine.cases_listed", count=len(cases))
    return ActionResult("listed" if cases else "none", say=my_cases(cases))


async def report_status(ctx: ActionContext) -> ActionResult:
    """The status of the report whose reference was typed, if it was made from here."""
    reference = normalize_reference(ctx.inbound.text)
    quiet = ctx.session.silent
    try:
        incident = await ctx.services.storage.incidents.get(reference)
    except Exception as exc:
        log.error("mine.lookup_failed", error=type(exc).__name__)
        return ActionResult("failed", say=(Text("silent.lookup_failed" if quiet
                                                else "mine.failed"),))
    if incident is None or incident.reporter != ctx.session.conversation:
        # Someone else's reference gets the same answer as none at all.
        return ActionResult("unknown", say=(Text("silent.unknown" if quiet else "mine.unknown",
                                                 {"asked": reference}),))
    if quiet or incident.silent:
        return ActionResult("found", say=(silent_status(incident),))
    return ActionResult("found", say=(listed(incident),))


def register_my_reports_actions(registry: ActionRegistry) -> None:
    registry.add("my_reports", my_reports)
    registry.add("report_status", report_status)
