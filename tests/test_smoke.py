"""The shortest path through the whole stack: one complete report, stored."""

from __future__ import annotations

from bot.services import Services
from tests.helpers import choice, pin, start, text


async def test_complete_report_is_stored(services: Services) -> None:
    engine = services.engine
    await engine.handle(start("u1"))
    await engine.handle(choice("u1", "threat"))
    await engine.handle(pin("u1"))
    await engine.handle(text("u1", "081-234-5678"))
    replies = await engine.handle(choice("u1", "send"))
    reference = replies[0].text.params["reference"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert incident.phone == "+66812345678"
    assert incident.type == "threat"
