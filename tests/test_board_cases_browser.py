"""The board's cases tab in a real Chromium on a 360 px phone, in Thai: a Phitsanulok
supervisor opens the caseload, filters the Zero Dropout children, opens the case, reveals the
person with a reason and starts the screening. Screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import SERVICES, create_app
from bot.staff import StaffMember
from channels.board import totp
from channels.board.auth import hash_password
from channels.registry import ChannelRegistry
from config.settings import Settings
from tests.test_board_browser import PASSWORD, sign_in
from tests.test_volunteer_case import intake, register
from tests.test_webchat import browser, shot

__all__ = ["browser"]


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["board"]))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


# What is wider than the screen, for the failure message.
WIDEST = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right
  > 361).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' +
  Math.round(e.getBoundingClientRect().right)).join('; ')"""


async def fits(page: Any) -> bool:
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width <= 360


@pytest.mark.browser
async def test_a_supervisor_works_a_case_on_a_phone_in_thai(
        browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    services = app[SERVICES]
    await services.storage.staff.add(
        StaffMember("somchai", "สมชาย พ.", "th", ("supervisor",), ("65",)),
        hash_password(PASSWORD))
    secret = totp.new_secret()  # a supervisor signs in with a one-time code too
    await services.storage.staff.set_totp("somchai", secret)
    await register(services)
    reference = (await intake(services))[-1].text.params["case_reference"]
    await register(services, "vol2")
    other = (await intake(services, "vol2", hardships=("income",)))[-1].text.params[
        "case_reference"]

    phone = await browser.new_context(viewport={"width": 360, "height": 740},
                                      locale="th-TH", base_url=base, has_touch=True)
    page = await sign_in(phone, "somchai", secret)
    await page.get_by_role("link", name="เคสสวัสดิการ").click()
    await page.wait_for_url("**/board/cases")
    await page.get_by_role("heading", name="เคสสวัสดิการ").wait_for()
    assert reference in await page.content() and other in await page.content()
    await page.get_by_label("ข้อสังเกต").select_option("zero_dropout")
    await page.get_by_role("button", name="กรอง").click()
    await page.wait_for_url("**flag=zero_dropout**")
    assert other not in await page.content()
    await page.screenshot(path=shot("board-cases-360-th.png"), full_page=True)
    assert await fits(page), await page.evaluate(WIDEST)

    await page.get_by_role("link", name=reference).click()
    await page.wait_for_url(f"**/board/cases/{reference}")
    content = await page.content()
    assert "เบี้ยยังชีพผู้สูงอายุ" in content  # screening: the elderly allowance may apply
    assert "rice and school fees" not in content  # hidden until revealed
    await page.get_by_label("เหตุผล").select_option("assessment")
    await page.get_by_role("button", name="แสดงข้อมูลบุคคล").click()
    await page.get_by_text("rice and school fees").wait_for()
    await page.get_by_role("button", name="เริ่มคัดกรอง").click()
    await page.locator("#status", has_text="กำลังคัดกรอง").wait_for()
    await page.screenshot(path=shot("board-case-360-th.png"), full_page=True)
    assert await fits(page), await page.evaluate(WIDEST)
    case = await services.storage.cases.get(reference)
    assert case is not None and case.status == "screening"
    await phone.close()
