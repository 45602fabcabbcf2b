"""The engine on every backend: a whole report, and an idle conversation told it timed out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.services import Services
from bot.types import utcnow
from tests.helpers import choice, pin, receipts, start, text


@pytest.fixture
def services(services_on_every_backend: Services) -> Services:
    return services_on_every_backend


async def test_a_whole_report(services: Services) -> None:
    e = services.engine
    for msg in (start("u"), choice("u", "threat"), pin("u"), text("u", "081-234-5678")):
        await e.handle(msg)
    replies = await e.handle(choice("u", "send"))
    assert replies[0].text.key == "report.after.role"
    [receipt] = await receipts(services.storage, "test:u")
    assert receipt.text.key == "report.received"
    incident = await services.storage.incidents.get(receipt.text.params["reference"])
    assert incident is not None and incident.phone == "+66812345678"
    assert incident.reporter == "test:u"
    assert await e.handle(choice("u", "send", event_id="dup")) != []
    assert await e.handle(choice("u", "send", event_id="dup")) == []  # dedupe


async def test_an_idle_conversation_is_told_it_timed_out(services: Services) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    # Make the deadline pass: rewrite the session as if saved long ago.
    loaded = await services.storage.sessions.load("test:u", "probe")
    session = loaded.session
    assert session is not None and session.slots
    session.updated_at = utcnow() - timedelta(hours=2)
    session.expires_at = utcnow() - timedelta(hours=1)
    await services.storage.sessions.save(session, "probe")
    await services.sweeper.sweep_once()
    replies = await e.handle(pin("u"))
    assert replies[0].text.key == "common.expired"
