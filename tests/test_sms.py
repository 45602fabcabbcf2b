"""SMS through the real HTTP endpoints with real signatures, out through a Twilio stand-in."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bot.app import CHANNELS, SERVICES, create_app
from bot.outbound import SendOutcome
from bot.types import Kind, Reply, Text
from channels.registry import ChannelRegistry
from channels.sms import generic_signature, twilio_signature
from channels.sms.segments import count_segments
from channels.testkit import (
    Expect,
    IncomingCase,
    OutgoingCase,
    run_incoming_cases,
    run_outgoing_cases,
)
from config.settings import Settings
from tests.dispatch_kit import routed
from tests.helpers import settle_app
from tests.pii import assert_no_pii
from tests.test_webchat import browser  # noqa: F401 - the Chromium fixture

TOKEN = "twilio-auth-token"
SID = "AC" + "0" * 32
SECRET = "generic-secret"
ME = "+66812345678"


@dataclass
class TwilioStandIn:
    """Twilio's Messages resource: records what was sent, can fail on demand."""

    sent: list[dict[str, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)

    async def messages(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.match_info["sid"] != SID or not request.headers.get("Authorization"):
            return web.json_response({"code": 20003}, status=401)
        if self.failures:
            status = self.failures.pop(0)
            return web.json_response({"code": 21211 if status == 400 else 20429},
                                     status=status, headers={"Retry-After": "3"})
        self.sent.append({k: str(v) for k, v in form.items()})
        return web.json_response({"sid": "SM" + "1" * 32, "status": "queued"}, status=201)

    def texts(self) -> list[str]:
        return [m["Body"] for m in self.sent]


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioStandIn, str]]:
    standin = TwilioStandIn()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", standin.messages)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield standin, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def client(tmp_path: Path, twilio: tuple[TwilioStandIn, str]
                 ) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_SMS_TWILIO_AUTH_TOKEN": TOKEN, "ESS_SMS_TWILIO_ACCOUNT_SID": SID,
        "ESS_SMS_TWILIO_FROM": "+6620000000", "ESS_SMS_TWILIO_API_URL": twilio[1],
        "ESS_SMS_GENERIC_SECRET": SECRET})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


_sids = iter(range(1, 10_000))


async def sms(client: TestClient[Any, Any], body: str, sender: str = ME,
              signature: str | None = None, settle: bool = True) -> int:
    params = {"MessageSid": f"SM{next(_sids):032d}", "AccountSid": SID, "From": sender,
              "To": "+6620000000", "Body": body, "NumMedia": "0", "FromCountry": "TH"}
    url = str(client.make_url("/webhooks/sms/twilio"))
    sig = twilio_signature(TOKEN, url, params.items()) if signature is None else signature
    response = await client.post("/webhooks/sms/twilio", data=params,
                                 headers={"X-Twilio-Signature": sig})
    if settle:  # not when the test closed the store: there is nothing to wait for
        await settle_app(client.app)
    return response.status


async def test_a_whole_report_by_sms_with_thai_digits(
        client: TestClient[Any, Any], twilio: tuple[TwilioStandIn, str]) -> None:
    standin, _ = twilio
    with capture_logs() as logs:
        assert await sms(client, "แจ้งเหตุ") == 200
        menu = standin.texts()[-1]
        assert "1) ถูกข่มขู่ว่าจะทำร้าย" in menu
        await sms(client, "๑")
        assert "ที่อยู่" in standin.texts()[-1]  # the location step asks for text
        await sms(client, "หน้าโรงเรียนวัดใหญ่ ถนนพุทธบูชา")
        assert "#" in standin.texts()[-1]  # the phone step offers this phone's number
        await sms(client, "#")
        await sms(client, "๑")
    assert any(e["event"] == "report.received" for e in logs)
    assert_no_pii(logs, ME, "812345678", "หน้าโรงเรียนวัดใหญ่", "แจ้งเหตุ")
    assert "ESS-" in standin.texts()[-1]
    assert all(m["To"] == ME for m in standin.sent)
    [incident] = await client.app[SERVICES].storage.incidents.recent()
    assert incident.channel == "sms" and incident.phone == ME
    assert incident.location.text == "หน้าโรงเรียนวัดใหญ่ ถนนพุทธบูชา"


async def test_bad_signatures_and_bodies(client: TestClient[Any, Any],
                                         twilio: tuple[TwilioStandIn, str]) -> None:
    assert await sms(client, "hello", signature="") == 401
    assert await sms(client, "hello", signature="bm9wZQ==") == 401
    response = await client.post("/webhooks/sms/twilio", data={"Body": "x"}, headers={
        "X-Twilio-Signature": twilio_signature(
            TOKEN, str(client.make_url("/webhooks/sms/twilio")), [("Body", "x")])})
    assert response.status == 400
    assert twilio[0].sent == []


async def test_generic_json_inbound(client: TestClient[Any, Any],
                                    twilio: tuple[TwilioStandIn, str]) -> None:
    body = json.dumps({"id": "g-1", "from": ME, "text": "help"}).encode()
    response = await client.post("/webhooks/sms/generic", data=body, headers={
        "X-ESS-Signature": generic_signature(SECRET, body),
        "Content-Type": "application/json"})
    await settle_app(client.app)
    assert response.status == 200
    assert "STOP" in twilio[0].texts()[-1]
    for raw, signature, status in [
            (body, "sha256=00", 401), (body, "", 401),
            (b"{}", generic_signature(SECRET, b"{}"), 400),
            (b"[", generic_signature(SECRET, b"["), 400)]:
        response = await client.post("/webhooks/sms/generic", data=raw,
                                     headers={"X-ESS-Signature": signature})
        assert response.status == status


async def test_stop_blocks_later_messages(client: TestClient[Any, Any],
                                          twilio: tuple[TwilioStandIn, str]) -> None:
    await sms(client, "STOP")
    assert "1300" in twilio[0].texts()[-1]
    update = Reply(Text("report.received_short", {"reference": "ESS-7K3F9"}), "th")
    result = await client.app[CHANNELS].send(f"sms:{ME}", update, key="k")
    assert result.outcome is SendOutcome.FAILED
    await sms(client, "start")
    assert (await client.app[CHANNELS].send(f"sms:{ME}", update, key="k2")).ok


async def test_a_flooding_number_is_refused_but_stop_always_passes(
        tmp_path: Path, twilio: tuple[TwilioStandIn, str]) -> None:
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", limit_sms=3,
                        extra={"ESS_SMS_TWILIO_AUTH_TOKEN": TOKEN,
                               "ESS_SMS_TWILIO_ACCOUNT_SID": SID,
                               "ESS_SMS_TWILIO_FROM": "+6620000000",
                               "ESS_SMS_TWILIO_API_URL": twilio[1]})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert [await sms(client, "help") for _ in range(5)] == [200] * 3 + [429] * 2
        assert await sms(client, "STOP") == 200  # a legal matter: never limited
        assert await sms(client, "help", sender="+66899999999") == 200  # another number
        params = {"MessageSid": "SM" + "9" * 32, "From": ME, "Body": "help"}
        url = str(client.make_url("/webhooks/sms/twilio"))
        response = await client.post("/webhooks/sms/twilio", data=params, headers={
            "X-Twilio-Signature": twilio_signature(TOKEN, url, params.items())})
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert "try again" in (await response.json())["error"]
        await settle_app(client.app)
    # Three helps, the STOP confirmation and the other number's help: nothing else sent.
    assert len(twilio[0].sent) == 5


async def test_a_stop_the_store_cannot_keep_is_not_answered_200(
        client: TestClient[Any, Any], twilio: tuple[TwilioStandIn, str]) -> None:
    await client.app[SERVICES].storage.close()  # the database is gone
    assert await sms(client, "STOP", settle=False) == 503  # so the gateway sends it again
    assert twilio[0].sent == []  # and nothing claimed it was done


async def test_provider_errors(client: TestClient[Any, Any],
                               twilio: tuple[TwilioStandIn, str]) -> None:
    update = Reply(Text("report.received_short", {"reference": "ESS-7K3F9"}), "th")
    registry = client.app[CHANNELS]
    twilio[0].failures += [429, 503, 400]
    first = await registry.send(f"sms:{ME}", update, key="a")
    assert first.outcome is SendOutcome.RETRY and first.retry_after == 3
    assert (await registry.send(f"sms:{ME}", update, key="a")).outcome is SendOutcome.RETRY
    assert (await registry.send(f"sms:{ME}", update, key="a")).outcome is SendOutcome.FAILED
    assert (await registry.send(f"sms:{ME}", update, key="a")).ok


async def test_one_time_location_link(tmp_path: Path,
                                      twilio: tuple[TwilioStandIn, str]) -> None:
    standin, api = twilio
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_SMS_TWILIO_AUTH_TOKEN": TOKEN, "ESS_SMS_TWILIO_ACCOUNT_SID": SID,
        "ESS_SMS_TWILIO_FROM": "+6620000000", "ESS_SMS_TWILIO_API_URL": api,
        "ESS_PUBLIC_URL": "https://ess.example"})
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["sms"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        async def send(body: str) -> None:
            params = {"MessageSid": f"SM{next(_sids):032d}", "From": ME, "Body": body}
            url = "https://ess.example/webhooks/sms/twilio"  # as Twilio called it
            response = await client.post("/webhooks/sms/twilio", data=params, headers={
                "X-Twilio-Signature": twilio_signature(TOKEN, url, params.items())})
            assert response.status == 200
            await settle_app(client.app)

        await send("hello")
        await send("2")
        link = re.search(r"https://ess\.example(/sms/locate/\S+)", standin.texts()[-1])
        assert link is not None
        path = urlsplit(link.group(0)).path
        page = await client.get(path)
        html = await page.text()
        assert page.status == 200 and 'src="/sms/static/locate.js"' in html
        assert 'href="/sms/static/neutral.svg"' in html
        for name in ("locate.js", "chat.css", "neutral.svg"):
            assert (await client.get(f"/sms/static/{name}")).status == 200
        assert (await client.get("/sms/static/chat.html")).status == 404
        fix = {"lat": 16.8211, "lon": 100.2659, "accuracy": 20}
        assert (await client.post(path, json=fix)).status == 200
        await settle_app(client.app)
        assert (await client.post(path, json=fix)).status == 410
        assert "#" in standin.texts()[-1]  # moved on to the phone step
        assert (await client.post("/sms/locate/unknown", json=fix)).status == 410


def test_segment_counting() -> None:
    assert count_segments("a" * 160) == count_segments("a" * 160)
    assert count_segments("a" * 160).count == 1 and count_segments("a" * 161).count == 2
    assert count_segments("a" * 306).count == 2 and count_segments("a" * 307).count == 3
    assert count_segments("[" * 80).units == 160
    thai = "รับแจ้งแล้ว เจ้าหน้าที่กำลังไป ETA 12 นาที"
    assert count_segments(thai).encoding == "UCS-2" and count_segments(thai).count == 1
    assert count_segments("ก" * 70).count == 1 and count_segments("ก" * 71).count == 2
    assert count_segments("ก" * 134).count == 2 and count_segments("ก" * 135).count == 3
    assert count_segments("🙂").units == 2


def test_sms_stays_off_without_settings(tmp_path: Path) -> None:
    assert ChannelRegistry.discover(Settings(data_dir=str(tmp_path)), only=["sms"]).get(
        "sms") is None


@pytest.mark.browser
async def test_the_location_link_page_sends_the_phones_position(
        browser: Any,  # noqa: F811 - the fixture imported above
        tmp_path: Path, twilio: tuple[TwilioStandIn, str]) -> None:
    standin, api = twilio
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_SMS_GENERIC_SECRET": SECRET, "ESS_SMS_PROVIDER": "twilio",
        "ESS_SMS_TWILIO_AUTH_TOKEN": TOKEN, "ESS_SMS_TWILIO_ACCOUNT_SID": SID,
        "ESS_SMS_TWILIO_FROM": "+6620000000", "ESS_SMS_TWILIO_API_URL": api,
        "ESS_PUBLIC_URL": "https://ess.example"})
    server = TestServer(create_app(settings, channels=ChannelRegistry.discover(
        settings, only=["sms"])), host="127.0.0.1")
    await server.start_server()
    try:
        for n, text in enumerate(("hello", "3")):
            body = json.dumps({"id": f"g{n}", "from": ME, "text": text}).encode()
            async with ClientSession() as session, session.post(
                    server.make_url("/webhooks/sms/generic"), data=body,
                    headers={"X-ESS-Signature": generic_signature(SECRET, body)}) as response:
                assert response.status == 200
            await settle_app(server.app)
        link = re.search(r"https://ess\.example(/sms/locate/\S+)", standin.texts()[-1])
        assert link is not None
        context = await browser.new_context(
            viewport={"width": 360, "height": 640}, locale="th-TH", permissions=["geolocation"],
            geolocation={"latitude": 16.8211, "longitude": 100.2659, "accuracy": 8})
        page = await context.new_page()
        await page.goto(str(server.make_url(link.group(1))))
        await page.get_by_role("button", name="ใช้ตำแหน่งของฉัน").click()
        await page.get_by_text("ส่งตำแหน่งแล้ว").wait_for()
        await settle_app(server.app)
        assert "#" in standin.texts()[-1]  # the report moved on to the phone step
        await context.close()
    finally:
        await server.close()


async def test_sms_through_the_channel_test_kit(client: TestClient[Any, Any],
                                                twilio: tuple[TwilioStandIn, str]) -> None:
    services = client.app[SERVICES]

    def generic(label: str, data: object, expect: Expect | None, status: int = 200,
                secret: str = SECRET) -> IncomingCase:
        body = json.dumps(data).encode()
        return IncomingCase(label, body, {"X-ESS-Signature": generic_signature(secret, body)},
                            status, expect)

    async def post_case(case: IncomingCase) -> int:
        return (await client.post("/webhooks/sms/generic", data=case.body,
                                  headers=case.headers)).status

    await run_incoming_cases(post_case, services.inbound, lambda: settle_app(client.app),
                             [
        generic("text", {"id": "k1", "from": ME, "text": "แจ้งเหตุ"},
                Expect(Kind.TEXT, ME, "แจ้งเหตุ")),
        generic("this phone", {"id": "k2", "from": ME, "text": "#"}, Expect(Kind.PHONE, ME)),
        generic("responder", {"id": "k3", "from": ME, "text": "ESS-7K3F9 eta ๑๐"},
                Expect(Kind.TEXT, ME, "ESS-7K3F9 eta ๑๐")),
        generic("help keyword", {"id": "k4", "from": ME, "text": "help"}, None),
        generic("forged", {"id": "k5", "from": ME, "text": "x"}, None, 401, "wrong"),
        generic("malformed", {"id": "k6"}, None, 400),
    ])

    kit = await routed(services)

    def received() -> str:
        return "\n\n".join(twilio[0].texts())

    reference = kit.incident.reference
    await run_outgoing_cases(client.app[CHANNELS].send, received, [
        OutgoingCase("card", f"sms:{ME}", kit.card,
                     contains=(reference, "081-234-5678", f"{reference} ตอบเลข 1 รับเรื่อง",
                               "https://www.google.com/maps")),
        OutgoingCase("escalation", f"sms:{ME}", kit.escalation, contains=("ยกระดับ",)),
        OutgoingCase("update", f"sms:{ME}", kit.update, contains=("ตำรวจ",)),
        OutgoingCase("not SMS", "line:U1", kit.update, SendOutcome.FAILED),
    ])
    for body in twilio[0].texts()[-3:-1]:  # the two cards: two UCS-2 segments, then the link
        assert count_segments(body.rpartition("\n")[0]).count <= 2
