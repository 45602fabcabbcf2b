"""LINE: the reporter's language from their profile (through the stand-in), and "my reports"
from the rich menu."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.i18n import Catalogs
from bot.types import Text
from tests import line_events as ev
from tests.line_standin import LineStandIn
from tests.test_line import post

USER = "U" + "c" * 32
CATALOGS = Catalogs.load()


def said(lang: str, key: str) -> str:
    return CATALOGS.render(lang, Text(key)).split("{")[0].strip()


@pytest.mark.parametrize(("profile_lang", "lang"), [
    ("my", "my"), ("km", "km"), ("lo", "lo"), ("en", "en"), ("lo-LA", "lo"),
    ("zh-Hant", "th"),  # a language we have no catalog for: the service default
])
async def test_the_profile_language_is_the_conversation_language(
        line_client: TestClient[Any, Any], line_api: LineStandIn, profile_lang: str,
        lang: str) -> None:
    line_api.profiles[USER] = {"displayName": "Someone", "language": profile_lang}
    me = ev.user(USER)
    await post(line_client, ev.follow(me))
    assert line_api.texts()[0] == CATALOGS.render(lang, Text("common.greeting"))
    await post(line_client, ev.postback(me, "threat"))
    assert said(lang, "report.location.prompt") in line_api.texts()[-1]
    assert line_api.profile_calls == [USER]  # read once, then cached
    assert line_api.invalid == []


async def test_the_language_command_wins_over_the_profile(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    line_api.profiles[USER] = {"displayName": "Someone", "language": "km"}
    me = ev.user(USER)
    await post(line_client, ev.follow(me))
    await post(line_client, ev.text(me, "ภาษา"))  # a Thai word works in a Khmer chat
    picker = line_api.ok("reply")[-1].raw["messages"][-1]
    labels = [i["action"]["label"] for i in picker["quickReply"]["items"]]
    assert labels == ["ไทย", "English", "ខ្មែរ", "ລາວ", "မြန်မာ"]
    await post(line_client, ev.postback(me, "lang:lo"))
    assert said("lo", "report.type.prompt") in line_api.texts()[-1]


@pytest.mark.parametrize("failure", [500, 429, 404])
async def test_a_profile_that_cannot_be_read_never_blocks_a_report(
        line_client: TestClient[Any, Any], line_api: LineStandIn, failure: int) -> None:
    if failure != 404:  # 404: the user is simply unknown to the stand-in
        line_api.profile_failures.append(failure)
    me = ev.user(USER)
    await post(line_client, ev.follow(me))
    for step in (ev.postback(me, "threat"), ev.location(me), ev.text(me, "0812345678"),
                 ev.postback(me, "send")):
        await post(line_client, step)
    assert any("ESS-" in t for t in line_api.texts())
    assert line_api.texts()[0] == CATALOGS.render("th", Text("common.greeting"))
    assert len(line_api.profile_calls) == 1  # the failure is cached too: no call per message


async def test_my_reports_from_the_rich_menu_never_lists_a_silent_report(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    line_api.profiles[USER] = {"displayName": "Someone", "language": "my"}
    me = ev.user(USER)
    await post(line_client, ev.postback(me, "menu:silent"))
    for value in ("go", "threat"):
        await post(line_client, ev.postback(me, value))
    await post(line_client, ev.location(me))
    await post(line_client, ev.postback(me, "no"))
    [hidden] = await line_client.app[SERVICES].storage.incidents.recent()
    await post(line_client, ev.postback(me, "menu:mine"))  # inside the silent flow
    assert said("my", "common.command_unavailable") in line_api.texts()[-2]
    await post(line_client, ev.text(me, hidden.reference))  # the reference: neutral status
    assert line_api.texts()[-2] == CATALOGS.render(
        "my", Text("status.silent.dispatched", {"reference": hidden.reference}))
    assert line_api.ok("reply")[-1].raw["notificationDisabled"] is True

    await post(line_client, ev.postback(me, "menu:report"))
    for step in (ev.postback(me, "confinement"), ev.location(me), ev.text(me, "0812345678"),
                 ev.postback(me, "send")):
        await post(line_client, step)
    incidents = await line_client.app[SERVICES].storage.incidents.recent()
    [shown] = [i for i in incidents if not i.silent]
    await post(line_client, ev.postback(me, "menu:mine"))
    listing = "\n".join(m["text"] for m in line_api.ok("reply")[-1].raw["messages"])
    assert said("my", "mine.title") in listing
    assert shown.reference in listing and hidden.reference not in listing
    assert said("my", "incident.confinement") in listing
    assert line_api.invalid == []
