"""The board in a real Chromium, with the web chat and LINE (the stand-in) in the same app.

A Phitsanulok supervisor signs in; a report made through the web chat in another browser
context appears on the board without a reload, with its escalation countdown; the
supervisor acknowledges it and gives an ETA from the board; the reporter's page shows both
updates; the LINE group bound to Phitsanulok is told who has it. A supervisor of another
province neither sees it nor opens it by reference. Screenshots at 360 px and 1440 px.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import SERVICES, create_app
from bot.staff import StaffMember
from channels.board import totp
from channels.board.auth import hash_password
from channels.registry import ChannelRegistry
from config.settings import Settings
from tests import line_events as ev
from tests.line_standin import LineStandIn
from tests.test_board import fresh_code
from tests.test_webchat import browser, phone_context, shot

__all__ = ["browser"]  # the fixture, shared with the web chat's browser tests

PASSWORD = "correct horse battery"
GROUP, RESPONDER = "C" + "3" * 32, "U" + "2" * 32


@pytest.fixture
async def live(line_settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(line_settings, channels=ChannelRegistry.discover(
        line_settings, only=["web", "board", "line"]))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


async def line_post(base: str, event: dict[str, Any]) -> None:
    raw = ev.body(event)
    async with aiohttp.ClientSession() as session, session.post(
            f"{base}/webhooks/line", data=raw, headers={
                "Content-Type": "application/json", "X-Line-Signature": ev.sign(raw)}) as r:
        assert r.status == 200


async def sign_in(context: Any, login: str, secret: bytes) -> Any:
    page = await context.new_page()
    await page.goto("/board")
    assert page.url.endswith("/board/login")
    await page.get_by_label("ชื่อผู้ใช้").fill(login)
    await page.get_by_label("รหัสผ่าน").fill(PASSWORD)
    # A supervisor signs in with the code of their authenticator app (the second factor).
    await page.get_by_label("รหัสจากแอป").fill(await fresh_code(secret))
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await page.wait_for_url("**/board")
    await page.locator("#live.on").wait_for(timeout=10_000)
    return page


async def until(check: Any, what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(what)


@pytest.mark.browser
async def test_a_web_report_reaches_the_board_live_and_is_taken_from_it(
        browser: Any, live: tuple[str, Any], line_api: LineStandIn) -> None:
    base, app = live
    services = app[SERVICES]
    staff = services.storage.staff
    await staff.add(StaffMember("somchai", "สมชาย พ.", "th", ("supervisor",), ("65",)),
                    hash_password(PASSWORD))
    await staff.add(StaffMember("anong", "อนงค์ ก.", "th", ("supervisor",), ("50",)),
                    hash_password(PASSWORD))
    secrets = {login: totp.new_secret() for login in ("somchai", "anong")}
    for login, secret in secrets.items():
        await staff.set_totp(login, secret)
    code = await services.storage.bindings.create_code("65", "police", 3600,
                                                       datetime.now(UTC))
    await line_post(base, ev.text(ev.group(GROUP, RESPONDER), f"/register {code}"))

    wall = await browser.new_context(viewport={"width": 1440, "height": 900},
                                     locale="th-TH", base_url=base)
    board = await sign_in(wall, "somchai", secrets["somchai"])
    other = await browser.new_context(viewport={"width": 1440, "height": 900},
                                      locale="th-TH", base_url=base)
    elsewhere = await sign_in(other, "anong", secrets["anong"])

    phone = await phone_context(browser, base)
    chat = await phone.new_page()
    await chat.goto("/chat")
    await chat.get_by_role("button", name="ถูกข่มขู่ว่าจะทำร้าย หรือถูกทำร้าย").click()
    await chat.get_by_role("button", name="ใช้ตำแหน่งของฉัน").click()
    number = chat.get_by_label("เบอร์โทรศัพท์")
    await number.fill("081-234-5678")
    await number.press("Enter")
    await chat.get_by_role("button", name="ส่งแจ้งเหตุ").click()
    await chat.get_by_text("รับแจ้งเหตุแล้ว เลขที่ ESS-").wait_for()
    [incident] = await services.storage.incidents.recent()
    reference = incident.reference

    # On the board without a reload, waiting for acknowledgement, with the countdown.
    row = board.locator(f"#row-{reference}")
    await row.wait_for(timeout=10_000)
    await board.locator("#alarm").wait_for()
    assert "ยกระดับใน" in await row.locator("[data-times]").inner_text()
    await board.screenshot(path=shot("board-1440-th.png"), full_page=True)

    # The other province's supervisor sees nothing of it, and cannot open it by reference.
    await asyncio.sleep(1.0)
    assert await elsewhere.locator(f"#row-{reference}").count() == 0
    assert reference not in await elsewhere.content()
    response = await elsewhere.goto(f"/board/i/{reference}")
    assert response.status == 404
    assert "ไม่พบเหตุที่มีเลขอ้างอิงนี้ในพื้นที่ของคุณ" in await elsewhere.content()

    # Acknowledge, then an ETA, from the incident page.
    await row.get_by_role("link", name=reference).click()
    await board.wait_for_url(f"**/board/i/{reference}")
    assert "+66812345678" not in await board.content()
    await board.get_by_role("button", name="รับเรื่อง").click()
    await board.get_by_role("button", name="กำลังเดินทาง ถึงใน").wait_for()
    await board.get_by_label("นาที").fill("12")
    await board.get_by_role("button", name="กำลังเดินทาง ถึงใน").click()
    await board.locator("#status", has_text="กำลังเดินทาง").wait_for()
    await board.screenshot(path=shot("board-incident-1440-th.png"), full_page=True)

    # The reporter's page shows both updates.
    await chat.get_by_text(f"ความคืบหน้า {reference}: เจ้าหน้าที่ รับเรื่องของคุณแล้ว").wait_for(
        timeout=15_000)
    await chat.get_by_text("คาดว่าจะถึงในประมาณ 12 นาที").wait_for(timeout=15_000)

    # The LINE group was told who has it.
    async def group_told() -> bool:
        return any(c.raw["to"] == GROUP and "สมชาย พ." in json.dumps(c.raw["messages"],
                                                                       ensure_ascii=False)
                   for c in line_api.ok("push"))

    await until(group_told, "the LINE group was not told who has it")
    assert line_api.invalid == []

    # The same board on a phone: nothing wider than the screen.
    narrow = await browser.new_context(viewport={"width": 360, "height": 740},
                                       locale="th-TH", base_url=base, has_touch=True)
    small = await sign_in(narrow, "somchai", secrets["somchai"])
    await small.locator(f"#row-{reference}").wait_for()
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    await small.screenshot(path=shot("board-360-th.png"), full_page=True)
    for context in (wall, other, phone, narrow):
        await context.close()
