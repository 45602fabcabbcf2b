"""The whole loop through the real application and the LINE stand-in.

A responder group binds itself to Phitsanulok with a one-time code; a citizen reports from
a pin in Phitsanulok; the dispatcher hands the incident card to the group; a responder taps
"acknowledge"; the reporter is told. Every LINE request is checked with the SDK's models.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from routing.messages import parse_token
from tests import line_events as ev
from tests.helpers import settle_app
from tests.line_standin import Call, LineStandIn

REPORTER = "U" + "1" * 32
RESPONDER = "U" + "2" * 32
GROUP = "C" + "3" * 32


@pytest.fixture
def client(line_client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return line_client


async def post(client: TestClient[Any, Any], event: dict[str, Any]) -> None:
    raw = ev.body(event)
    response = await client.post("/webhooks/line", data=raw, headers={
        "Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)})
    assert response.status == 200
    await settle_app(client.app)


async def delivered(client: TestClient[Any, Any], line_api: LineStandIn,
                    to: str, containing: str = "") -> list[Call]:
    """Pushes to `to` (with `containing` in them), once the dispatcher has made some.

    The app's own dispatcher task runs too; whichever claims a row delivers it, so the test
    waits for the outcome (bounded) rather than for one particular drain.
    """
    for _ in range(200):
        await client.app[SERVICES].dispatcher.drain_once()
        pushes = [c for c in line_api.ok("push")
                  if c.raw["to"] == to and containing in texts(c.raw)]
        if pushes:
            return pushes
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing was pushed to {to}")


def texts(call_raw: dict[str, Any]) -> str:
    return json.dumps(call_raw["messages"], ensure_ascii=False)


async def report(client: TestClient[Any, Any], silent: bool = False) -> str:
    me = ev.user(REPORTER)
    if silent:
        await post(client, ev.postback(me, "menu:silent"))
        await post(client, ev.postback(me, "go"))
        await post(client, ev.postback(me, "confinement"))
        await post(client, ev.location(me, lat=16.8211, lon=100.2659))
        await post(client, ev.postback(me, "no"))
    else:
        await post(client, ev.follow(me))
        await post(client, ev.postback(me, "threat"))
        await post(client, ev.location(me, lat=16.8211, lon=100.2659))
        await post(client, ev.text(me, "081-234-5678"))
        await post(client, ev.postback(me, "send"))
    [incident] = await client.app[SERVICES].storage.incidents.recent()
    return incident.reference


async def bind_group(client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = client.app[SERVICES]
    code = await services.storage.bindings.create_code("65", "police", 3600, datetime.now(UTC))
    await post(client, ev.text(ev.group(GROUP, RESPONDER), f"/register {code}"))
    assert "65" in texts(line_api.ok("reply")[-1].raw)


async def test_report_reaches_the_bound_group_and_the_acknowledgement_reaches_the_reporter(
        client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = client.app[SERVICES]
    await bind_group(client, line_api)
    reference = await report(client)
    [card] = await delivered(client, line_api, GROUP)
    flex = card.raw["messages"][0]
    assert flex["type"] == "flex" and reference in texts(card.raw)
    assert card.raw.get("notificationDisabled") is not True
    tokens = [b["action"]["data"] for b in flex["contents"]["footer"]["contents"]
              if b["action"]["type"] == "postback"]
    ack = next(t for t in tokens if (a := parse_token(t)) and a.action == "acknowledge")

    await post(client, ev.postback(ev.group(GROUP, RESPONDER), ack))
    incident = await services.storage.incidents.get(reference)
    assert incident is not None and incident.status == "acknowledged"
    assert await delivered(client, line_api, REPORTER), "the reporter is told an officer has it"
    assert line_api.invalid == []

    # A second tap by someone else is told who has it; the holder does not change.
    other = "U" + "4" * 32
    await post(client, ev.postback(ev.group(GROUP, other), ack))
    incident = await services.storage.incidents.get(reference)
    assert incident is not None and incident.status == "acknowledged"


async def test_a_silent_report_rings_for_responders_and_stays_quiet_for_the_reporter(
        client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    await bind_group(client, line_api)
    reference = await report(client, silent=True)
    replies_to_reporter = [c for c in line_api.ok("reply")
                           if c.raw["replyToken"] and "ESS-" in texts(c.raw)]
    assert all(c.raw.get("notificationDisabled") is True for c in replies_to_reporter)
    [card] = await delivered(client, line_api, GROUP)
    assert card.raw.get("notificationDisabled") is not True
    assert "ห้ามโทร" in texts(card.raw)  # do not call, chat only

    ack = f"act:ack:{reference}"
    await post(client, ev.postback(ev.group(GROUP, RESPONDER), ack))
    updates = await delivered(client, line_api, REPORTER)
    assert all(c.raw.get("notificationDisabled") is True for c in updates)


async def test_relay_chat_both_ways_without_either_identity(
        client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    await bind_group(client, line_api)
    reference = await report(client, silent=True)
    await delivered(client, line_api, GROUP)
    group = ev.group(GROUP, RESPONDER)
    # Only the holder may write to the reporter: acknowledge first.
    await post(client, ev.text(group, f"{reference}: are you hurt?"))
    assert "ESS-" in texts(line_api.ok("reply")[-1].raw)  # told to acknowledge first
    await post(client, ev.postback(group, f"act:ack:{reference}"))
    await post(client, ev.text(group, f"{reference.lower()}: are you hurt? stay where you are"))
    relayed = await delivered(client, line_api, REPORTER, "stay where you are")
    assert all(c.raw.get("notificationDisabled") is True for c in relayed)
    assert RESPONDER not in texts(relayed[0].raw) and GROUP not in texts(relayed[0].raw)

    # The reporter answers by typing; it reaches the group, not the reporter's id.
    await post(client, ev.text(ev.user(REPORTER), "no, but he is still here"))
    back = await delivered(client, line_api, GROUP, "still here")
    assert REPORTER not in texts(back[0].raw)
    # Ordinary group chatter without a reference is the responders' own business.
    replies_before = len(line_api.ok("reply"))
    await post(client, ev.text(group, "who is on shift tonight?"))
    assert len(line_api.ok("reply")) == replies_before
    assert line_api.invalid == []
