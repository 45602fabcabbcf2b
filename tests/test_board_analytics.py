"""`/board/analytics` in a real Chromium over the hand-made history, as a signed-in board
account: charts beside tables, the synthetic banner, Thai and English, suppressed exports
through short-lived audited links; scope by the account's areas, refused without the role."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import html
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES
from bot.staff import StaffMember
from channels.board import totp
from channels.board.analytics import LINK_SECONDS, Ask, Links, analytics_catalogs, viewer_of
from channels.board.auth import hash_password
from config.settings import Settings
from routing.analytics import Viewer
from storage.factory import open_storage
from tests.analytics_history import T0, write_history
from tests.test_board import PASSWORD, SECRETS, TOTP_ROLES, board_app, sign_in
from tests.test_webchat import browser, shot  # noqa: F401

NATIONAL = StaffMember("nida", "Nida A.", "en", ("analyst",), ("TH",))
TAK = StaffMember("tak", "Tak analyst", "en", ("analyst",), ("63",))
TAK_SUPERVISOR = StaffMember("tak-sup", "Tak supervisor", "en", ("supervisor",), ("63",))
RESPONDER = StaffMember("resp", "A responder", "en", ("responder",), ("TH",))
PROVINCE_63 = viewer_of(TAK)


def _days() -> str:
    from datetime import UTC, datetime

    return f"{(datetime.now(UTC) - T0).total_seconds() / 86400 + 3:.3f}"


@pytest.fixture
async def seeded(settings: Settings) -> Settings:
    from storage.factory import make_sealer

    storage = await open_storage(settings, make_sealer(settings))
    try:
        await write_history(storage)
        for member in (NATIONAL, TAK, TAK_SUPERVISOR, RESPONDER):
            assert await storage.staff.add(member, hash_password(PASSWORD))
            if set(member.roles) & set(TOTP_ROLES):  # as tests.test_board.add enrols them
                SECRETS[member.login] = totp.new_secret()
                assert await storage.staff.set_totp(member.login, SECRETS[member.login])
    finally:
        await storage.close()
    return settings


@pytest.fixture
async def live(seeded: Settings) -> AsyncIterator[tuple[str, Any]]:
    server = TestServer(board_app(seeded), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server.app
    finally:
        await server.close()


@pytest.fixture
async def client(seeded: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(board_app(seeded), host="127.0.0.1")
    await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
    async with TestClient(server, cookie_jar=jar) as test_client:
        yield test_client


async def audit_of(settings: Settings) -> list[tuple[str, str, str]]:
    async with aiosqlite.connect(settings.sqlite_path) as db:
        rows = await db.execute_fetchall("SELECT actor, action, reference FROM audit")
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.browser
async def test_the_page_in_chromium(browser: Any, live: tuple[str, Any],  # noqa: F811
                                    seeded: Settings) -> None:
    base, _ = live
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        base_url=base, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # A visitor is sent to the board's sign-in; the national analyst's session opens the page.
    await page.goto(f"/board/analytics?lang=en&days={_days()}")
    assert page.url.endswith("/board/login")
    await page.get_by_label("ชื่อผู้ใช้").fill(NATIONAL.login)
    await page.get_by_label("รหัสผ่าน").fill(PASSWORD)
    await page.get_by_role("button", name="เข้าสู่ระบบ").click()
    await page.wait_for_url("**/board")
    # The board's header links the analyst to the page, in the account's language.
    link = page.locator('header a[href="/board/analytics"]')
    assert await link.inner_text() == "Prevention analytics"
    await link.click()
    await page.wait_for_url("**/board/analytics")
    assert await page.title() == "Prevention analytics"
    await page.goto(f"/board/analytics?lang=en&days={_days()}")
    assert await page.title() == "Prevention analytics"
    banner = page.get_by_role("status")
    assert "Includes 2 synthetic incidents" in await banner.inner_text()
    # Each chart has its table beside it, with the exact figures of the history.
    for section in ("day", "type", "area", "hour", "channel", "response", "hex"):
        chart = "svg.map" if section == "hex" else "svg"  # Leaflet draws in SVG too
        assert await page.locator(f"#{section} {chart}").count() == 1, section
        assert await page.locator(f"#{section} table").count() == 1, section
    types = page.locator("#type table tbody tr")
    assert await types.nth(0).inner_text() == "threat\t12\t40\t6\t100"
    assert "<5" in await page.locator("#type table").inner_text()  # gathering: 3
    assert "Phitsanulok" in await page.locator("#area table").inner_text()
    # The map on the board's Leaflet: only hexagons whose count is shown (5 or more).
    cells = page.locator("#analytics-map path.cell")
    await cells.first.wait_for(timeout=10_000)
    counts = sorted([int(await cells.nth(k).get_attribute("data-count") or 0)
                     for k in range(await cells.count())])
    assert counts == [20]  # Bangkok's 7 is withheld ("x"): it would give Tak's 3 away
    assert await page.locator("#hex svg.map").is_hidden()  # the no-script fallback
    await page.locator('#analytics-map path[data-count="20"]').hover(force=True)
    assert "20 reports in this hexagon — a repeat location" in await page.locator(
        ".leaflet-tooltip").inner_text()
    await page.locator("#hex").screenshot(path=shot("analytics-map-en.png"))
    await page.screenshot(path=shot("analytics-en.png"), full_page=True)
    # Drill down by the area link: Phitsanulok's districts.
    await page.locator("#area table a", has_text="65").click()
    await page.wait_for_url("**area=65**")
    assert "Mueang Phitsanulok" in await page.locator("#area table").inner_text()
    # Thai.
    await page.goto(f"/board/analytics?lang=th&days={_days()}")
    assert await page.title() == "วิเคราะห์เพื่อการป้องกัน"
    link = page.locator('header a[href="/board/analytics"]')
    assert await link.is_visible() and await link.inner_text() == "วิเคราะห์เพื่อการป้องกัน"
    await page.locator("header").screenshot(path=shot("analytics-header-th.png"))
    assert "ข้อมูลจำลอง" in await page.get_by_role("status").inner_text()
    await page.screenshot(path=shot("analytics-th.png"), full_page=True)
    # An export: the same suppression, HXL tags, audited.
    async with page.expect_download() as info:
        await page.locator("#type a.export").nth(1).click()
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][0] == "#event+type" and rows[-1][:2] == ["gathering", "<5"]
    assert errors == []
    await context.close()
    audit = await audit_of(seeded)
    assert ("staff:nida", "analytics.export", f"type:all:{float(_days()):g}d") in audit
    assert ("staff:nida", "analytics.view", "65:" + f"{float(_days()):g}d") in audit


async def test_a_visitor_signs_in_and_a_responder_is_refused(
        client: TestClient[Any, Any]) -> None:
    response = await client.get("/board/analytics", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/board/login"
    assert (await client.get("/board/analytics/export?token=x.y")).status == 401
    assert (await sign_in(client, RESPONDER.login)).status == 303
    board = await (await client.get("/board?lang=en")).text()
    assert "/board/cases" in board and 'href="/board/analytics"' not in board  # no link
    refused = await client.get(f"/board/analytics?lang=en&days={_days()}")
    assert refused.status == 403 and "analyst, supervisor or admin" in await refused.text()
    assert (await client.get("/board/analytics/export?token=x.y")).status == 403
    services = client.server.app[SERVICES]
    # Refusals read nothing, so nothing is audited for them (the sign-in itself is).
    assert [r[1] for r in await audit_of(services.settings) if r[0] == "staff:resp"] == [
        "staff.login"]


@pytest.mark.parametrize("member", [TAK, TAK_SUPERVISOR])
async def test_the_accounts_areas_scope_every_figure(client: TestClient[Any, Any],
                                                     member: StaffMember) -> None:
    assert (await sign_in(client, member.login)).status == 303
    response = await client.get(f"/board/analytics?lang=en&days={_days()}&drills=1")
    text = await response.text()
    assert response.status == 200
    assert "Tak" in text and "Phitsanulok" not in text and "Bangkok" not in text
    assert 'http-equiv' not in text and "unsafe-inline" not in response.headers[
        "Content-Security-Policy"]
    outside = await client.get(f"/board/analytics?lang=en&area=65&days={_days()}")
    assert outside.status == 400 and "outside" in await outside.text()
    for bad in ("days=abc", "days=3650", "days=nan", "area=zz", "days=-1"):
        r = await client.get(f"/board/analytics?{bad}")
        assert r.status == 400, bad
        assert "Traceback" not in await r.text()
    # A link made for this account opens for it only, and the download is audited as it.
    token = Links(b"").make(viewer_of(member), "type", Ask(30, None, False, "en"), False, 0)
    assert (await client.get("/board/analytics/export", params={"token": token})).status \
        == 410
    audit = await audit_of(client.server.app[SERVICES].settings)
    assert (f"staff:{member.login}", "analytics.view", f"all:{float(_days()):g}d") in audit


def test_the_pages_words_are_complete_in_thai_and_english() -> None:
    catalogs = analytics_catalogs()
    assert [lang.code for lang in catalogs.languages] == ["th", "en"]
    assert catalogs.missing() == {}


def test_links_expire_and_belong_to_their_viewer() -> None:
    links = Links(b"k" * 32)
    ask = Ask(30, None, False, "en")
    token = links.make(PROVINCE_63, "type", ask, False, 1000.0)
    assert links.open(token, PROVINCE_63, 1000.0 + LINK_SECONDS - 1) is not None
    assert links.open(token, PROVINCE_63, 1000.0 + LINK_SECONDS + 1) is None
    other = Viewer(("TH",), frozenset({"analyst"}), "someone-else")
    assert links.open(token, other, 1001.0) is None
    body, signature = token.split(".")
    assert links.open(f"{body}.{signature[:-2]}AA", PROVINCE_63, 1001.0) is None
    assert links.open("garbage", PROVINCE_63, 1001.0) is None


@contextlib.asynccontextmanager
async def board_with(settings: Settings, **changes: Any) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(board_app(dataclasses.replace(settings, **changes)), host="127.0.0.1")
    await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
    async with TestClient(server, cookie_jar=jar) as test_client:
        yield test_client


async def test_one_viewers_loads_are_paced_and_a_queue_beyond_it_refused(
        seeded: Settings) -> None:
    async with board_with(seeded, analytics_pace=1.0) as client:
        assert (await sign_in(client, TAK.login)).status == 303
        # A bad question is answered at once and takes no turn.
        assert (await client.get("/board/analytics?days=abc")).status == 400
        page = f"/board/analytics?lang=en&days={_days()}"
        # Seven at once: a burst of three, two waiting their turns, two refused.
        answers = await asyncio.gather(*(client.get(page) for _ in range(7)))
        statuses = sorted(r.status for r in answers)
        assert statuses == [200] * 5 + [429] * 2
        for refused in (r for r in answers if r.status == 429):
            assert int(refused.headers["Retry-After"]) >= 1
            text = await refused.text()
            assert "Too many analytics loads" in text and "Traceback" not in text
        views = [r for r in await audit_of(seeded) if r[:2] == ("staff:tak", "analytics.view")]
        assert len(views) == 5  # a refused load read nothing
        # Downloads take turns too: a loop over an export link is paced the same way.
        served = await next(r for r in answers if r.status == 200).text()
        link = re.search(r'href="(/board/analytics/export\?token=[^"]+)"', served)
        assert link is not None
        downloads = await asyncio.gather(*(client.get(html.unescape(link.group(1)))
                                           for _ in range(4)))
        got = [r.status for r in downloads]
        assert 429 in got and 1 <= got.count(200) <= 3 and set(got) == {200, 429}
        assert all(int(r.headers["Retry-After"]) >= 1 for r in downloads if r.status == 429)
        exports = [r for r in await audit_of(seeded)
                   if r[:2] == ("staff:tak", "analytics.export")]
        assert len(exports) == got.count(200)


async def test_figures_are_shared_by_viewers_of_the_same_areas_while_fresh(
        seeded: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import channels.board.analytics as pages

    runs: list[str] = []
    real = pages.load

    async def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(args[1])
        return await real(*args, **kwargs)

    monkeypatch.setattr(pages, "load", counted)
    page = f"/board/analytics?lang=en&days={_days()}"
    async with board_with(seeded, analytics_pace=0, analytics_fresh=600) as client:
        assert (await sign_in(client, TAK.login)).status == 303
        first = await (await client.get(page)).text()
        assert len(runs) == len(pages.EXPORTABLE) and "figures as of" in first
        assert (await sign_in(client, TAK_SUPERVISOR.login)).status == 303
        again = await (await client.get(page)).text()
        assert len(runs) == len(pages.EXPORTABLE)  # the same areas, the same question
        stamp = re.compile(r"figures as of <time datetime=\"([^\"]+)\"")
        assert stamp.findall(first) == stamp.findall(again)
        # A download from the page holds the page's figures, not a newer computation.
        link = re.search(r'href="(/board/analytics/export\?token=[^"]+)"', again)
        assert link is not None
        assert (await client.get(html.unescape(link.group(1)))).status == 200
        assert len(runs) == len(pages.EXPORTABLE)
        await client.get(page.replace("lang=en", "lang=th"))
        assert len(runs) == 2 * len(pages.EXPORTABLE)  # another question: its own figures
        assert (await sign_in(client, NATIONAL.login)).status == 303
        national = await (await client.get(page)).text()
        assert len(runs) == 3 * len(pages.EXPORTABLE)  # other areas are never shared
        assert "Bangkok" in national and "Bangkok" not in again
    audit = await audit_of(seeded)
    for login in ("tak", "tak-sup", "nida"):  # every load audited, shared or not
        assert (f"staff:{login}", "analytics.view", f"all:{float(_days()):g}d") in audit
    async with board_with(seeded, analytics_pace=0, analytics_fresh=0) as client:
        assert (await sign_in(client, TAK_SUPERVISOR.login)).status == 303
        before = len(runs)
        await client.get(page)
        await client.get(page)
        assert len(runs) == before + 2 * len(pages.EXPORTABLE)  # 0: never reused
