"""A volunteer's whole case intake on LINE, through the stand-in that checks every request
with the SDK's own models: register in the 1:1 chat, answer by taps, get the case number."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.types import utcnow
from routing.agencies import VOLUNTEER
from tests import line_events as ev
from tests.line_standin import LineStandIn
from tests.test_line import post

VOLUNTEER_ID = "U" + "v" * 32


async def test_a_volunteer_reports_a_household_on_line(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]
    line_api.profiles[VOLUNTEER_ID] = {"displayName": "อพม.", "language": "en"}
    me = ev.user(VOLUNTEER_ID)
    code = await services.storage.bindings.create_code("6501", VOLUNTEER, 3600, utcnow())
    assert await post(line_client, ev.text(me, f"/register {code}")) == 200
    assert "อพม." in line_api.texts()[-1]
    steps = [ev.follow(me), ev.postback(me, "household"), ev.text(me, "2499"),
             ev.postback(me, "female"), ev.postback(me, "skip:identity"),
             ev.postback(me, "child"), ev.text(me, "12"), ev.postback(me, "male"),
             ev.postback(me, "done"), ev.location(me), ev.postback(me, "dropout_risk"),
             ev.postback(me, "done"), ev.text(me, "school uniform and food"),
             ev.postback(me, "vital_interest"), ev.postback(me, "send")]
    for step in steps[:10]:
        assert await post(line_client, step) == 200
    # A photo of documents at the hardships step: said plainly that it cannot be received
    # yet, then the same question again; nothing answered so far is lost.
    assert await post(line_client, ev.image(me)) == 200
    said = line_api.texts()[-2:]
    assert "Photos cannot be received here yet" in said[0]
    assert "Which hardships?" in said[1]
    for step in steps[10:]:
        assert await post(line_client, step) == 200
    assert "Case CASE-" in line_api.texts()[-1]
    assert line_api.invalid == []
    [case] = await services.storage.cases.recent()
    assert case.consent is not None and case.consent.ground == "vital_interest"
    assert case.flags == ["zero_dropout"] and len(case.members) == 1
    assert case.volunteer == f"line:{VOLUNTEER_ID}"
