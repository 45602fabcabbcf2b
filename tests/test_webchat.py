"""The web chat: the websocket protocol directly, then whole reports in a real Chromium."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import CHANNELS, SERVICES, create_app
from bot.outbound import SendOutcome
from bot.types import Kind, LocationSource, Reply, Text, utcnow
from channels.registry import ChannelRegistry
from channels.testkit import (
    Expect,
    IncomingCase,
    OutgoingCase,
    run_incoming_cases,
    run_outgoing_cases,
)
from channels.webchat.live import transcript_key
from config.settings import Settings
from storage.ports import Limit
from tests.dispatch_kit import report, routed, settle
from tests.helpers import require

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
HOME = {"latitude": 16.8211, "longitude": 100.2659, "accuracy": 15}


def web_app(settings: Settings) -> Any:
    return create_app(settings, channels=ChannelRegistry.discover(settings, only=["web"]))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(web_app(settings), host="127.0.0.1")) as test_client:
        yield test_client


async def hello(client: TestClient[Any, Any], token: str | None = None, after: int = 0,
                **extra: Any) -> tuple[Any, dict[str, Any]]:
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"type": "hello", "token": token, "after": after, "lang": "en", **extra})
    welcome = await ws.receive_json()
    assert welcome["type"] == "welcome"
    return ws, welcome


async def until_prompt(ws: Any) -> list[dict[str, Any]]:
    """Frames up to and including the next message that asks something."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await ws.receive_json()
        frames.append(frame)
        if frame["type"] == "message" and (frame["choices"] or frame["ask"]):
            return frames


async def test_page_and_widget_are_served(client: TestClient[Any, Any]) -> None:
    page = await client.get("/chat", headers={"Accept-Language": "en-GB,en;q=0.8"})
    html = await page.text()
    assert page.status == 200 and '<html lang="en">' in html
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    silent = await (await client.get("/chat?silent=1")).text()
    assert "<title>บันทึก</title>" in silent and "neutral.svg" in silent
    assert "ESS Help Me" not in silent.split("</title>")[0]
    widget = await client.get("/chat/widget.js")
    assert widget.status == 200 and "iframe" in await widget.text()
    assert (await client.get("/chat/static/..%2Fpages.py")).status == 404
    assert (await client.get("/chat/static/nothing.js")).status == 404


async def test_token_survives_reconnect_and_missed_messages_replay(
        client: TestClient[Any, Any]) -> None:
    ws, welcome = await hello(client)
    token = welcome["token"]
    await ws.send_json({"type": "start", "id": "m1", "flow": "report"})
    frames = await until_prompt(ws)
    seen = max(f["seq"] for f in frames if f["type"] == "message")
    await ws.send_json({"type": "choice", "id": "m2", "value": "threat"})
    await until_prompt(ws)
    await ws.close()

    # Reconnect having seen only the first prompt: the location prompt comes again.
    ws, again = await hello(client, token=token, after=seen)
    assert again["token"] == token
    replayed = await ws.receive_json()
    assert replayed["seq"] == seen + 1 and replayed["ask"] == "location"
    # A frame resent after the reconnect is handled once.
    await ws.send_json({"type": "choice", "id": "m2", "value": "threat"})
    assert (await ws.receive_json()) == {"type": "ack", "id": "m2"}
    await ws.send_json({"type": "location", "id": "m3", "lat": 16.82, "lon": 100.26,
                        "accuracy": 30, "source": "device"})
    frames = await until_prompt(ws)
    assert frames[-1]["ask"] == "phone"
    await ws.close()


async def test_a_resent_frame_whose_answer_was_lost_is_asked_again(
        client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, _ = await hello(client)
    await ws.send_json({"type": "start", "id": "m1", "flow": "report"})
    await until_prompt(ws)
    assert await ws.receive_json() == {"type": "ack", "id": "m1"}
    # The session is saved, then the transcript cannot be written: the answer is lost, as
    # when the process dies between the two.
    web_channel = client.app[CHANNELS].get("web")
    live = web_channel.live  # type: ignore[union-attr]
    store_up = asyncio.Event()
    publish = live.publish

    async def flaky(conversation: str, frame: dict[str, Any], key: str | None = None) -> bool:
        if not store_up.is_set():
            raise OSError("the transcript store went away")
        return await publish(conversation, frame, key)

    monkeypatch.setattr(live, "publish", flaky)
    choice = {"type": "choice", "id": "m2", "value": "threat"}
    await ws.send_json(choice)
    assert await ws.receive_json() == {"type": "error", "code": "unavailable", "id": "m2"}
    store_up.set()
    # The page resends it (never acked): handled once, and asked where it stands.
    await ws.send_json(choice)
    frames = await asyncio.wait_for(until_prompt(ws), 30)  # a guard, not a timing
    assert frames[-1]["ask"] == "location"
    assert await ws.receive_json() == {"type": "ack", "id": "m2"}
    # Resent once more (an ack lost on the way): the answer is not shown twice.
    await ws.send_json(choice)
    assert await ws.receive_json() == {"type": "ack", "id": "m2"}
    await ws.close()


async def test_forged_token_gets_a_new_conversation(client: TestClient[Any, Any]) -> None:
    _, welcome = await hello(client)
    conversation, _, _ = welcome["token"].partition(".")
    ws, forged = await hello(client, token=f"{conversation}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert not forged["token"].startswith(conversation)
    await ws.close()


async def test_bad_frames_get_error_codes_and_the_socket_stays(
        client: TestClient[Any, Any]) -> None:
    ws = await client.ws_connect("/chat/ws")
    await ws.send_json({"type": "choice", "id": "x", "value": "threat"})
    assert (await ws.receive_json())["code"] == "hello_first"
    await ws.send_json({"type": "hello", "token": None})
    await ws.receive_json()
    for frame, code in [("not json", "not_json"), ("[1]", "not_an_object"),
                        ('{"type": "choice", "value": "x"}', "bad_id"),
                        ('{"type": "location", "id": "a", "lat": "x"}', "bad_location"),
                        ('{"type": "dance", "id": "b"}', "unknown_type")]:
        await ws.send_str(frame)
        assert (await ws.receive_json())["code"] == code
    await ws.send_json({"type": "start", "id": "s1"})
    frames = [await ws.receive_json() for _ in range(3)]
    assert [f["type"] for f in frames] == ["message", "message", "ack"]
    await ws.close()


async def test_a_flood_of_frames_is_refused(client: TestClient[Any, Any]) -> None:
    ws, _ = await hello(client)
    for i in range(30):
        await ws.send_json({"type": "dance", "id": f"f{i}"})
    codes = [(await ws.receive_json())["code"] for _ in range(30)]
    assert codes.count("unknown_type") == 19 and codes.count("slow_down") == 11
    await ws.close()


async def test_frames_over_the_address_limit_are_refused_visibly(settings: Settings) -> None:
    limited = replace(settings, limit_web_frames=5)
    async with TestClient(TestServer(web_app(limited), host="127.0.0.1")) as client:
        first, _ = await hello(client)
        second, _ = await hello(client)  # another socket from the same address
        outcomes: list[tuple[str, str]] = []
        for i, ws in enumerate([first] * 4 + [second] * 4):
            await ws.send_json({"type": "text", "id": f"t{i}", "text": "hello"})
            while True:
                frame = await ws.receive_json()
                if frame["type"] in ("ack", "error"):
                    outcomes.append((frame["type"], frame.get("code", "")))
                    break
        assert outcomes == [("ack", "")] * 5 + [("error", "slow_down")] * 3
        # The refusal names the frame and when to send it again; nothing else came.
        await second.send_json({"type": "text", "id": "again", "text": "hello"})
        refusal = await second.receive_json()
        assert refusal["id"] == "again" and refusal["retry_after"] >= 1
        for ws in (first, second):
            await ws.close()


async def test_sockets_over_the_address_limit_are_told_busy(settings: Settings) -> None:
    limited = replace(settings, limit_web_sockets=2)
    async with TestClient(TestServer(web_app(limited), host="127.0.0.1")) as client:
        kept = [(await hello(client))[0] for _ in range(2)]
        ws = await client.ws_connect("/chat/ws")
        refusal = await ws.receive_json()
        assert refusal["type"] == "error" and refusal["code"] == "busy"
        await ws.receive()  # then the server closes it
        assert ws.closed and ws.close_code == WSCloseCode.TRY_AGAIN_LATER
        for open_ws in kept:
            await open_ws.close()


async def test_send_reaches_an_open_page_and_a_closed_one_on_reconnect(
        client: TestClient[Any, Any]) -> None:
    registry = client.app[CHANNELS]
    ws, welcome = await hello(client)
    conversation = welcome["token"].partition(".")[0]
    update = Reply(Text("report.received_short", {"reference": "ESS-7K3F9"}), "en")
    assert (await registry.send(f"web:{conversation}", update, key="k1")).ok
    assert "ESS-7K3F9" in (await ws.receive_json())["text"]
    await ws.close()
    assert (await registry.send(f"web:{conversation}", update, key="k2")).ok
    assert (await registry.send(f"web:{conversation}", update, key="k2")).ok  # a retry
    ws, _ = await hello(client, token=welcome["token"], after=1)
    assert (await ws.receive_json())["seq"] == 2
    transcript = await client.app[SERVICES].storage.transcripts.after(f"web:{conversation}", 0)
    assert len(transcript) == 2  # not 3
    await ws.close()
    for _ in range(200):  # bounded: the server's side of the close
        if not len(registry.get("web").live):
            break
        await asyncio.sleep(0.01)
    assert not len(registry.get("web").live)  # a closed page leaves nothing behind


# -- in a real browser ------------------------------------------------------------------------

@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require(HAVE_CHROMIUM, "Debian chromium (/usr/bin/chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    server = TestServer(web_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server.app
    finally:
        await server.close()


async def phone_context(browser: Any, base: str, geolocation: bool = True) -> Any:
    return await browser.new_context(
        viewport={"width": 360, "height": 740}, locale="th-TH", has_touch=True,
        geolocation=HOME if geolocation else None,
        permissions=["geolocation"] if geolocation else [], base_url=base)


async def until(page: Any, check: str, seconds: float = 20.0) -> None:
    """Poll a function in the page (wait_for_function evaluates strings, which the page's
    CSP rightly refuses)."""
    for _ in range(int(seconds / 0.1)):
        if await page.evaluate(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true: {check}")


def shot(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


@pytest.mark.browser
async def test_a_full_report_in_the_browser(browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    context = await phone_context(browser, base)
    page = await context.new_page()
    await page.goto("/chat")
    assert await page.title() == "ESS Help Me"
    await page.get_by_role("button", name="ถูกข่มขู่ว่าจะทำร้าย หรือถูกทำร้าย").click()
    await page.get_by_role("button", name="ใช้ตำแหน่งของฉัน").click()
    phone = page.get_by_label("เบอร์โทรศัพท์")
    await phone.fill("081-234-5678")
    await phone.press("Enter")
    await page.get_by_role("button", name="ส่งแจ้งเหตุ").click()
    await page.get_by_text("รับแจ้งเหตุแล้ว เลขที่ ESS-").wait_for()
    await page.get_by_role("button", name="ผู้พบเห็น").wait_for()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.screenshot(path=shot("webchat-report-th.png"), full_page=True)

    [incident] = await app[SERVICES].storage.incidents.recent()
    assert incident.channel == "web" and incident.phone == "+66812345678"
    assert incident.location.source is LocationSource.DEVICE
    assert incident.location.accuracy_m == 15
    assert abs(incident.location.lat - HOME["latitude"]) < 1e-6
    await context.close()


@pytest.mark.browser
async def test_a_full_silent_report_by_taps_then_quick_exit(
        browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    context = await phone_context(browser, base)
    page = await context.new_page()
    await page.goto("/chat?silent=1")
    assert await page.title() == "บันทึก"
    assert await page.get_attribute("#favicon", "href") == "/chat/static/neutral.svg"
    assert not await page.is_visible("#text-form")
    await page.get_by_role("button", name="ต่อไป").click()
    await page.get_by_role("button", name="ถูกกักขังหน่วงเหนี่ยว").click()
    await page.get_by_role("button", name="ใช้ตำแหน่งของฉัน").click()
    await page.get_by_role("button", name="ไม่ได้ พิมพ์คุยเท่านั้น").click()
    await page.get_by_role("button", name="ตอนนี้ปลอดภัยแล้ว").wait_for()
    # Nothing the reporter tapped is echoed on the screen.
    assert await page.locator("li.me").count() == 0
    assert await page.evaluate("sessionStorage.length") == 0
    await page.screenshot(path=shot("webchat-silent-th.png"), full_page=True)

    [incident] = await app[SERVICES].storage.incidents.recent()
    assert incident.silent and incident.do_not_call and incident.type == "confinement"

    history = await page.evaluate("history.length")
    await page.get_by_role("button", name="ออก").click()
    await page.wait_for_url("**/chat/exit")
    assert await page.evaluate("history.length") == history
    assert await page.title() == "บันทึก"
    await page.go_back()
    assert "/chat?" not in page.url and not page.url.endswith("/chat")
    await context.close()


@pytest.mark.browser
async def test_a_refused_tap_is_sent_again_by_the_page(browser: Any, settings: Settings
                                                       ) -> None:
    limited = replace(settings, limit_web_frames=60)  # one frame a second comes back
    server = TestServer(web_app(limited), host="127.0.0.1")
    await server.start_server()
    try:
        context = await phone_context(browser, str(server.make_url("")).rstrip("/"))
        page = await context.new_page()
        await page.goto("/chat?lang=en")
        tap = page.get_by_role("button", name="Threatened with harm, or assaulted")
        await tap.wait_for()
        # Everyone behind this address used the minute's frames (the page's own address),
        # taken as by a clock 5 s ahead: the bucket gives nothing back for the next ~6 s, so
        # a slow machine's click cannot slip in on the token a second brings back.
        limits = server.app[SERVICES].storage.limits
        bucket = Limit("web:frame:addr:127.0.0.1", 60, 60.0)
        ahead = utcnow() + timedelta(seconds=5)
        while await limits.take([bucket], ahead) is None:
            pass
        await tap.click()
        await page.get_by_text("Many messages at once").wait_for()  # told, politely
        await page.get_by_role("button", name="Use my location").wait_for()  # then sent
        assert await page.locator("#status").text_content() == ""
        await context.close()
    finally:
        await server.close()


@pytest.mark.browser
async def test_location_by_map_tap_when_geolocation_is_refused(
        browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    context = await phone_context(browser, base, geolocation=False)
    page = await context.new_page()
    await page.goto("/chat?lang=en")
    await page.get_by_role("button", name="Threatened with harm, or assaulted").click()
    await page.get_by_role("button", name="Use my location").click()
    await page.get_by_text("Location is off").wait_for()
    await page.locator("#map").click(position={"x": 150, "y": 100})
    await page.get_by_role("button", name="Send this point").click()
    await page.get_by_label("Phone number").wait_for()
    await page.screenshot(path=shot("webchat-map-en.png"), full_page=True)
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('ess-chat')).token")
    conversation = token.partition(".")[0]
    loaded = await app[SERVICES].storage.sessions.load(f"web:{conversation}", "probe")
    location = loaded.session.slots["location"]
    assert location["source"] == "reporter_pin" and location["lat"] is not None
    await context.close()


@pytest.mark.browser
async def test_keyboard_only(browser: Any, live: tuple[str, Any]) -> None:
    base, _ = live
    context = await phone_context(browser, base)
    page = await context.new_page()
    await page.goto("/chat?lang=en")
    await page.get_by_role("button", name="Confined or detained").wait_for()
    # The first choice has focus; Tab reaches the others; Enter picks.
    assert await page.evaluate("document.activeElement.textContent") == \
        "Threatened with harm, or assaulted"
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Use my location").wait_for()
    assert await page.evaluate("document.activeElement.id") == "geo"
    await page.keyboard.press("Enter")
    await page.get_by_label("Phone number").wait_for()
    assert await page.evaluate("document.activeElement.id") == "phone"
    await context.close()


CONTRAST = """
() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c && !c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return c;
    }
    return "rgb(255, 255, 255)";
  };
  return [...document.querySelectorAll("button:not([disabled]), li, label, h1")]
    .filter((el) => el.offsetParent !== null)
    .map((el) => {
      const a = lum(rgb(getComputedStyle(el).color)), b = lum(rgb(background(el)));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      return [el.textContent.trim().slice(0, 30), ratio];
    });
}
"""


@pytest.mark.browser
async def test_text_contrast_meets_wcag_aa(browser: Any, live: tuple[str, Any]) -> None:
    base, _ = live
    context = await phone_context(browser, base)
    page = await context.new_page()
    await page.goto("/chat")
    await page.get_by_role("button", name="ถูกกักขังหน่วงเหนี่ยว").wait_for()
    ratios = await page.evaluate(CONTRAST)
    assert len(ratios) > 5
    low = [(label, round(ratio, 2)) for label, ratio in ratios if ratio < 4.5]
    assert low == []
    await context.close()


def tile_png() -> bytes:
    """A 256x256 grey PNG: enough for the browser to draw a tile."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = (b"\x00" + b"\xc8" * 256 * 3) * 256
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0,
                                                               0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.browser
async def test_map_tiles_come_from_the_configured_server(browser: Any, tmp_path: Path) -> None:
    requested: list[str] = []

    async def tile(request: web.Request) -> web.Response:
        requested.append(request.path)
        return web.Response(body=tile_png(), content_type="image/png")

    tiles = web.Application()
    tiles.router.add_get("/{z}/{x}/{y}.png", tile)
    tile_server = TestServer(tiles, host="127.0.0.1")
    await tile_server.start_server()
    settings = Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_WEBCHAT_TILE_URL": str(tile_server.make_url("/{z}/{x}/{y}.png")).replace(
            "%7B", "{").replace("%7D", "}"),
        "ESS_WEBCHAT_TILE_ATTRIBUTION": "© Test Tiles"})
    server = TestServer(web_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        context = await phone_context(browser, str(server.make_url("")).rstrip("/"),
                                      geolocation=False)
        page = await context.new_page()
        await page.goto("/chat?lang=en")
        await page.get_by_role("button", name="Confined or detained").click()
        await until(page, "() => [...document.querySelectorAll('#map img.leaflet-tile')]"
                    ".some(i => i.naturalWidth === 256)")
        assert requested and all(p.startswith("/5/") for p in requested)
        assert not await page.is_visible("#map-note")
        # The tile server's credit line from the settings, on the map.
        assert "© Test Tiles" in await page.locator(".leaflet-control-attribution").inner_text()
        # Tiles given: the map is theirs, no place names drawn over them.
        assert await page.locator(".leaflet-tooltip.place").count() == 0
        await context.close()
    finally:
        await server.close()
        await tile_server.close()


@pytest.mark.browser
async def test_the_widget_embeds_the_chat_in_another_site(
        browser: Any, live: tuple[str, Any]) -> None:
    base, _ = live
    site = web.Application()

    async def home(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html><head><title>School</title></head><body><p>School news</p>"
            f'<script src="{base}/chat/widget.js" data-lang="en" async></script>'
            "</body></html>"))

    site.router.add_get("/", home)
    site_server = TestServer(site, host="127.0.0.1")
    await site_server.start_server()
    try:
        context = await phone_context(browser, str(site_server.make_url("")).rstrip("/"))
        page = await context.new_page()
        await page.goto("/")
        await page.get_by_role("button", name="ESS Help Me").click()
        chat = page.frame_locator("iframe[title='ESS Help Me']")
        await chat.get_by_role("button", name="Confined or detained").wait_for()
        await context.close()
    finally:
        await site_server.close()


async def test_web_chat_through_the_channel_test_kit(client: TestClient[Any, Any]) -> None:
    services = client.app[SERVICES]
    web_channel = client.app[CHANNELS].get("web")
    assert web_channel is not None
    ws, welcome = await hello(client)
    checked = web_channel.signer.check(welcome["token"])  # type: ignore[attr-defined]
    assert checked is not None
    me = checked.conversation

    def frame(label: str, data: dict[str, Any], expect: Expect | None,
              status: int = 200) -> IncomingCase:
        return IncomingCase(label, json.dumps(data).encode(), {}, status, expect)

    async def post_case(case: IncomingCase) -> int:
        await ws.send_str(case.body.decode())
        while True:
            answer = await ws.receive_json()
            if answer["type"] in ("ack", "error"):
                return 200 if answer["type"] == "ack" else 400

    async def nothing() -> None:
        pass

    await run_incoming_cases(post_case, services.inbound, nothing, [
        frame("start", {"type": "start", "id": "w1", "flow": "report"},
              Expect(Kind.START, me, "report")),
        frame("choice", {"type": "choice", "id": "w2", "value": "threat"},
              Expect(Kind.CHOICE, me, "threat")),
        frame("text", {"type": "text", "id": "w3", "text": "ESS-7K3F9 ack"},
              Expect(Kind.TEXT, me, "ESS-7K3F9 ack")),
        frame("pin", {"type": "location", "id": "w4", "lat": 16.8, "lon": 100.2},
              Expect(Kind.LOCATION, me)),
        frame("no id", {"type": "text", "text": "x"}, None, 400),
        frame("dance", {"type": "dance", "id": "w5"}, None, 400),
    ])

    kit = await routed(services)

    async def received() -> str:
        entries = await services.storage.transcripts.after(transcript_key(me), 0)
        return "\n".join(json.dumps(json.loads(e.body), ensure_ascii=False) for e in entries)

    await run_outgoing_cases(client.app[CHANNELS].send, received, [
        OutgoingCase("card", f"web:{me}", kit.card,
                     contains=('"card": {', kit.incident.reference, '"province": "พิษณุโลก"',
                               f"act:ack:{kit.incident.reference}")),
        OutgoingCase("escalation", f"web:{me}", kit.escalation,
                     contains=('"escalated": true', '"kind": "escalation"')),
        OutgoingCase("update", f"web:{me}", kit.update, contains=("ตำรวจ",)),
        OutgoingCase("not web", "line:U1", kit.update, SendOutcome.FAILED),
    ])
    await ws.close()


async def test_a_staff_member_registers_a_web_chat_and_acts_on_a_card(
        client: TestClient[Any, Any]) -> None:
    services = client.app[SERVICES]
    ws, _ = await hello(client)
    code = await services.storage.bindings.create_code("65", "welfare", 3600, utcnow())
    await ws.send_json({"type": "text", "id": "s1", "text": f"/register {code}"})
    frames = await until_ack(ws, "s1")
    assert any("65" in f.get("text", "") for f in frames)
    incident = await report(services, "citizen")
    await settle(services)
    card = await until_card(ws)
    assert card["card"]["reference"] == incident.reference
    assert card["card"]["station"].startswith("สถานีตำรวจภูธรเมืองพิษณุโลก")
    [ack] = [c["value"] for c in card["choices"]]
    await ws.send_json({"type": "choice", "id": "s2", "value": ack})
    frames = await until_ack(ws, "s2")
    stored = await services.storage.incidents.get(incident.reference)
    assert stored is not None and stored.status == "acknowledged"
    assert any(incident.reference in f.get("text", "") for f in frames)
    await ws.close()


async def until_ack(ws: Any, event_id: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = await ws.receive_json()
        frames.append(frame)
        if frame["type"] == "ack" and frame["id"] == event_id:
            return frames


async def until_card(ws: Any) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json()
        if frame.get("card"):
            return frame  # type: ignore[no-any-return]
