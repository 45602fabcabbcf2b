"""Photos of documents on the board's case page, and hardships kept off the list.

A case page says how many photos the case holds; each opens only through a form with a
reason (audited before a byte is served), with the stored type, `no-store` and `nosniff`,
scoped by the case's area like every case read. The list names no hardship: a count and a
neutral marker; the names are on the case page (an audited view). The cases are opened by a
registered volunteer through the real flow (tests/test_volunteer_case.py's intake)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.case import CasePhoto, photo_type
from bot.case_photos import photo_id
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board import totp
from channels.board.auth import hash_password
from channels.line.richmenu import plain_image
from config.settings import Settings
from storage.ports import Storage
from tests.test_board import CHIANG_MAI, PHITSANULOK, add, client, csrf_of, page, sign_in
from tests.test_board import services_of as services
from tests.test_board_browser import PASSWORD
from tests.test_board_browser import sign_in as sign_in_browser
from tests.test_board_cases import a_case, audit_rows, post
from tests.test_board_cases_browser import WIDEST, fits, live
from tests.test_volunteer_case import intake, register
from tests.test_webchat import browser, shot

__all__ = ["browser", "client", "live"]  # the fixtures

JPEG = b"\xff\xd8\xff\xe0" + b"PHOTO-7731 page 1 " * 80
PNG = b"\x89PNG\r\n\x1a\n" + b"disability card " * 30


async def with_photos(client: TestClient[Any, Any], reference: str) -> list[str]:
    return await kept(services(client).storage, reference, (JPEG, PNG))


async def kept(storage: Storage, reference: str, photos: tuple[bytes, ...]) -> list[str]:
    """Keep photos with the case, as `keep_case_photo` does (the same object, ids)."""
    case = await storage.cases.get(reference)
    assert case is not None
    ids = []
    for n, data in enumerate(photos):
        kind = photo_type(data)
        assert kind is not None
        photo = CasePhoto(photo_id("line", f"ev-{reference}-{n}"), case.id, kind, len(data),
                          utcnow(), data)
        assert await storage.case_photos.add(photo)
        ids.append(photo.id)
    return ids


def photo_paths(html: str) -> list[str]:
    return re.findall(r'action="(/board/cases/CASE-[^"/]+/photos/[0-9a-f]+)"', html)


async def test_a_photo_opens_only_with_a_reason_audited_with_its_type_never_cached(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, PHITSANULOK)
    reference = await a_case(client)
    first, second = await with_photos(client, reference)
    await sign_in(client, "somchai")
    status, html = await page(client, f"/board/cases/{reference}")
    assert status == 200 and "Photos of documents: 2" in html
    assert photo_paths(html) == [f"/board/cases/{reference}/photos/{first}",
                                 f"/board/cases/{reference}/photos/{second}"]
    token = csrf_of(html)
    status, text = await post(client, f"/board/cases/{reference}/photos/{first}", csrf=token)
    assert status == 400 and "PHOTO-7731" not in text  # no reason: nothing
    status, _ = await post(client, f"/board/cases/{reference}/photos/{first}", csrf=token,
                           reason="curiosity")
    assert status == 400
    assert not any(r[1].startswith("board.case.photo") for r in await audit_rows(settings))
    for path, data, kind in ((first, JPEG, "image/jpeg"), (second, PNG, "image/png")):
        response = await client.post(f"/board/cases/{reference}/photos/{path}",
                                     data={"csrf": token, "reason": "assessment"})
        assert response.status == 200 and await response.read() == data
        assert response.headers["Content-Type"] == kind
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    rows = await audit_rows(settings)
    assert rows.count(("staff:somchai", "board.case.photo:assessment", reference)) == 2
    # A photo needs its form's CSRF token and the board's own origin, as every form.
    status, _ = await post(client, f"/board/cases/{reference}/photos/{first}",
                           reason="assessment")
    assert status == 403
    response = await client.post(f"/board/cases/{reference}/photos/{first}",
                                 data={"csrf": token, "reason": "visit"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403 and JPEG not in await response.read()


async def test_another_areas_case_an_unknown_or_erased_photo_and_an_analyst_get_nothing(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await add(client, CHIANG_MAI)
    await add(client, StaffMember("nok", "Nok", "en", ("analyst",), ("65",)))
    reference = await a_case(client)
    other = await a_case(client, "vol2")
    first, _ = await with_photos(client, reference)
    await sign_in(client, "anong")  # Chiang Mai: the case is not in her areas
    _, html = await page(client, "/board/cases")
    status, text = await post(client, f"/board/cases/{reference}/photos/{first}",
                              csrf=csrf_of(html), reason="visit")
    assert status == 404 and "No case with that reference" in text
    client.session.cookie_jar.clear()
    await sign_in(client, "nok")
    _, html = await page(client, f"/board/cases/{reference}")
    assert "Photos of documents: 2" in html and photo_paths(html) == []  # reads only
    status, text = await post(client, f"/board/cases/{reference}/photos/{first}",
                              csrf=csrf_of(html), reason="visit")
    assert status == 403 and "reads the board only" in text
    client.session.cookie_jar.clear()
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/cases/{reference}")
    token = csrf_of(html)
    # Another case's photo through this case's address, and an id that is none.
    for path in (f"/board/cases/{other}/photos/{first}",
                 f"/board/cases/{reference}/photos/{'0' * 32}"):
        status, text = await post(client, path, csrf=token, reason="visit")
        assert status == 404 and "no such photo" in text
    storage = services(client).storage
    case = await storage.cases.get(reference)
    assert case is not None
    await storage.vault.shred([case.id], utcnow())  # erased: unreadable at once
    status, text = await post(client, f"/board/cases/{reference}/photos/{first}",
                              csrf=token, reason="visit")
    assert status == 404 and "PHOTO-7731" not in text


async def test_the_list_names_no_hardship_the_case_page_does(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    violence = await a_case(client, hardships=("violence", "out_of_school"))
    income = await a_case(client, "vol2", hardships=("income",))
    await sign_in(client, "somchai")
    status, listing = await page(client, "/board/cases")
    assert status == 200 and violence in listing and income in listing
    for name in ("Violence at home", "Child out of school", "Income"):
        assert name not in listing, name
    assert "2 hardships · sensitive: on the case page" in listing
    assert "1 hardships" in listing and listing.count("sensitive: on the case page") == 1
    # The Zero Dropout list still finds the child, by its flag.
    _, flagged = await page(client, "/board/cases?flag=zero_dropout")
    assert violence in flagged and income not in flagged and "Zero Dropout" in flagged
    _, html = await page(client, f"/board/cases/{violence}")
    assert "Violence at home" in html and "Child out of school" in html


@pytest.mark.browser
async def test_a_photo_opens_in_its_own_tab_on_a_phone_in_thai(
        browser: Any, live: tuple[str, Any]) -> None:
    base, app = live
    storage = app[SERVICES].storage
    await storage.staff.add(StaffMember("somchai", "สมชาย พ.", "th", ("supervisor",), ("65",)),
                            hash_password(PASSWORD))
    secret = totp.new_secret()
    await storage.staff.set_totp("somchai", secret)
    await register(app[SERVICES])
    reference = (await intake(app[SERVICES]))[-1].text.params["case_reference"]
    await kept(storage, reference, (plain_image(), JPEG))  # a real PNG, then a JPEG's bytes
    phone = await browser.new_context(viewport={"width": 360, "height": 740},
                                      locale="th-TH", base_url=base, has_touch=True)
    page = await sign_in_browser(phone, "somchai", secret)
    await page.goto(f"/board/cases/{reference}")
    await page.get_by_role("heading", name="รูปถ่ายเอกสาร: 2 รูป").wait_for()
    await page.screenshot(path=shot("board-case-photos-360-th.png"), full_page=True)
    assert await fits(page), await page.evaluate(WIDEST)
    first = page.locator("ul.photos li").first
    await first.get_by_label("เหตุผล").select_option("visit")
    async with phone.expect_page() as opened:
        await first.get_by_role("button", name="เปิดรูปที่ 1").click()
    photo = await opened.value
    await photo.wait_for_load_state()
    assert await photo.evaluate("document.contentType") == "image/png"
    width = await photo.evaluate("document.images[0] && document.images[0].naturalWidth")
    assert width == 2500  # the photo itself, decoded by the browser
    assert [(r.entry.actor, r.entry.action, r.entry.reference)
            for r in await storage.audit.records()
            if r.entry.action.startswith("board.case.photo")] == [
        ("staff:somchai", "board.case.photo:visit", reference)]
    await phone.close()
