""""My reports" and reference lookups in the core, on a controllable clock: what is listed,
what never is (silent reports), and what a typed reference answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot.incident import Incident
from bot.render import render_text
from bot.services import Services
from bot.types import Reply
from bot.wiring import open_services
from config.settings import Settings
from routing.responders import Actor
from routing.sender import RecordingSender
from tests.dispatch_kit import PHITSANULOK, Clock, settle
from tests.helpers import choice, pin, start, text

STATION = "console:st6501"


@dataclass
class Rig:
    services: Services
    clock: Clock

    async def say(self, inbound: object) -> list[Reply]:
        return await self.services.engine.handle(inbound)  # type: ignore[arg-type]

    def shown(self, replies: list[Reply]) -> str:
        return "\n".join(render_text(r, self.services.catalogs) for r in replies)


@pytest.fixture
async def rig(settings: Settings) -> AsyncIterator[Rig]:
    clock = Clock()
    services = await open_services(settings, sender=RecordingSender(), clock=clock)
    try:
        yield Rig(services, clock)
    finally:
        await services.close()


def keys(replies: list[Reply]) -> list[str]:
    return [r.text.key for r in replies]


async def plain(rig: Rig, sender: str, kind: str = "threat", **hints: str) -> Incident:
    await rig.say(start(sender, "report", **hints))
    await rig.say(choice(sender, kind))
    await rig.say(pin(sender, *PHITSANULOK))
    await rig.say(text(sender, "081-234-5678"))
    replies = await rig.say(choice(sender, "send"))
    found = await rig.services.storage.incidents.get(replies[0].text.params["reference"])
    assert found is not None
    return found


async def silent(rig: Rig, sender: str) -> Incident:
    await rig.say(start(sender, "silent"))
    await rig.say(choice(sender, "go"))
    await rig.say(choice(sender, "sexual_risk"))
    await rig.say(pin(sender, *PHITSANULOK))
    replies = await rig.say(choice(sender, "no"))
    found = await rig.services.storage.incidents.get(replies[0].text.params["reference"])
    assert found is not None
    return found


async def test_my_reports_lists_own_plain_reports_never_a_silent_one(rig: Rig) -> None:
    first = await plain(rig, "u1", "threat", lang="en")
    rig.clock.advance(minutes=5)
    hidden = await silent(rig, "u1")
    rig.clock.advance(minutes=5)
    second = await plain(rig, "u1", "confinement")
    await plain(rig, "u2", "gathering")  # someone else's
    await settle(rig.services)
    await rig.services.responders.act(first.reference, "ack", Actor(STATION), "test")
    await rig.services.responders.act(first.reference, "en_route", Actor(STATION), "test",
                                      eta_minutes=12)
    await settle(rig.services)

    replies = await rig.say(text("u1", "MY"))  # typed, at the optional questions
    assert keys(replies) == ["mine.title", "mine.item", "mine.item", "mine.hint",
                             "report.after.role"]
    shown = rig.shown(replies)
    assert shown.index(second.reference) < shown.index(first.reference)  # newest first
    assert hidden.reference not in shown
    assert "Confined or detained" in shown and "Threatened with harm" in shown
    assert "Received, more responders have been alerted" in shown  # escalated meanwhile
    assert "Phitsanulok" in shown and "is on the way, about 12 min" in shown  # the station
    # Nothing personal beyond what the reporter entered; not even that: no phone, no place.
    for personal in ("081", "812345678", "16.82", "100.26"):
        assert personal not in shown
    # The button (rich menu, web) does the same as the word.
    assert keys(await rig.say(choice("u1", "cmd:mine")))[:1] == ["mine.title"]


async def test_a_silent_reporter_asks_with_the_reference_and_gets_neutral_words(
        rig: Rig) -> None:
    incident = await silent(rig, "s1")
    await settle(rig.services)
    queued = await rig.services.storage.outbox.pending()
    # Inside the silent flow "my reports" is not offered, and a reference is never relayed.
    replies = await rig.say(text("s1", "my"))
    assert keys(replies) == ["common.command_unavailable", "silent.waiting.prompt"]
    replies = await rig.say(text("s1", incident.reference.lower().replace("-", " ")))
    assert keys(replies) == ["status.silent.dispatched", "silent.waiting.prompt"]
    assert all(r.silent for r in replies)
    assert await rig.services.storage.outbox.pending() == queued  # nothing went anywhere
    await rig.services.responders.act(incident.reference, "ack", Actor(STATION), "test")
    replies = await rig.say(text("s1", incident.reference))
    assert keys(replies)[0] == "status.silent.acknowledged"
    assert rig.shown(replies[:1]) == f"{incident.reference}: รับแล้ว"
    # Outside any flow the silent report is still never listed, and still answers neutrally.
    await rig.say(choice("s1", "cmd:cancel"))  # not offered in waiting: prompt again
    rig.clock.advance(hours=3)
    await rig.services.sweeper.sweep_once()
    replies = await rig.say(text("s1", "ของฉัน"))
    assert keys(replies)[-2:] == ["mine.none", "mine.hint"]
    assert keys(await rig.say(text("s1", incident.reference)))[-1] == \
        "status.silent.acknowledged"


async def test_a_reference_answers_only_its_own_conversation(rig: Rig) -> None:
    incident = await plain(rig, "u1")
    replies = await rig.say(text("intruder", incident.reference))
    assert keys(replies) == ["mine.unknown"]  # the same as a reference that does not exist
    assert keys(await rig.say(text("intruder", "ESS-33333"))) == ["mine.unknown"]
    assert "common.greeting" not in keys(replies)  # and no report was started
    replies = await rig.say(text("u1", incident.reference))
    assert keys(replies) == ["mine.item", "report.after.role"]


async def test_outside_a_flow_my_reports_starts_nothing(rig: Rig) -> None:
    await plain(rig, "u1")
    await rig.say(choice("u1", "skip"))
    await rig.say(text("u1", "เริ่มใหม่"))
    assert keys(await rig.say(text("u1", "ยกเลิก"))) == ["common.cancelled"]
    replies = await rig.say(text("u1", "ของฉัน"))
    assert keys(replies) == ["mine.title", "mine.item", "mine.hint"]
    # The next message starts a report as usual.
    assert "common.greeting" in keys(await rig.say(text("u1", "hello")))


async def test_only_the_last_30_days(rig: Rig) -> None:
    await plain(rig, "u1")
    rig.clock.advance(days=31)
    replies = await rig.say(text("u1", "my"))
    assert keys(replies)[-2:] == ["mine.none", "mine.hint"]


@pytest.mark.parametrize(("lang", "agency"), [("th", "สถานีตำรวจ"), ("en", "Police Station"),
                                              ("my", "ရဲ"), ("km", "ប៉ូលិស"),
                                              ("lo", "ຕຳຫຼວດ")])
async def test_who_has_it_is_named_in_the_reporters_language(rig: Rig, lang: str,
                                                              agency: str) -> None:
    incident = await plain(rig, "u1", lang=lang)
    await settle(rig.services)
    await rig.services.responders.act(incident.reference, "ack", Actor(STATION), "test")
    shown = rig.shown(await rig.say(choice("u1", "cmd:mine")))
    assert agency in shown
    # ...and the status update said the same.
    await settle(rig.services)
    sent = rig.services.dispatcher.sender.sent  # type: ignore[attr-defined]
    update = [s for s in sent if s.address == "test:u1"][-1]
    assert update.reply.text.key == "status.plain.acknowledged"
    assert agency in render_text(update.reply, rig.services.catalogs)
