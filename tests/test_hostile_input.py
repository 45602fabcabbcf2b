"""Regression tests for the bad input a hostile run found (issue 9): each failed before."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bot.app import CHANNELS, SERVICES, create_app
from bot.types import Inbound, Kind, Location, LocationSource
from channels.bodies import MAX_EVENT_AGE, load_json, secret_equal
from channels.registry import ChannelRegistry
from channels.sms import generic_signature
from config.settings import Settings
from tests import line_events as ev
from tests.helpers import settle_app
from tests.line_standin import LineStandIn
from tests.test_webchat import hello, web_app

USER = "U" + "e" * 32
SECRET = "generic-secret"
NESTED = b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
NOT_RECEIVED = "NOT"


async def post_line(client: TestClient[Any, Any], raw: bytes) -> int:
    response = await client.post("/webhooks/line", data=raw, headers={
        "Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)})
    await settle_app(client.app)
    return response.status


def texts(line_api: LineStandIn) -> list[str]:
    return [m.get("text", "") for call in line_api.ok("reply") + line_api.ok("push")
            for m in call.raw["messages"]]


def failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]


@pytest.fixture
async def sms_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console",
                        extra={"ESS_SMS_GENERIC_SECRET": SECRET})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


# -- 1. a lone surrogate loses nothing ----------------------------------------------------

async def test_a_lone_surrogate_at_the_location_step_is_still_a_report(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    me = ev.user(USER)
    for event in (ev.follow(me), ev.postback(me, "threat"),
                  ev.text(me, "Bangkok \ud800 road"), ev.text(me, "0812345678"),
                  ev.postback(me, "send")):
        raw = ev.body(event)
        assert b"\\ud800" in raw or b"Bangkok" not in raw  # valid JSON, escaped surrogate
        assert await post_line(line_client, raw) == 200
    assert not any(NOT_RECEIVED in t for t in texts(line_api))
    assert any("ESS-" in t for t in texts(line_api))
    [incident] = await line_client.app[SERVICES].storage.incidents.recent()
    assert incident.location.text == "Bangkok \ufffd road"


def test_every_inbound_is_clean_whatever_the_channel_put_in() -> None:
    dirty = "a\ud800b\x00"
    inbound = Inbound("x\udfff", dirty, Kind.LOCATION, "id\ud801",
                      Location(1.0, 2.0, LocationSource.TEXT, text=dirty), hints={"k": dirty})
    assert inbound.sender == "a\ufffdb\ufffd" and inbound.channel == "x\ufffd"
    assert inbound.event_id == "id\ufffd"
    assert isinstance(inbound.payload, Location) and inbound.payload.text == "a\ufffdb\ufffd"
    assert inbound.hints == {"k": "a\ufffdb\ufffd"}
    assert Inbound("c", "s", Kind.TEXT, "e", dirty).text == "a\ufffdb\ufffd"


# -- 2. nesting, huge numbers, NaN ----------------------------------------------------------

async def test_deeply_nested_signed_bodies_are_400_not_500(
        line_client: TestClient[Any, Any], sms_client: TestClient[Any, Any]) -> None:
    assert await post_line(line_client, NESTED) == 400
    deep: Any = []
    for _ in range(40):  # json.loads takes this, but no LINE event is nested so deep
        deep = [deep]
    shallow_but_deep = json.dumps({"events": [{"type": "message", "x": deep}]}).encode()
    assert await post_line(line_client, shallow_but_deep) == 400
    for raw in (NESTED, b'{"id": "1", "from": "+66812345678", "text": ' + b"[" * 3000 + b"}"):
        response = await sms_client.post("/webhooks/sms/generic", data=raw, headers={
            "X-ESS-Signature": generic_signature(SECRET, raw)})
        assert response.status == 400


def test_json_that_python_takes_but_json_does_not_is_refused() -> None:
    for raw in ('{"lat": NaN}', '{"lat": Infinity}', '[-Infinity]', "[" * 40 + "]" * 40):
        with pytest.raises(ValueError):
            load_json(raw)
    assert load_json('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize("stamp", [b"1e20", b"100000000000000000000", b"-5", b'"soon"',
                                   b"true", b"1.5", b"null"])
async def test_a_huge_or_odd_timestamp_is_skipped_politely(
        line_client: TestClient[Any, Any], line_api: LineStandIn, stamp: bytes) -> None:
    good = ev.follow(ev.user(USER))
    odd = ev.text(ev.user(USER), "hello")
    marker = 987654321012
    odd["timestamp"] = marker
    raw = ev.body(odd, good).replace(str(marker).encode(), stamp)
    with capture_logs() as logs:
        assert await post_line(line_client, raw) == 200
    assert failures(logs) == []  # no traceback
    assert any(e["event"] == "line.webhook.bad_timestamp" for e in logs)
    assert len(line_api.ok("reply")) == 1  # the good event of the same body is answered


async def test_web_chat_refuses_odd_numbers_and_nesting(settings: Settings) -> None:
    async with TestClient(TestServer(web_app(settings), host="127.0.0.1")) as client:
        ws, _ = await hello(client)
        await ws.send_str("[" * 4000 + "]" * 4000)  # under the frame limit, past recursion
        assert (await ws.receive_json(timeout=5))["code"] == "not_json"
        for lat in ("NaN", "1e999", '"x"', "true", "95"):
            await ws.send_str(f'{{"type": "location", "id": "l{lat}", "lat": {lat}, "lon": 1}}')
            assert (await ws.receive_json(timeout=5))["code"] in ("bad_location", "not_json")
        # A non-ASCII token is a forged one: a new conversation, not a dead socket.
        ws2, welcome = await hello(client, token="ก" * 20 + ".x.ข")
        assert welcome["token"] and welcome["token"] != "ก" * 20 + ".x.ข"
        await ws.close()
        await ws2.close()


async def test_sms_location_page_refuses_odd_numbers(sms_client: TestClient[Any, Any]) -> None:
    channel = sms_client.app[CHANNELS].get("sms")
    nonce = channel._new_link("+66812345678")
    for body in ('{"lat": NaN, "lon": 1}', '{"lat": 1e999, "lon": 1}', '{"lat": true, "lon": 1}',
                 "[" * 3000):
        response = await sms_client.post(f"/sms/locate/{nonce}", data=body)
        assert response.status == 400


# -- 3. a replay after the dedupe window ---------------------------------------------------

async def test_a_validly_signed_replay_older_than_the_dedupe_window_is_refused(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    old = int((time.time() - MAX_EVENT_AGE.total_seconds() - 60) * 1000)
    with capture_logs() as logs:
        assert await post_line(line_client, ev.body(ev.follow(ev.user(USER), timestamp=old),
                                                    ev.postback(ev.user(USER), "threat",
                                                                timestamp=old))) == 200
    assert line_api.calls == []
    stale = [e for e in logs if e["event"] == "line.webhook.stale_event"]
    assert len(stale) == 2 and all("h old" in e["reason"] for e in stale)
    assert USER not in json.dumps(logs, default=str)
    # Inside the window (a redelivery an hour late) it is handled as ever.
    recent = int((time.time() - 3600) * 1000)
    assert await post_line(line_client, ev.body(ev.follow(ev.user(USER), timestamp=recent))) \
        == 200
    assert line_api.ok("push") or line_api.ok("reply")


# -- 4. secrets compared as bytes ----------------------------------------------------------

async def test_non_ascii_signatures_are_401_not_a_crash(
        line_client: TestClient[Any, Any], sms_client: TestClient[Any, Any]) -> None:
    raw = ev.body(ev.follow(ev.user(USER)))
    for signature in ("ลายเซ็น", "sha256=ก", "\u00e9" * 44):
        response = await line_client.post("/webhooks/line", data=raw, headers={
            "X-Line-Signature": signature})
        assert response.status == 401
        response = await sms_client.post("/webhooks/sms/generic", data=b"{}", headers={
            "X-ESS-Signature": signature})
        assert response.status == 401
    assert not secret_equal("ก", "ข") and secret_equal("ก", "ก".encode())
    assert not secret_equal("\ud800", "x")
