"""Property-based fuzzing (hypothesis): hostile webhooks and answers never break anything.

Signed LINE and SMS bodies carrying any Unicode (lone surrogates and NUL too), any nesting
and any number go to the real aiohttp application: never a 5xx, never an error or a traceback
in the logs. Any answer at any step of the shipped flows: never an exception, never a
"NOT received" caused by the input. Example counts stay modest: the suite must stay fast.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.services import Services
from bot.types import Inbound, Kind, Location, LocationSource
from channels.sms import generic_signature
from tests import line_events as ev
from tests.helpers import choice, pin, settle_app, start, text
from tests.test_hostile_input import SECRET, sms_client  # noqa: F401 - a fixture

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FAILED_REPLIES = {"common.unavailable", "silent.not_received"}

ANY_TEXT = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]),
                             st.sampled_from("\x00\u200b\u202e๐٠")), max_size=60)
NUMBERS = st.one_of(st.integers(), st.integers(min_value=10**18, max_value=10**40),
                    st.integers(max_value=-(10**18)),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.floats(min_value=1e300, allow_infinity=False))
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)), max_leaves=12)


class Raw:
    """Text spliced into the body as it is: nesting too deep to build as objects, and the
    NaN / Infinity / 1e999 that Python's parser takes although JSON has no such thing."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:20]!r}, {len(self.text)} chars)"


HOSTILE = st.one_of(JSON, st.integers(30, 5000).map(lambda d: Raw("[" * d + "]" * d)),
                    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0"]).map(Raw))
DEEP_MARK = "__deep__"


def errors(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e
            or "exception" in e]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What aiohttp itself logged at error level (an unhandled exception in a handler)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def dumps(value: Any) -> bytes:
    # Python's json writes lone surrogates as \\ud800 escapes: valid JSON, as LINE could send.
    deep: list[Raw] = []

    def mark(v: Any) -> Any:
        if isinstance(v, Raw):
            deep.append(v)
            return DEEP_MARK
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    raw = json.dumps(mark(value), allow_nan=False).encode()
    for d in deep:
        raw = raw.replace(f'"{DEEP_MARK}"'.encode(), d.text.encode(), 1)
    return raw


# -- webhooks -------------------------------------------------------------------------------

PATHS: list[tuple[str, ...]] = [
    ("timestamp",), ("type",), ("source",), ("source", "userId"), ("source", "type"),
    ("message",), ("message", "text"), ("message", "type"), ("message", "latitude"),
    ("message", "longitude"), ("message", "address"), ("postback", "data"), ("postback",),
    ("webhookEventId",), ("replyToken",), ("deliveryContext", "isRedelivery"), ("mode",),
]
TEMPLATES: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
    lambda s: ev.text(s, "hello"), lambda s: ev.location(s), lambda s: ev.postback(s, "threat"),
    lambda s: ev.follow(s), lambda s: ev.sticker(s), lambda s: ev.join(s),
]


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = event
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


@FUZZ
@given(template=st.sampled_from(TEMPLATES), path=st.sampled_from(PATHS), value=HOSTILE,
       group=st.booleans(), text_value=ANY_TEXT)
async def test_signed_line_bodies_never_break_the_server(
        line_client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture,
        template: Callable[..., dict[str, Any]],
        path: tuple[str, ...], value: Any, group: bool, text_value: str) -> None:
    source = ev.group("C" + "f" * 32, "U" + "1" * 32) if group else \
        ev.user("U" + uuid.uuid4().hex)
    event = template(source)
    if "message" in event and event["message"].get("type") == "text":
        event["message"]["text"] = text_value
    _set(event, path, value)
    body: Any = {"destination": ev.DESTINATION, "events": [event, ev.follow(source)]}
    raw = dumps(body)
    with capture_logs() as logs:
        response = await line_client.post("/webhooks/line", data=raw, headers={
            "Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)})
        await settle_app(line_client.app)
    assert response.status < 500
    assert errors(logs) == [] and tracebacks(caplog) == []


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={"id": HOSTILE, "from": HOSTILE,
                                                  "text": HOSTILE}),
       good_text=ANY_TEXT, whole=st.one_of(st.none(), HOSTILE))
async def test_signed_sms_bodies_never_break_the_server(
        sms_client: TestClient[Any, Any],  # noqa: F811 - the fixture imported above
        caplog: pytest.LogCaptureFixture, fields: dict[str, Any], good_text: str,
        whole: Any) -> None:
    body = {"id": uuid.uuid4().hex, "from": "+66812345678", "text": good_text, **fields}
    raw = dumps(body if whole is None else whole)
    with capture_logs() as logs:
        response = await sms_client.post("/webhooks/sms/generic", data=raw, headers={
            "X-ESS-Signature": generic_signature(SECRET, raw)})
        await settle_app(sms_client.app)
    assert response.status < 500
    assert errors(logs) == [] and tracebacks(caplog) == []


# -- every answer at every step -------------------------------------------------------------

def _steps() -> list[list[Callable[[str], Inbound]]]:
    """Ways into each step of the shipped flows (each a list of events to send first)."""
    report = [lambda s: start(s), lambda s: choice(s, "threat"), lambda s: pin(s),
              lambda s: text(s, "0812345678"), lambda s: choice(s, "send"),
              lambda s: choice(s, "witness"), lambda s: choice(s, "yes")]
    silent = [lambda s: start(s, flow="silent"), lambda s: choice(s, "next"),
              lambda s: choice(s, "confinement"), lambda s: pin(s)]
    return [report[:n] for n in range(len(report) + 1)] + \
        [silent[:n] for n in range(1, len(silent) + 1)]


STEPS = _steps()
LOCATIONS = st.builds(Location, lat=st.one_of(st.none(), st.floats()),
                      lon=st.one_of(st.none(), st.floats()),
                      source=st.sampled_from(LocationSource),
                      accuracy_m=st.one_of(st.none(), st.floats()),
                      text=st.one_of(st.none(), ANY_TEXT))
ANSWERS = st.one_of(
    st.tuples(st.just(Kind.TEXT), ANY_TEXT),
    st.tuples(st.just(Kind.CHOICE), st.one_of(ANY_TEXT, st.sampled_from(
        ["send", "cancel", "fix_phone", "skip", "cmd:silent", "cmd:help", "act:x", "1", "๑"]))),
    st.tuples(st.just(Kind.LOCATION), LOCATIONS),
    st.tuples(st.sampled_from([Kind.START, Kind.PHONE, Kind.MEDIA, Kind.OTHER]),
              st.one_of(st.none(), ANY_TEXT)),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(step=st.integers(0, len(STEPS) - 1), answers=st.lists(ANSWERS, min_size=1, max_size=3))
async def test_any_answer_at_any_step_is_a_reply_never_a_failure(
        services: Services, step: int, answers: list[tuple[Kind, Any]]) -> None:
    sender = uuid.uuid4().hex
    with capture_logs() as logs:
        for make in STEPS[step]:
            await services.engine.handle(make(sender))
        for kind, payload in answers:
            replies = await services.engine.handle(
                Inbound("test", sender, kind, uuid.uuid4().hex, payload))
            assert replies, "every answer gets a reply (a re-prompt at least)"
            assert not {r.text.key for r in replies} & FAILED_REPLIES
    assert errors(logs) == []
