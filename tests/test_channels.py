"""The plugin contract: discovery by entry point, channels off with one line, the example
plugin installed (as a dist-info on sys.path) and driven through its own endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bot.app import CHANNELS, SERVICES, create_app
from bot.i18n import Catalogs
from bot.outbound import ResponderCard, SendOutcome
from bot.types import Kind, Reply, Text
from channels.registry import ChannelRegistry, UnknownAddress
from channels.testkit import (
    Expect,
    IncomingCase,
    OutgoingCase,
    run_incoming_cases,
    run_outgoing_cases,
)
from config.settings import Settings, SettingsError
from routing.messages import ActionToken, card_choices, parse_token
from routing.messages import outbound as outbound_message
from tests.dispatch_kit import routed
from tests.helpers import settle_app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ess-channel-jsonhook"
SECRET = "jsonhook-secret"


def install_dist(root: Path, name: str, entry_points: str) -> None:
    """What `pip install` leaves behind that matters to discovery: a dist-info folder."""
    info = root / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    install_dist(site, "ess-channel-jsonhook",
                 '[ess.channels]\njsonhook = ess_jsonhook:JsonHookChannel\n')
    install_dist(site, "ess-channel-broken", '[ess.channels]\nbroken = ess_nowhere:Nothing\n')
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield site


def test_every_shipped_catalog_has_every_key() -> None:
    assert Catalogs.load().missing() == {}


def test_unconfigured_channels_stay_off_with_one_line_each(tmp_path: Path) -> None:
    with capture_logs() as logs:
        registry = ChannelRegistry.discover(Settings(data_dir=str(tmp_path)),
                                            only=["line", "sms", "web"])
    assert sorted(registry.channels) == ["web"]
    off = [entry for entry in logs if entry["event"] == "channel.off"]
    assert sorted(e["channel"] for e in off) == ["line", "sms"]
    assert all("ESS_" in e["reason"] for e in off)


def test_a_wrong_setting_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ESS_SMS_PROVIDER"):
        ChannelRegistry.discover(Settings(data_dir=str(tmp_path), extra={
            "ESS_SMS_GENERIC_SECRET": "s", "ESS_SMS_PROVIDER": "pigeon"}), only=["sms"])


async def test_addresses_without_a_channel_are_permanent_failures(tmp_path: Path) -> None:
    registry = ChannelRegistry()
    with pytest.raises(UnknownAddress):
        registry.channel_for("fax:+6621234567")
    reply = Reply(Text("common.greeting"), "th")
    for address in ("fax:+6621234567", "no-scheme"):
        result = await registry.send(address, reply, key="k")
        assert result.outcome is SendOutcome.FAILED


def test_action_tokens_round_trip_and_refuse_junk() -> None:
    tokens = [t for t, _ in card_choices("ESS-7K3F9", ["acknowledge", "en_route", "on_scene",
                                                      "resolve", "refer"])]
    assert all(len(t) <= 300 for t in tokens)
    parsed = [parse_token(t) for t in tokens]
    assert [p.reference for p in parsed if p] == ["ESS-7K3F9"] * 9
    assert parse_token("act:eta15:ESS-7K3F9") == ActionToken("en_route", "ESS-7K3F9", 15)
    assert parse_token("act:welfare:ESS-7K3F9") == ActionToken("refer_welfare", "ESS-7K3F9")
    for junk in ("threat", "act:", "act:dance:ESS-1", "act:ack:", "act:ack" + "x" * 400):
        assert parse_token(junk) is None


def test_a_broken_plugin_is_logged_and_the_rest_run(plugin_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), extra={"ESS_JSONHOOK_SECRET": SECRET})
    with capture_logs() as logs:
        registry = ChannelRegistry.discover(settings)
    assert {"jsonhook", "web"} <= set(registry.channels)
    assert [e["channel"] for e in logs if e["event"] == "channel.broken"] == ["broken"]


@pytest.fixture
async def outbound() -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Jsonhook-Signature") != expected:
            return web.Response(status=401)
        received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/ess", accept)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield received, str(server.make_url("/ess"))
    finally:
        await server.close()


async def test_the_example_plugin_takes_a_whole_report(
        plugin_path: Path, tmp_path: Path,
        outbound: tuple[list[dict[str, Any]], str]) -> None:
    received, url = outbound
    settings = Settings(data_dir=str(tmp_path / "var"), default_lang="en", extra={
        "ESS_JSONHOOK_SECRET": SECRET, "ESS_JSONHOOK_OUTBOUND_URL": url})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["jsonhook"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        async def say(event: dict[str, Any], secret: str = SECRET) -> Any:
            body = json.dumps(event).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return await client.post("/webhooks/jsonhook", data=body,
                                     headers={"X-Jsonhook-Signature": signature})

        assert (await say({"id": "1", "from": "kiosk-7", "type": "start"}, "wrong")).status \
            == 401
        assert (await say({"id": "1", "from": "kiosk-7", "type": "dance"})).status == 400
        first = await (await say({"id": "1", "from": "kiosk-7", "type": "start"})).json()
        assert any(c["value"] == "threat" for c in first["messages"][-1]["choices"])
        await say({"id": "2", "from": "kiosk-7", "type": "choice", "value": "threat"})
        located = await say({"id": "3", "from": "kiosk-7", "type": "location",
                             "lat": 16.8211, "lon": 100.2659})
        assert (await located.json())["messages"][-1]["ask"] == "phone"
        await say({"id": "4", "from": "kiosk-7", "type": "text", "text": "081-234-5678"})
        sent = await (await say({"id": "5", "from": "kiosk-7", "type": "choice",
                                 "value": "send"})).json()
        assert "ESS-" not in sent["messages"][0]["text"]  # the receipt is the outbox's
        await settle_app(app)
        [receipt] = [r for r in received if "✅" in r["message"]["text"]]
        assert receipt["to"] == "kiosk-7"
        received.clear()
        [incident] = await app[SERVICES].storage.incidents.recent()
        assert incident.channel == "jsonhook" and incident.reporter == "jsonhook:kiosk-7"

        # The dispatcher's view: the card routing built for this incident, to the plugin.
        services = app[SERVICES]
        row = services.responders.card_for(incident, incident.details["dispatch"]["notified"][0])
        card = outbound_message(row)
        assert isinstance(card, ResponderCard)
        result = await app[CHANNELS].send(incident.reporter, card, key=row.key)
        assert result.ok
        [pushed] = received
        assert pushed["to"] == "kiosk-7" and pushed["key"] == row.key
        assert parse_token(pushed["message"]["choices"][0]["value"]) is not None
        assert incident.reference in pushed["message"]["text"]
        assert "พิษณุโลก" in pushed["message"]["text"]  # the province it was routed to


async def test_the_example_plugin_through_the_channel_test_kit(
        plugin_path: Path, tmp_path: Path,
        outbound: tuple[list[dict[str, Any]], str]) -> None:
    received_calls, url = outbound
    settings = Settings(data_dir=str(tmp_path / "var"), extra={
        "ESS_JSONHOOK_SECRET": SECRET, "ESS_JSONHOOK_OUTBOUND_URL": url})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["jsonhook"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        services = app[SERVICES]

        def case(label: str, data: object, expect: Expect | None, status: int = 200,
                 secret: str = SECRET) -> IncomingCase:
            body = json.dumps(data).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return IncomingCase(label, body, {"X-Jsonhook-Signature": signature}, status,
                                expect)

        async def post_case(c: IncomingCase) -> int:
            return (await client.post("/webhooks/jsonhook", data=c.body,
                                      headers=c.headers)).status

        async def nothing() -> None:
            pass

        await run_incoming_cases(post_case, services.inbound, nothing, [
            case("start", {"id": "1", "from": "k", "type": "start"}, Expect(Kind.START, "k")),
            case("choice", {"id": "2", "from": "k", "type": "choice", "value": "threat"},
                 Expect(Kind.CHOICE, "k", "threat")),
            case("text", {"id": "3", "from": "k", "type": "text", "text": "hi"},
                 Expect(Kind.TEXT, "k", "hi")),
            case("forged", {"id": "4", "from": "k", "type": "start"}, None, 401, "x"),
            case("unknown", {"id": "5", "from": "k", "type": "dance"}, None, 400),
        ])

        kit = await routed(services)

        def received() -> str:
            return json.dumps(received_calls, ensure_ascii=False)

        await run_outgoing_cases(app[CHANNELS].send, received, [
            OutgoingCase("card", "jsonhook:k", kit.card,
                         contains=(kit.incident.reference, "พิษณุโลก",
                                   f"act:ack:{kit.incident.reference}")),
            OutgoingCase("escalation", "jsonhook:k", kit.escalation, contains=("ยกระดับ",)),
            OutgoingCase("update", "jsonhook:k", kit.update, contains=("ตำรวจ",)),
        ])
