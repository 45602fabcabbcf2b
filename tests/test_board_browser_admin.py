"""What issue 11's second round shows, in Chromium: the sign-in with a one-time code, station
markers on the map, the alarm sound toggle (off by default, remembered by the browser), the
staff administration page, and the incident page's record (who was told at which level, the
relay chat); at 1440 px and at 360 px with nothing wider than the screen (screenshots in
the test artifacts)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import SERVICES
from bot.staff import StaffMember
from channels.board import totp
from channels.board.auth import hash_password
from tests.dispatch_kit import report
from tests.test_board import fresh_code
from tests.test_board_browser import PASSWORD, browser, live
from tests.test_webchat import shot

__all__ = ["browser", "live"]  # the fixtures, shared with the board's other browser test

ADMIN = StaffMember("malee", "มาลี ส.", "th", ("admin",), ("65",))


async def sign_in(context: Any, secret: bytes) -> Any:
    page = await context.new_page()
    await page.goto("/board/login")
    await page.get_by_label("ชื่อผู้ใช้").fill(ADMIN.login)
    await page.get_by_label("รหัสผ่าน").fill(PASSWORD)
    await page.get_by_label("รหัสจากแอป").fill(await fresh_code(secret))
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await page.wait_for_url("**/board")
    return page


async def fits(page: Any, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.browser
async def test_admin_pages_stations_sound_and_the_incident_record(
        browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    services = app[SERVICES]
    staff = services.storage.staff
    await staff.add(ADMIN, hash_password(PASSWORD))
    secret = totp.new_secret()
    await staff.set_totp(ADMIN.login, secret)

    # Without the code the sign-in is refused, in words.
    wall = await browser.new_context(viewport={"width": 1440, "height": 900},
                                     locale="th-TH", base_url=base)
    page = await wall.new_page()
    await page.goto("/board/login")
    await page.get_by_label("ชื่อผู้ใช้").fill(ADMIN.login)
    await page.get_by_label("รหัสผ่าน").fill(PASSWORD)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await page.get_by_text("รหัสใช้ครั้งเดียวไม่ถูกต้อง").wait_for()
    await page.screenshot(path=shot("board-login-code-1440-th.png"), full_page=True)
    await page.close()

    board = await sign_in(wall, secret)
    await board.locator("#live.on").wait_for(timeout=10_000)
    # The directory's stations of Phitsanulok are on the map, apart from the incidents.
    stations = [s for s in services.directory.stations if "65" in s.areas]
    assert stations
    await board.locator("path.station").first.wait_for()
    assert await board.locator("path.station").count() == len(stations)
    # The alarm sound is off until turned on, and the browser remembers the choice.
    sound = board.locator("#sound")
    assert await sound.inner_text() == "เสียงเตือน: ปิด"
    await sound.click()
    assert await sound.inner_text() == "เสียงเตือน: เปิด"
    await board.reload()
    assert await board.locator("#sound").inner_text() == "เสียงเตือน: เปิด"
    assert await board.evaluate("document.body.dataset.rang || ''") == ""

    incident = await report(services, "web:reporter-1")
    row = board.locator(f"#row-{incident.reference}")
    await row.wait_for(timeout=10_000)
    await board.wait_for_function("document.body.dataset.rang", timeout=5_000)  # it rang
    await board.screenshot(path=shot("board-stations-1440-th.png"), full_page=True)

    # Staff administration: add a responder of a district inside the admin's province.
    await board.get_by_role("link", name="เจ้าหน้าที่").click()
    await board.wait_for_url("**/board/admin/staff")
    form = board.locator("form.staff-form").last
    await form.get_by_label("ชื่อผู้ใช้").fill("dao")
    await form.get_by_label("ชื่อ", exact=True).fill("ดาว <b>ร.</b>")
    await form.get_by_label("พื้นที่").fill("6501")
    await form.get_by_role("button", name="เพิ่มบัญชี").click()
    await board.get_by_text("เพิ่มบัญชี dao แล้ว").wait_for()
    assert "/board/password?token=" in await board.locator(".answer").inner_text()
    assert await board.locator("#staff-dao").get_by_text("ดาว <b>ร.</b>").count() == 1
    await board.screenshot(path=shot("board-staff-1440-th.png"), full_page=True)

    # The incident page: who was told at which level; the relay chat after a message.
    await board.goto(f"/board/i/{incident.reference}")
    await board.get_by_role("button", name="รับเรื่อง").click()
    await board.get_by_label("ข้อความถึงผู้แจ้ง").fill("<i>อยู่ในที่ปลอดภัย</i> กำลังไป")
    await board.get_by_role("button", name="ส่งถึงผู้แจ้ง").click()
    chat = board.locator(".relay-chat li.to_reporter")
    await chat.wait_for()
    assert await chat.locator(".relay-text").inner_text() == "<i>อยู่ในที่ปลอดภัย</i> กำลังไป"
    told = board.locator("table.told tbody tr")
    assert await told.count() >= 1
    assert (await told.first.locator("td").first.inner_text()).strip() == "ระดับ 0"
    await board.screenshot(path=shot("board-record-1440-th.png"), full_page=True)

    # The same pages on a phone.
    narrow = await browser.new_context(viewport={"width": 360, "height": 740},
                                       locale="th-TH", base_url=base, has_touch=True)
    small = await sign_in(narrow, secret)
    assert await small.locator("#sound").inner_text() == "เสียงเตือน: ปิด"  # another browser
    await fits(small, 360)
    await small.goto("/board/admin/staff")
    await fits(small, 360)
    await small.screenshot(path=shot("board-staff-360-th.png"), full_page=True)
    await small.goto(f"/board/i/{incident.reference}")
    await small.locator(".relay-chat").wait_for()
    await fits(small, 360)
    await small.screenshot(path=shot("board-record-360-th.png"), full_page=True)
    for context in (wall, narrow):
        await context.close()
