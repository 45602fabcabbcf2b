"""Responders on two channels at once, over real HTTP: a LINE group (through the LINE
stand-in) and an SMS responder number (through a Twilio stand-in), both registered with
`/register CODE`. A citizen reports on LINE; both get the card; the SMS responder
acknowledges first, the group is told who has it, the reporter is told in Thai with the
agency's Thai name; ETA, on scene and resolve come by SMS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES, create_app
from channels.registry import ChannelRegistry
from channels.sms import generic_signature
from channels.sms.segments import count_segments
from config.settings import Settings
from routing import lifecycle as lc
from tests import line_events as ev
from tests.helpers import settle_app
from tests.line_standin import TOKEN, LineStandIn
from tests.test_sms import SECRET, SID, TwilioStandIn
from tests.test_sms import twilio as twilio

REPORTER = "U" + "1" * 32
RESPONDER = "U" + "2" * 32
GROUP = "C" + "3" * 32
NUMBER = "+66891112222"  # the welfare officer's phone
WELFARE_TH = "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัดพิษณุโลก"


@asynccontextmanager
async def serving(tmp_path: Path, line_api: LineStandIn, twilio: tuple[TwilioStandIn, str],
                  **settings_: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """The service with LINE and SMS on, against the stand-ins."""
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_LINE_CHANNEL_SECRET": ev.SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "ESS_LINE_API_URL": line_api.url, "ESS_SMS_TWILIO_AUTH_TOKEN": "t",
        "ESS_SMS_TWILIO_ACCOUNT_SID": SID, "ESS_SMS_TWILIO_FROM": "+6620000000",
        "ESS_SMS_TWILIO_API_URL": twilio[1], "ESS_SMS_GENERIC_SECRET": SECRET,
        "ESS_PUBLIC_URL": "https://ess.example"}, **settings_)
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["line", "sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
async def client(tmp_path: Path, line_api: LineStandIn, twilio: tuple[TwilioStandIn, str]
                 ) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(tmp_path, line_api, twilio) as test_client:
        yield test_client


class Loop:
    def __init__(self, client: TestClient[Any, Any], line: LineStandIn,
                 sms: TwilioStandIn) -> None:
        self.client, self.line, self.sms = client, line, sms
        self._ids = 0

    async def line_event(self, event: dict[str, Any]) -> None:
        raw = ev.body(event)
        response = await self.client.post("/webhooks/line", data=raw, headers={
            "Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)})
        assert response.status == 200
        await settle_app(self.client.app)

    async def citizen_reports(self) -> None:
        """A whole report on LINE from a pin in Phitsanulok."""
        me = ev.user(REPORTER)
        for event in (ev.follow(me), ev.postback(me, "threat"),
                      ev.location(me, lat=16.8211, lon=100.2659), ev.text(me, "081-234-5678"),
                      ev.postback(me, "send")):
            await self.line_event(event)

    async def text_in(self, text: str) -> str:
        """An SMS from the responder's number; the answer SMS it got back."""
        self._ids += 1
        before = len(self.sms.sent)
        body = json.dumps({"id": f"m-{self._ids}", "from": NUMBER, "text": text}).encode()
        response = await self.client.post("/webhooks/sms/generic", data=body, headers={
            "X-ESS-Signature": generic_signature(SECRET, body)})
        assert response.status == 200
        await settle_app(self.client.app)
        answers = [m for m in self.sms.sent[before:] if m["To"] == NUMBER]
        assert answers, f"no answer to {text!r}"
        return answers[-1]["Body"]

    async def settle(self) -> None:
        for _ in range(5):
            await self.client.app[SERVICES].dispatcher.drain_once()
            await asyncio.sleep(0.02)

    def pushed(self, to: str) -> str:
        return json.dumps([c.raw["messages"] for c in self.line.ok("push")
                           if c.raw["to"] == to], ensure_ascii=False)

    async def status(self, reference: str) -> str:
        incident = await self.client.app[SERVICES].storage.incidents.get(reference)
        assert incident is not None
        return incident.status


async def test_a_line_group_and_an_sms_responder_work_one_incident(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    bindings = client.app[SERVICES].storage.bindings
    now = datetime.now(UTC)
    # Both register with a one-time code: the group on LINE, the officer by SMS.
    police = await bindings.create_code("65", "police", 3600, now)
    await loop.line_event(ev.text(ev.group(GROUP, RESPONDER), f"/register {police}"))
    welfare = await bindings.create_code("65", "welfare", 3600, now)
    assert "65" in await loop.text_in(f"/register {welfare}")

    # A citizen reports on LINE from a pin in Phitsanulok.
    await loop.citizen_reports()
    [incident] = await client.app[SERVICES].storage.incidents.recent()
    reference = incident.reference
    await loop.settle()

    # Both cards name the province and the station it was routed to.
    group_card = loop.pushed(GROUP)
    assert reference in group_card and "พิษณุโลก" in group_card
    assert "สถานีตำรวจภูธรเมืองพิษณุโลก" in group_card
    [sms_card] = [m["Body"] for m in twilio[0].sent if m["To"] == NUMBER and reference in m["Body"]]
    text, _, link = sms_card.rpartition("\n")
    assert count_segments(text).count <= 2 and link.startswith("https://www.google.com/maps")
    assert "081-234-5678" in text and text.endswith(f"{reference} ตอบเลข 1 รับเรื่อง")  # the menu

    # The SMS responder acknowledges first; the group is told who has it.
    assert reference in await loop.text_in(f"{reference} ack")
    assert await loop.status(reference) == lc.ACKNOWLEDGED
    await loop.settle()
    assert WELFARE_TH in loop.pushed(GROUP)  # "taken by" the welfare office
    told = loop.pushed(REPORTER)
    assert f"ความคืบหน้า {reference}: {WELFARE_TH}" in told  # Thai, with the Thai name
    assert "welfare" not in told
    # The group can no longer take it.
    tap = ev.postback(ev.group(GROUP, RESPONDER), f"act:ack:{reference}")
    await loop.line_event(tap)
    assert await loop.status(reference) == lc.ACKNOWLEDGED

    # ETA (Thai digits), on scene (a Thai word) and resolve, all by SMS.
    assert "10" in await loop.text_in(f"{reference} eta ๑๐")
    assert await loop.status(reference) == lc.EN_ROUTE
    await loop.text_in(f"{reference} ถึง")
    assert await loop.status(reference) == lc.ON_SCENE
    await loop.text_in(f"{reference} resolved")
    assert await loop.status(reference) == lc.RESOLVED
    await loop.settle()
    assert "ปิดเรื่อง" in loop.pushed(REPORTER) or "closed" in loop.pushed(REPORTER)
    assert line_api.invalid == []


async def test_sms_responders_get_the_command_list_and_outsiders_are_refused(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    bindings = client.app[SERVICES].storage.bindings
    code = await bindings.create_code("10", "welfare", 3600, datetime.now(UTC))
    await loop.text_in(f"/register {code}")
    # A registered number is a responder: chatter gets the commands, not a report flow.
    answer = await loop.text_in("hello?")
    assert "ESS-7K3F9 รับ" in answer
    await loop.citizen_reports()
    [incident] = await client.app[SERVICES].storage.incidents.recent()
    # Registered for Bangkok, not told of a Phitsanulok report: refused, clearly.
    assert "ไม่ได้รับแจ้ง" in await loop.text_in(f"{incident.reference} ack")
    assert "หยุดส่งแจ้งเหตุ" in await loop.text_in("/unregister")
    # No longer a responder: the same number is a reporter again.
    assert "ESS-7K3F9 รับ" not in await loop.text_in("hello?")
    assert await bindings.for_address(f"sms:{NUMBER}") == []


@pytest.fixture
async def quick_client(tmp_path: Path, line_api: LineStandIn,
                       twilio: tuple[TwilioStandIn, str]) -> AsyncIterator[TestClient[Any, Any]]:
    """As `client`, with escalation after one second of silence."""
    async with serving(tmp_path, line_api, twilio, escalate_after=1.0) as test_client:
        yield test_client


async def test_an_escalation_card_reaches_the_next_level_marked_as_one(
        quick_client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str], capsys: pytest.CaptureFixture[str]) -> None:
    loop = Loop(quick_client, line_api, twilio[0])
    bindings = quick_client.app[SERVICES].storage.bindings
    now = datetime.now(UTC)
    police = await bindings.create_code("65", "police", 3600, now)
    await loop.line_event(ev.text(ev.group(GROUP, RESPONDER), f"/register {police}"))
    # The province's 191 centre answers by SMS: it is told at the first escalation only.
    centre = await bindings.create_code("65", "191", 3600, now)
    await loop.text_in(f"/register {centre}")
    await loop.citizen_reports()
    [incident] = await quick_client.app[SERVICES].storage.incidents.recent()
    reference = incident.reference
    await loop.settle()
    assert reference in loop.pushed(GROUP)  # the first card, to the station's group
    cards: list[str] = []
    for _ in range(300):  # bounded: nobody acknowledges, so the clock runs out
        cards = [m["Body"] for m in twilio[0].sent if m["To"] == NUMBER and reference in m["Body"]]
        if cards:
            break
        await loop.settle()
        await asyncio.sleep(0.05)
    [card] = cards
    assert card.startswith(f"⚠️ ยกระดับ {reference}")  # marked as an escalation, never "new"
    # The sample directory's next station prints its card: the whole card says who was
    # silent (an SMS keeps its two segments by cutting that line first).
    printed = capsys.readouterr().out
    assert f"⚠️ ยกระดับ {reference}" in printed and "ยกระดับ: ไม่มีผู้รับเรื่องที่" in printed
    assert (await quick_client.app[SERVICES].storage.incidents.get(reference)).status == \
        lc.ESCALATED
