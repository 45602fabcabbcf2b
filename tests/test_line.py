"""The LINE channel end to end: signed webhooks in, SDK-validated API calls out."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bot.app import CHANNELS, SERVICES, create_app
from bot.outbound import ResponderCard, SendOutcome
from bot.types import ChatKind, Inbound, Kind, Reply, Text
from channels.line import LineChannel
from channels.registry import ChannelRegistry
from channels.testkit import (
    Expect,
    IncomingCase,
    OutgoingCase,
    run_incoming_cases,
    run_outgoing_cases,
)
from config.settings import Settings
from routing.messages import outbound
from tests import line_events as ev
from tests.dispatch_kit import routed, silent_report
from tests.helpers import settle_app
from tests.line_standin import LineStandIn
from tests.pii import assert_no_pii

USER = "U" + "a" * 32
GROUP = "C" + "b" * 32


@pytest.fixture
def client(line_client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return line_client


async def post(client: TestClient[Any, Any], *events: dict[str, Any],
               signature: str | None = None) -> int:
    raw = ev.body(*events)
    headers = {"Content-Type": "application/json",
               "X-Line-Signature": ev.sign(raw) if signature is None else signature}
    response = await client.post("/webhooks/line", data=raw, headers=headers)
    await settle_app(client.app)
    return response.status


def quick_items(call_raw: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for m in call_raw["messages"]
            for item in (m.get("quickReply") or {}).get("items", [])]


async def test_bad_or_missing_signature_is_401_and_nothing_happens(
        client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    assert await post(client, ev.follow(ev.user(USER)), signature="bm90IGl0") == 401
    assert await post(client, ev.follow(ev.user(USER)), signature="") == 401
    wrong = ev.sign(ev.body(ev.follow(ev.user(USER))), secret="another-secret")
    assert await post(client, ev.follow(ev.user(USER)), signature=wrong) == 401
    assert line_api.calls == []


async def test_malformed_empty_and_oversized_bodies(client: TestClient[Any, Any],
                                                    line_api: LineStandIn) -> None:
    for raw in (b"not json", b'{"destination": "U1"}', b'{"events": [1, 2]}'):
        response = await client.post("/webhooks/line", data=raw,
                                     headers={"X-Line-Signature": ev.sign(raw)})
        assert response.status == 400
        assert "error" in await response.json()
    assert await post(client) == 200  # LINE's connectivity check: no events
    big = b"{" + b" " * (300 * 1024) + b"}"
    response = await client.post("/webhooks/line", data=big,
                                 headers={"X-Line-Signature": ev.sign(big)})
    assert response.status == 413
    assert line_api.calls == []


async def test_a_whole_report_by_quick_replies(client: TestClient[Any, Any],
                                               line_api: LineStandIn) -> None:
    me = ev.user(USER)
    assert await post(client, ev.follow(me)) == 200
    greeting = line_api.ok("reply")[-1]
    items = quick_items(greeting.raw)
    assert 0 < len(items) <= 13
    assert all(len(i["action"]["label"]) <= 20 for i in items)
    assert {i["action"]["data"] for i in items} >= {"threat", "cmd:silent"}
    assert greeting.raw.get("notificationDisabled") is not True

    await post(client, ev.postback(me, "threat"))
    location_step = line_api.ok("reply")[-1]
    assert quick_items(location_step.raw)[0]["action"]["type"] == "location"

    with capture_logs() as logs:
        await post(client, ev.location(me, lat=16.8219876, lon=100.2651234))
        await post(client, ev.text(me, "๐๘๑-๒๓๔-๕๖๗๘"))
        await post(client, ev.postback(me, "send"))
    assert any(e["event"] == "report.received" for e in logs)
    assert_no_pii(logs, "16.82198", "100.26512", "๐๘๑", "812345678", "Mueang Phitsanulok")
    # The receipt is the outbox's: one push, with the row's retry key (bot.reports).
    [received] = [c for c in line_api.ok("push") if "✅" in c.raw["messages"][0]["text"]]
    assert received.headers.get("X-Line-Retry-Key")
    assert line_api.invalid == []

    services = client.app[SERVICES]
    [incident] = await services.storage.incidents.recent()
    assert incident.channel == "line" and incident.reporter == f"line:{USER}"
    assert incident.phone == "+66812345678"
    assert incident.location.source.value == "reporter_pin"
    assert line_api.ok("loading") == []


async def test_silent_report_never_notifies(client: TestClient[Any, Any],
                                            line_api: LineStandIn) -> None:
    me = ev.user(USER)
    await post(client, ev.postback(me, "menu:silent"))
    for value in ("go", "threat"):
        await post(client, ev.postback(me, value))
    await post(client, ev.location(me))
    await post(client, ev.postback(me, "no"))
    calls = line_api.ok()
    # Five answers, then by push the receipt and "the police have it" (the outbox's).
    assert len(calls) == 7 and [c.kind for c in calls[5:]] == ["push", "push"]
    for call in calls:
        assert call.raw["notificationDisabled"] is True
        for item in quick_items(call.raw):
            assert "displayText" not in item["action"]
    assert any("ESS-" in text for text in line_api.texts())
    [incident] = await client.app[SERVICES].storage.incidents.recent()
    assert incident.silent and incident.do_not_call
    assert line_api.ok("loading") == []


async def test_a_redelivered_or_repeated_event_is_handled_once(
        client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    event = ev.follow(ev.user(USER))
    await post(client, event)
    await post(client, event)
    again = dict(event, deliveryContext={"isRedelivery": True})
    await post(client, again)
    assert len(line_api.ok()) == 1


async def test_stale_reply_token_falls_back_to_push(client: TestClient[Any, Any],
                                                   line_api: LineStandIn) -> None:
    event = ev.follow(ev.user(USER))
    event["replyToken"] = "expired-token"
    await post(client, event)
    redelivered = ev.text(ev.user(USER), "hello", redelivery=True)
    await post(client, redelivered)
    assert [c.kind for c in line_api.calls] == ["reply", "push", "push"]
    pushes = line_api.ok("push")
    assert all(p.raw["to"] == USER for p in pushes)
    assert len({p.headers["X-Line-Retry-Key"] for p in pushes}) == 2


async def test_stickers_and_images_get_a_polite_reprompt(client: TestClient[Any, Any],
                                                         line_api: LineStandIn) -> None:
    me = ev.user(USER)
    await post(client, ev.follow(me))
    await post(client, ev.sticker(me))
    await post(client, ev.image(me))
    await post(client, ev.unknown_message(me))
    assert len(line_api.ok("reply")) == 4
    assert line_api.invalid == []


async def test_push_errors_follow_line_rules(client: TestClient[Any, Any],
                                            line_api: LineStandIn) -> None:
    channel = client.app[CHANNELS].channel_for(f"line:{USER}")
    reply = Reply(Text("common.greeting"), "th")

    line_api.fail_next(429, {"Retry-After": "7"})
    result = await channel.send(f"line:{USER}", reply, key="11111111-1111-4111-8111-111111111111")
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 7

    key = "22222222-2222-4222-8222-222222222222"
    line_api.fail_next(500)
    assert (await channel.send(f"line:{USER}", reply, key=key)).outcome is SendOutcome.RETRY
    assert (await channel.send(f"line:{USER}", reply, key=key)).ok
    # The same key again: LINE answers 409 "already accepted"; it counts as delivered once.
    assert (await channel.send(f"line:{USER}", reply, key=key)).ok
    assert len([c for c in line_api.ok("push") if c.headers["X-Line-Retry-Key"] == key]) == 1

    # An outbox key that is not a UUID still gives LINE a UUID, the same one each time.
    assert (await channel.send(f"line:{USER}", reply, key="outbox-row-7")).ok
    assert (await channel.send(f"line:{USER}", reply, key="outbox-row-7")).ok
    assert len(line_api.ok("push")) == 2
    line_api.fail_next(400)
    failed = await channel.send(f"line:{USER}", reply, key="33333333-3333-4333-8333-333333333333")
    assert failed.outcome is SendOutcome.FAILED and "request" in (failed.error or "")
    assert line_api.invalid == []


async def test_incident_card_is_a_valid_flex_message(client: TestClient[Any, Any],
                                                    line_api: LineStandIn) -> None:
    services = client.app[SERVICES]
    incident = await silent_report(services, "s1")
    # The card routing built for this incident, for a LINE group: no hand-built payload.
    row = services.responders.card_for(incident, incident.details["dispatch"]["notified"][0])
    card = outbound(row)
    assert isinstance(card, ResponderCard)
    result = await client.app[CHANNELS].send(f"line:{GROUP}", card, key=row.key)
    assert result.ok
    [call] = [c for c in line_api.ok("push") if c.raw["to"] == GROUP]
    flex = call.raw["messages"][0]
    assert flex["type"] == "flex"
    buttons = flex["contents"]["footer"]["contents"]
    tokens = [b["action"]["data"] for b in buttons if b["action"]["type"] == "postback"]
    assert tokens == [f"act:ack:{incident.reference}"]  # all the state allows now
    assert all(len(t) <= 300 and "+66" not in t for t in tokens)
    assert "ห้ามโทร" in flex["contents"]["body"]["contents"][0]["text"]
    body = " ".join(c.get("text", "") for c in flex["contents"]["body"]["contents"])
    assert "พิษณุโลก" in body and "สถานีตำรวจภูธรเมืองพิษณุโลก" in body
    assert line_api.invalid == []


async def test_responder_group_binding_and_actions(client: TestClient[Any, Any],
                                                   line_api: LineStandIn) -> None:
    services = client.app[SERVICES]
    seen: list[Inbound] = []

    async def is_action(inbound: Inbound) -> bool:
        return inbound.text.startswith("act:")

    async def lifecycle(inbound: Inbound) -> list[Reply]:
        seen.append(inbound)
        return [Reply(Text("dispatch.action.acknowledge"), "th")]

    # A route ahead of the responder side sees what the router would hand it.
    services.inbound.add("seen", is_action, lifecycle, before="responder")
    await post(client, ev.join(ev.group(GROUP)))
    assert "/register" in line_api.texts()[-1]

    from datetime import UTC, datetime
    code = await services.storage.bindings.create_code("TH-65", "police", 3600,
                                                       datetime.now(UTC))
    await post(client, ev.text(ev.group(GROUP, USER), f"/register {code.lower()}"))
    assert "TH-65" in line_api.texts()[-1] and "ตำรวจ" in line_api.texts()[-1]
    [binding] = await services.storage.bindings.for_address(f"line:{GROUP}")
    assert binding.agency == "police"
    await post(client, ev.text(ev.group(GROUP, USER), f"/register {code}"))
    assert "ไม่ถูกต้อง" in line_api.texts()[-1]

    # Chatter in a responder group never starts a report.
    before = len(line_api.calls)
    await post(client, ev.text(ev.group(GROUP, USER), "ช่วยด้วย"))
    assert len(line_api.calls) == before

    action = ev.postback(ev.group(GROUP), "act:ack:ESS-7K3F9")  # no userId: not consented
    await post(client, action)
    await post(client, action)  # redelivered: handled once
    [inbound] = seen
    assert inbound.payload == "act:ack:ESS-7K3F9" and inbound.chat is ChatKind.GROUP
    assert inbound.hints["actor"] == f"line:{GROUP}"
    await post(client, ev.postback(ev.group(GROUP, USER), "act:eta10:ESS-7K3F9"))
    assert seen[-1].hints["actor"] == f"line:{USER}"

    await post(client, ev.leave(ev.group(GROUP)))
    assert await services.storage.bindings.for_address(f"line:{GROUP}") == []
    assert line_api.invalid == []


async def test_a_group_event_redelivered_to_another_process_is_handled_once(
        line_settings: Settings, line_api: LineStandIn, pg_url: str, redis_url: str) -> None:
    shared = replace(line_settings, database_url=pg_url, redis_url=redis_url)
    joined = ev.join(ev.group(GROUP))
    for _ in range(2):  # two processes' worth of application, one store
        app = create_app(shared, channels=ChannelRegistry.discover(shared, only=["line"]))
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            assert await post(test_client, joined) == 200
    assert len(line_api.ok("reply")) == 1  # the second delivery was known everywhere


async def test_an_action_on_an_unknown_incident_says_so(client: TestClient[Any, Any],
                                                        line_api: LineStandIn) -> None:
    await post(client, ev.postback(ev.group(GROUP, USER), "act:scene:ESS-7K3F9"))
    assert "ESS-7K3F9" in line_api.texts()[-1]


async def test_shutdown_finishes_accepted_events(line_settings: Settings,
                                                 line_api: LineStandIn) -> None:
    app = create_app(line_settings,
                     channels=ChannelRegistry.discover(line_settings, only=["line"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        raw = ev.body(ev.follow(ev.user(USER)))
        response = await test_client.post("/webhooks/line", data=raw,
                                          headers={"X-Line-Signature": ev.sign(raw)})
        assert response.status == 200
    # Closing the application drained the background task: the greeting went out.
    assert len(line_api.ok("reply")) == 1


def test_line_stays_off_without_settings(tmp_path: Path) -> None:
    registry = ChannelRegistry.discover(Settings(data_dir=str(tmp_path)), only=["line"])
    assert registry.get("line") is None
    assert isinstance(ChannelRegistry.discover(Settings(data_dir=str(tmp_path), extra={
        "ESS_LINE_CHANNEL_SECRET": "s", "ESS_LINE_CHANNEL_ACCESS_TOKEN": "t"}),
        only=["line"]).get("line"), LineChannel)


async def test_line_through_the_channel_test_kit(client: TestClient[Any, Any],
                                                 line_api: LineStandIn) -> None:
    services = client.app[SERVICES]

    def signed(*events: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = ev.body(*events)
        return raw, {"Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)}

    def case(label: str, event: dict[str, Any], expect: Expect | None) -> IncomingCase:
        body, headers = signed(event)
        return IncomingCase(label, body, headers, 200, expect)

    async def post_case(c: IncomingCase) -> int:
        return (await client.post("/webhooks/line", data=c.body, headers=c.headers)).status

    me, team = ev.user(USER), ev.group(GROUP, USER)
    body, _ = signed(ev.follow(me))
    await run_incoming_cases(post_case, services.inbound, lambda: settle_app(client.app),
                             [
        case("follow", ev.follow(me), Expect(Kind.START, USER)),
        case("text", ev.text(me, "ช่วยด้วย"), Expect(Kind.TEXT, USER, "ช่วยด้วย")),
        case("pin", ev.location(me, lat=16.8, lon=100.2), Expect(Kind.LOCATION, USER)),
        case("menu", ev.postback(me, "menu:report"), Expect(Kind.START, USER, "report")),
        case("group text", ev.text(team, "ESS-7K3F9 ack"),
             Expect(Kind.TEXT, GROUP, "ESS-7K3F9 ack", ChatKind.GROUP)),
        case("group button", ev.postback(team, "act:ack:ESS-7K3F9"),
             Expect(Kind.CHOICE, GROUP, "act:ack:ESS-7K3F9", ChatKind.GROUP)),
        case("left", ev.leave(ev.group(GROUP)), Expect(Kind.LEAVE, GROUP, None, ChatKind.GROUP)),
        IncomingCase("unsigned", body, {"X-Line-Signature": "bm9wZQ=="}, 401),
        IncomingCase("not a webhook", *signed_raw(b'{"events": 3}'), 400),
    ])

    kit = await routed(services)

    def received() -> str:
        return json.dumps([c.raw.get("messages") for c in line_api.calls], ensure_ascii=False)

    await run_outgoing_cases(client.app[CHANNELS].send, received, [
        OutgoingCase("card", f"line:{GROUP}", kit.card,
                     contains=('"flex"', kit.incident.reference, "พิษณุโลก",
                               f"act:ack:{kit.incident.reference}")),
        OutgoingCase("escalation", f"line:{GROUP}", kit.escalation,
                     contains=("ยกระดับ", "ไม่มีผู้รับเรื่องที่")),
        OutgoingCase("update", f"line:{USER}", kit.update, contains=("ตำรวจ",)),
        OutgoingCase("not LINE", "sms:+66812345678", kit.update, SendOutcome.FAILED),
    ])
    assert line_api.invalid == []


def signed_raw(raw: bytes) -> tuple[bytes, dict[str, str]]:
    return raw, {"Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)}


def test_a_prompt_body_is_built_once_and_matches_its_validated_message(
        tmp_path: Path) -> None:
    from bot.i18n import load_catalogs
    from bot.types import Choice
    from channels.line.render import reply_body, reply_message

    catalogs = load_catalogs(Settings(data_dir=str(tmp_path / "var")))
    prompt = Reply(Text("report.type.prompt"), "th",
                   choices=(Choice("type:violence", Text("incident.violence")),))
    body = reply_body(prompt, catalogs)
    assert body == reply_message(prompt, catalogs).to_dict()
    assert body["quickReply"]["items"][0]["action"]["data"] == "type:violence"
    assert reply_body(replace(prompt), catalogs) is body  # built once
    # A reply with parameters may hold personal data: built each time, never kept.
    summary = Reply(Text("report.type.prompt", {"x": "0812345678"}), "th")
    assert reply_body(summary, catalogs) is not reply_body(summary, catalogs)


def test_a_reply_built_as_plain_json_is_what_the_sdks_model_makes_of_it(
        tmp_path: Path) -> None:
    """reply_body builds replies with parameters without the SDK's models: for every shape a
    reply takes (parameters, silent, the location button, too many or too long choices, a
    long text), the SDK reads the JSON and writes back the same JSON."""
    from linebot.v3.messaging import TextMessage

    from bot.i18n import load_catalogs
    from bot.types import Ask, Choice
    from channels.line.render import MAX_TEXT, reply_body

    catalogs = load_catalogs(Settings(data_dir=str(tmp_path / "var")))
    few = tuple(Choice(f"type:{k}", Text(f"incident.{k}"))
                for k in ("violence", "detention", "sexual", "deranged", "gathering"))
    many = tuple(Choice(f"v{n}", Text("report.type.prompt", {"n": n})) for n in range(15))
    long_label = (Choice("x", Text("report.type.prompt", {"l": "ก" * 40})),)
    long_data = (Choice("d" * 301, Text("incident.violence")),)
    shapes = [
        Reply(Text("report.type.prompt", {"x": "0812345678"}), "th", choices=few),
        Reply(Text("report.type.prompt", {"x": "1"}), "en", choices=few, silent=True),
        Reply(Text("report.type.prompt", {"x": "1"}), "th", ask=Ask.LOCATION),
        Reply(Text("report.type.prompt", {"x": "1"}), "th", ask=Ask.LOCATION, choices=many),
        Reply(Text("report.type.prompt", {"x": "1"}), "th", choices=long_label),
        Reply(Text("report.type.prompt", {"x": "1"}), "th", choices=long_data),
        Reply(Text("{x}", {"x": "ข" * (MAX_TEXT + 10)}), "th"),
    ]
    for reply in shapes:
        body = reply_body(reply, catalogs)
        message = TextMessage.from_dict(body)
        assert message is not None and message.to_dict() == body, reply
        assert len(body["text"]) <= MAX_TEXT
    assert "displayText" not in json.dumps(reply_body(shapes[1], catalogs))  # silent
    assert reply_body(shapes[2], catalogs)["quickReply"]["items"][0]["action"]["type"] == \
        "location"
