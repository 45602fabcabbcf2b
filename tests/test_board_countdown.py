"""The board's escalation countdown runs from the delivery of the current level's card (as
the escalation timer does), not from the report: nothing is due before a card arrives."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.services import Services
from channels.board.views import row
from tests.dispatch_kit import report


async def test_the_countdown_starts_when_the_card_is_delivered(services: Services) -> None:
    incident = await report(services, "web:reporter-1")
    after = services.settings.escalate_after
    waiting = row(incident, services.catalogs, "en", after)
    assert waiting.status == "new" and waiting.escalate_at is None  # not delivered yet
    cards = [n for n in await services.storage.outbox.for_incident(incident.id)
             if n.kind == "incident.new"]
    assert cards
    await services.responders.delivered(cards[0])  # what the dispatcher calls on delivery
    stored = await services.storage.incidents.get(incident.reference)
    assert stored is not None
    delivered = row(stored, services.catalogs, "en", after)
    armed_at = datetime.fromisoformat(stored.details["dispatch"]["armed_at"])
    assert armed_at >= incident.created_at
    assert delivered.escalate_at is not None
    assert datetime.fromisoformat(delivered.escalate_at) == armed_at + timedelta(seconds=after)
    timers = [t for t in await services.storage.timers.claim_due(
        "test", armed_at + timedelta(seconds=after + 1), 10, 30) if t.kind == "escalate"]
    assert len(timers) == 1  # the escalation itself is due when the board says, to a ms
    assert abs((timers[0].due_at - datetime.fromisoformat(delivered.escalate_at))
               .total_seconds()) < 0.01
