"""The PDPA page in Chromium, in Thai: an admin finds a subject by phone, exports (the
one-time password shown once, the sealed file downloaded once and opened with it), then
erases with a reason and a confirmation; at 1440 px and 360 px with nothing wider than the
screen (screenshots in the test artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import SERVICES
from bot.privacy.sealed_export import open_export
from bot.staff import StaffMember
from channels.board import totp
from channels.board.auth import hash_password
from storage.vault import is_erased
from tests.dispatch_kit import report
from tests.test_board_browser import PASSWORD, browser, live, sign_in
from tests.test_webchat import shot

__all__ = ["browser", "live"]  # the fixtures, shared with the board's other browser tests

DPO = StaffMember("dpo", "ผู้คุ้มครองข้อมูล", "th", ("admin",), ("TH",))
PHONE = "081-234-5678"


async def fits(page: Any, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def find(page: Any, by: str, value: str) -> None:
    form = page.locator("form.pdpa-find")
    await form.locator("select[name=by]").select_option(by)
    await form.locator("input[name=value]").fill(value)
    await form.get_by_role("button", name="ค้นหา").click()


@pytest.mark.browser
async def test_an_admin_finds_exports_and_erases_a_subject(
        browser: Any, live: tuple[str, Any], tmp_path: Path) -> None:
    base, app = live
    services = app[SERVICES]
    await services.storage.staff.add(DPO, hash_password(PASSWORD))
    secret = totp.new_secret()
    await services.storage.staff.set_totp(DPO.login, secret)
    incident = await report(services, "web:reporter-pdpa", phone=PHONE)

    for width in (360, 1440):  # the narrow screen reads only; the wide one acts
        context = await browser.new_context(viewport={"width": width, "height": 900},
                                            locale="th-TH", base_url=base,
                                            accept_downloads=True)
        page = await sign_in(context, DPO.login, secret)
        # The header's link, for admins (the board's other pages carry it too).
        await page.locator("header").get_by_role("link", name="PDPA ข้อมูลส่วนบุคคล").click()
        await page.wait_for_url("**/board/admin/pdpa")
        await fits(page, width)
        await find(page, "phone", PHONE)
        # The report, and the web conversation it was made from (its live state).
        await page.get_by_text("มีข้อมูลที่เก็บไว้ 2 รายการ").wait_for()
        assert await page.locator("table.pdpa-held").get_by_text(incident.reference).count()
        assert await page.get_by_text("กฎหมายกำหนดให้ดำเนินการภายใน 30 วัน").count() == 1
        assert await page.get_by_text("กฎหมายกำหนดให้ดำเนินการภายใน 90 วัน").count() == 1
        await fits(page, width)
        await page.screenshot(path=shot(f"board-pdpa-subject-{width}-th.png"), full_page=True)
        if width == 360:
            await context.close()
            continue

        await page.get_by_role("button", name="ส่งออก เข้ารหัสด้วยรหัสผ่านใช้ครั้งเดียว").click()
        password = await page.locator("#password").inner_text()
        assert len(password) == 27  # four groups of six, read aloud
        async with page.expect_download() as info:
            await page.locator("a.download").click()
        download = await info.value
        saved = tmp_path / "export.json"
        await download.save_as(saved)
        data = open_export(saved.read_bytes(), password)
        assert [r["reference"] for r in data["records"] if r["kind"] == "incident"] == [
            incident.reference]
        await page.screenshot(path=shot(f"board-pdpa-exported-{width}-th.png"), full_page=True)
        # The link was good once: a second visit reads as used.
        again = await context.new_page()
        response = await again.goto(f"{base}/board/admin/pdpa/download/"
                                    + (await page.locator("a.download").get_attribute("href")
                                       or "").rsplit("/", 1)[-1])
        assert response is not None and response.status == 404
        await again.close()

        # Erase: the reason is required, then a confirmation.
        await page.goto("/board/admin/pdpa")
        await find(page, "reference", incident.reference)
        erase = page.locator("section.pdpa-erase")
        await erase.get_by_role("button", name="ลบ…").click()
        await page.get_by_text("กรุณาเขียนเหตุผล").wait_for()
        await page.locator("section.pdpa-erase textarea[name=reason]").fill(
            "เจ้าของข้อมูลยื่นคำขอเป็นหนังสือ")
        await page.locator("section.pdpa-erase").get_by_role("button", name="ลบ…").click()
        await page.get_by_text("ย้อนกลับไม่ได้").wait_for()
        still = await services.storage.incidents.get(incident.reference)
        assert still is not None and not is_erased(still)
        await page.screenshot(path=shot(f"board-pdpa-confirm-{width}-th.png"), full_page=True)
        await page.get_by_role("button", name="ยืนยัน ลบถาวร").click()
        await page.get_by_text("รวมทั้งข้อมูลสำรอง").wait_for()
        gone = await services.storage.incidents.get(incident.reference)
        assert gone is not None and is_erased(gone)
        await context.close()
