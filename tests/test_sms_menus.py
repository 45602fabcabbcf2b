"""Numbered menus for SMS responders, over real HTTP (the LINE and Twilio stand-ins).

A registered SMS responder works a whole incident by bare numbers ("1", "๒", "၃") picked
from the last menu sent to that number; the menu lives in the stores (any process, any
restart, sqlite and postgres+redis); an expired menu, a number not in it, and a menu the
incident has moved on from get a clear line, never a wrong action; "ESS-7K3F9 5" stays an
ETA of 5 minutes. Every card and menu reply fits two UCS-2 segments in every language.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES, create_app
from bot.i18n import Catalogs
from bot.types import Choice, Reply, Text
from channels.registry import ChannelRegistry
from channels.sms import SMS_CARD_SEGMENTS, responder_reply, sms_card
from channels.sms.menus import bare_number, menu_line, reply_actions
from channels.sms.segments import count_segments
from config.settings import Settings
from routing import lifecycle as lc
from routing.messages import card_choices, responder_actions, responder_card
from routing.ports import Target
from routing.responders import Actor
from tests import line_events as ev
from tests.line_standin import TOKEN, LineStandIn
from tests.test_responder_loops import NUMBER, REPORTER, Loop
from tests.test_sms import SECRET, SID, TwilioStandIn
from tests.test_sms import twilio as twilio

LANGS = ("th", "en", "my", "km", "lo")
THAI = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")
BURMESE = str.maketrans("0123456789", "၀၁၂၃၄၅၆၇၈၉")


@pytest.fixture(params=["sqlite", "postgres+redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, line_api: LineStandIn,
             twilio: tuple[TwilioStandIn, str]) -> Settings:
    shared: dict[str, str] = {}
    if request.param != "sqlite":
        shared = {"database_url": request.getfixturevalue("pg_url"),
                  "redis_url": request.getfixturevalue("redis_url")}
    return Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_LINE_CHANNEL_SECRET": ev.SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "ESS_LINE_API_URL": line_api.url, "ESS_SMS_TWILIO_AUTH_TOKEN": "t",
        "ESS_SMS_TWILIO_ACCOUNT_SID": SID, "ESS_SMS_TWILIO_FROM": "+6620000000",
        "ESS_SMS_TWILIO_API_URL": twilio[1], "ESS_SMS_GENERIC_SECRET": SECRET,
        "ESS_PUBLIC_URL": "https://ess.example"}, **shared)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["line", "sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(settings) as client:
        yield client


async def reported(loop: Loop) -> str:
    """The SMS number registered for Phitsanulok welfare, a LINE report there, its card
    sent: the reference."""
    services = loop.client.app[SERVICES]
    code = await services.storage.bindings.create_code("65", "welfare", 3600, datetime.now(UTC))
    await loop.text_in(f"/register {code}")
    me = ev.user(REPORTER)
    for event in (ev.follow(me), ev.postback(me, "threat"),
                  ev.location(me, lat=16.8211, lon=100.2659), ev.text(me, "081-234-5678"),
                  ev.postback(me, "send")):
        await loop.line_event(event)
    [incident] = await services.storage.incidents.recent()
    await loop.settle()
    return incident.reference


def number_of(answer: str, label: str) -> str:
    """The menu number in `answer` that stands for `label`."""
    found = re.search(rf"(\d+) {re.escape(label)}(?: |$)", answer)
    assert found, f"{label!r} is not in the menu of {answer!r}"
    return found.group(1)


def card_to(loop: Loop, reference: str) -> str:
    [card] = [m["Body"] for m in loop.sms.sent if m["To"] == NUMBER and reference in m["Body"]
              and "maps" in m["Body"]][-1:]
    return card


async def test_an_sms_responder_works_an_incident_by_numbers(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    reference = await reported(loop)
    text, _, link = card_to(loop, reference).rpartition("\n")
    assert text.endswith(f"{reference} ตอบเลข 1 รับเรื่อง") and link.startswith("https://")
    assert count_segments(text).count <= SMS_CARD_SEGMENTS

    answer = await loop.text_in("1")  # acknowledge
    assert await loop.status(reference) == lc.ACKNOWLEDGED
    assert reference in answer and count_segments(answer).count <= SMS_CARD_SEGMENTS
    assert "คุ้มครอง" in answer and "ซ้ำ" not in answer  # a duplicate needs its reference

    answer = await loop.text_in(number_of(answer, "ไป15นาที").translate(THAI))  # "๒"
    assert await loop.status(reference) == lc.EN_ROUTE
    assert "15" in answer and await eta(loop, reference) == 15

    # With a reference, the typed grammar wins: "5" is five minutes, not the fifth item.
    answer = await loop.text_in(f"{reference} 5")
    assert await loop.status(reference) == lc.EN_ROUTE and await eta(loop, reference) == 5

    answer = await loop.text_in(number_of(answer, "ถึงแล้ว"))
    assert await loop.status(reference) == lc.ON_SCENE
    assert "ไป15นาที" not in answer  # the menu offers only what on scene allows

    answer = await loop.text_in(number_of(answer, "สวัสดิการ").translate(BURMESE))  # "၃"
    assert await loop.status(reference) == lc.REFERRED
    incident = await client.app[SERVICES].storage.incidents.get(reference)
    assert incident is not None
    timeline = await client.app[SERVICES].storage.incidents.timeline(incident.id)
    referred = [e for e in timeline if e.kind == lc.REFERRED]
    assert len(referred) == 1 and referred[0].data["to"] == "welfare"
    assert "dispatch.done" not in answer  # said in words, never as a catalog key

    # The last menu was of an incident since closed: said so, nothing done.
    answer = await loop.text_in("1")
    assert "ปิดเรื่องไปแล้ว" in answer and await loop.status(reference) == lc.REFERRED
    await loop.settle()
    assert "ปิดเรื่อง" in loop.pushed(REPORTER)
    assert line_api.invalid == []


async def eta(loop: Loop, reference: str) -> int:
    incident = await loop.client.app[SERVICES].storage.incidents.get(reference)
    assert incident is not None
    return int(incident.details["dispatch"]["eta_minutes"])


async def test_a_second_process_picks_from_the_same_menu(
        settings: Settings, line_api: LineStandIn, twilio: tuple[TwilioStandIn, str]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(settings))
        reference = await reported(Loop(first, line_api, twilio[0]))
        if not settings.database_url:
            await stack.aclose()  # SQLite: one process at a time; this one restarts
        async with serving(settings) as second:
            loop = Loop(second, line_api, twilio[0])
            loop._ids = 100  # new gateway message ids: the first process took m-1, m-2
            answer = await loop.text_in("๑")
            assert reference in answer
            assert await loop.status(reference) == lc.ACKNOWLEDGED


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_out_of_range_expired_and_moved_on(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    services = client.app[SERVICES]
    reference = await reported(loop)
    menus, address = services.storage.menus, f"sms:{NUMBER}"

    # Expired: told so, with the command list; nothing done.
    menu = await menus.last(address)
    assert menu is not None and menu.expires_at > datetime.now(UTC) + timedelta(hours=1)
    await menus.remember(address, dataclasses.replace(
        menu, expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    answer = await loop.text_in("1")
    assert "หมดอายุ" in answer and "ESS-7K3F9 รับ" in answer
    assert await loop.status(reference) == lc.DISPATCHED
    await menus.remember(address, menu)

    acked = await loop.text_in("1")
    assert await loop.status(reference) == lc.ACKNOWLEDGED
    # Not in the menu: said so, and the same menu again.
    for wrong in ("99", "0"):
        answer = await loop.text_in(wrong)
        assert f"ไม่มีข้อ {wrong}" in answer and acked.splitlines()[-1] in answer
        assert await loop.status(reference) == lc.ACKNOWLEDGED

    # The incident moves on without this number's menu (an operator, for this responder):
    # the old "1" (ETA 10) is refused with a clear line and the menu on scene allows.
    assert number_of(acked, "ไป10นาที") == "1"
    done = await services.responders.act(reference, "on_scene", Actor(address), "console")
    assert done.outcome == "done"
    answer = await loop.text_in("1")
    assert "ในตอนนี้ไม่ได้" in answer and f"{reference} ตอบเลข 1 แก้ไขแล้ว" in answer
    assert await loop.status(reference) == lc.ON_SCENE
    # That new menu is the one a number now picks from.
    await loop.text_in("1")
    assert await loop.status(reference) == lc.RESOLVED


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_after_unregister_a_number_is_a_reporters_again(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    reference = await reported(loop)
    assert await client.app[SERVICES].storage.menus.last(f"sms:{NUMBER}") is not None
    await loop.text_in("/unregister")
    answer = await loop.text_in("1")
    assert reference not in answer
    assert await loop.status(reference) == lc.DISPATCHED


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_cards_and_menu_replies_fit_two_segments_in_every_language(
        client: TestClient[Any, Any], line_api: LineStandIn,
        twilio: tuple[TwilioStandIn, str]) -> None:
    loop = Loop(client, line_api, twilio[0])
    services = client.app[SERVICES]
    catalogs: Catalogs = services.catalogs
    reference = await reported(loop)
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    replies = {lc.DISPATCHED: ["dispatch.need_ack"],
               lc.ACKNOWLEDGED: ["dispatch.done.acknowledge", "dispatch.invalid",
                                 "sms.menu.out_of_range", "dispatch.remind.acknowledged"],
               lc.EN_ROUTE: ["dispatch.done.en_route", "dispatch.remind.en_route"],
               lc.ON_SCENE: ["dispatch.done.on_scene", "dispatch.repeated",
                             "dispatch.remind.on_scene"]}
    for lang in LANGS:
        target = Target(f"sms:{NUMBER}", "welfare", "", "", "", 0, 1.2, lang)
        card = responder_card(incident, target, 0)
        text = sms_card(card, catalogs).rpartition("\n")[0]
        assert count_segments(text).count <= SMS_CARD_SEGMENTS, (lang, text)
        choices = tuple(Choice(a.token, a.label) for a in card.actions)
        assert text.endswith(menu_line(reply_actions(Reply(Text(""), lang, choices)), lang,
                                       catalogs))
        for status, keys in replies.items():
            choices = tuple(Choice(v, Text(label)) for v, label in
                            card_choices(reference, responder_actions(status)))
            for key in keys:
                reply = Reply(Text(key, {"reference": reference, "minutes": 10, "number": 12}),
                              lang, choices)
                out = responder_reply(reply, catalogs)
                line = menu_line(reply_actions(reply), lang, catalogs)
                assert out.endswith("\n" + line), (lang, key, out)  # the menu is never cut
                assert count_segments(out).count <= SMS_CARD_SEGMENTS, (lang, key, out)
                assert "sms.menu." not in out and reference in out


@pytest.mark.parametrize(("text", "number"), [
    ("1", 1), (" 2 ", 2), ("๑", 1), ("၃", 3), ("១០", 10), ("12", 12), ("ESS-7K3F9 5", None),
    ("1a", None), ("", None), ("1234", None), ("-1", None), ("1.5", None), ("²", None)])
def test_only_a_bare_number_is_a_menu_pick(text: str, number: int | None) -> None:
    assert bare_number(text) == number
