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
from bot.incident import Notification
from bot.types import Reply, Text
from channels.base import SendOutcome
from channels.cards import parse_action, responder_actions
from channels.registry import ChannelRegistry, UnknownAddress
from config.settings import Settings, SettingsError
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
    tokens = [c.value for c in responder_actions("ESS-7K3F9")]
    assert all(len(t) <= 300 for t in tokens)
    assert [parse_action(t).reference for t in tokens if parse_action(t)] == \
        ["ESS-7K3F9"] * 7
    eta = parse_action("act:eta15:ESS-7K3F9")
    assert eta is not None and eta.eta_minutes == 15
    for junk in ("threat", "act:", "act:dance:ESS-1", "act:ack:", "act:ack" + "x" * 400):
        assert parse_action(junk) is None


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

        # The dispatcher's view: deliver an outbox row to the plugin's address.
        note = Notification(incident.reporter, "incident.new", {
            "reference": incident.reference, "type": "threat",
            "location": incident.location.to_dict(), "phone": None, "do_not_call": True})
        result = await app[CHANNELS].send(note.recipient, note, key=note.key)
        assert result.ok
        [pushed] = received
        assert pushed["to"] == "kiosk-7" and pushed["key"] == note.key
        assert parse_action(pushed["message"]["choices"][0]["value"]) is not None
