"""Shared set-up for the routing and dispatch tests: a controllable clock, a recording
channel, and reports submitted through the real engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.incident import Incident
from bot.outbound import ResponderCard
from bot.services import Services
from bot.types import Reply, utcnow
from routing.agencies import agency_kind
from routing.messages import outbound, reporter_update
from tests.helpers import choice, pin, start, text

PHITSANULOK = (16.8211, 100.2659)
GULF_OF_THAILAND = (11.5, 100.5)


class Clock:
    """Real time plus a shift the test moves forward; rows written with the wall clock stay
    due, and nothing waits on real time."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.shift

    def advance(self, **kw: float) -> None:
        self.shift += timedelta(**kw)


async def report(services: Services, sender: str, lat: float = PHITSANULOK[0],
                 lon: float = PHITSANULOK[1], phone: str = "081-234-5678") -> Incident:
    engine = services.engine
    await engine.handle(start(sender))
    await engine.handle(choice(sender, "threat"))
    await engine.handle(pin(sender, lat, lon))
    await engine.handle(text(sender, phone))
    replies = await engine.handle(choice(sender, "send"))
    reference = replies[0].text.params["reference"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    return incident


async def silent_report(services: Services, sender: str) -> Incident:
    engine = services.engine
    await engine.handle(start(sender, "silent"))
    await engine.handle(choice(sender, "go"))
    await engine.handle(choice(sender, "sexual_risk"))
    await engine.handle(pin(sender, *PHITSANULOK))
    replies = await engine.handle(choice(sender, "no"))
    reference = replies[0].text.params["reference"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    return incident


async def settle(services: Services, rounds: int = 5) -> None:
    """Run the dispatcher until nothing is due (bounded)."""
    for _ in range(rounds):
        if not await services.dispatcher.run_once():
            return


def reset_logging() -> None:
    """`ess` commands configure logging onto the stream pytest captures and then closes;
    put structlog back so later tests do not write to a closed file."""
    import structlog

    structlog.reset_defaults()


@dataclass
class Routed:
    """What the core really sends for one routed incident, for the channel test kit."""

    incident: Incident
    card: ResponderCard
    escalation: ResponderCard
    update: Reply


async def routed(services: Services, sender: str = "kit") -> Routed:
    incident = await report(services, sender)
    address = incident.details["dispatch"]["notified"][0]
    card = outbound(services.responders.card_for(incident, address))
    escalation = outbound(services.responders.card_for(incident, address, level=1))
    update = outbound(reporter_update(incident, "acknowledged", agency=agency_kind("police")))
    assert isinstance(card, ResponderCard) and isinstance(escalation, ResponderCard)
    assert isinstance(update, Reply)
    return Routed(incident, card, escalation, update)
