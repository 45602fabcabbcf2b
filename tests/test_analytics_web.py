"""`/board/analytics` in a real Chromium over the hand-made history: charts beside tables,
the synthetic banner, Thai and English, suppressed exports through short-lived audited links,
scope by the viewer's areas, 403 for nobody."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.analytics_web import LINK_SECONDS, VIEWER_OF, Ask, Links
from config.settings import Settings
from routing.analytics import Viewer
from storage.factory import open_storage
from tests.analytics_history import T0, write_history
from tests.test_webchat import browser, shot, web_app  # noqa: F401

PROVINCE_63 = Viewer(("63",), frozenset({"analyst"}), "analyst-63")


def _days() -> str:
    from datetime import UTC, datetime

    return f"{(datetime.now(UTC) - T0).total_seconds() / 86400 + 3:.3f}"


@pytest.fixture
def demo(settings: Settings) -> Settings:
    return replace(settings, demo_mode=True)


@pytest.fixture
async def seeded(demo: Settings) -> Settings:
    from storage.factory import make_sealer

    storage = await open_storage(demo, make_sealer(demo))
    try:
        await write_history(storage)
    finally:
        await storage.close()
    return demo


@pytest.fixture
async def live(seeded: Settings) -> AsyncIterator[tuple[str, Any]]:
    server = TestServer(web_app(seeded), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server.app
    finally:
        await server.close()


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
    await page.goto(f"/board/analytics?lang=en&days={_days()}")
    assert await page.title() == "Prevention analytics"
    banner = page.get_by_role("status")
    assert "Includes 2 synthetic incidents" in await banner.inner_text()
    # Each chart has its table beside it, with the exact figures of the history.
    for section in ("day", "type", "area", "hour", "channel", "response", "hex"):
        assert await page.locator(f"#{section} svg").count() == 1, section
        assert await page.locator(f"#{section} table").count() == 1, section
    types = page.locator("#type table tbody tr")
    assert await types.nth(0).inner_text() == "threat\t12\t40\t6\t100"
    assert "<5" in await page.locator("#type table").inner_text()  # gathering: 3
    assert "Phitsanulok" in await page.locator("#area table").inner_text()
    await page.screenshot(path=shot("analytics-en.png"), full_page=True)
    # Drill down by the area link: Phitsanulok's districts.
    await page.locator("#area table a", has_text="65").click()
    await page.wait_for_url("**area=65**")
    assert "Mueang Phitsanulok" in await page.locator("#area table").inner_text()
    # Thai.
    await page.goto(f"/board/analytics?days={_days()}")
    assert await page.title() == "วิเคราะห์เพื่อการป้องกัน"
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
    async with aiosqlite.connect(seeded.sqlite_path) as db:
        audit = await db.execute_fetchall("SELECT actor, action, subject FROM audit")
    assert ("demo", "analytics.export", f"type:all:{float(_days()):g}d") in list(audit)


async def test_nobody_gets_403_and_scope_follows_the_viewer(seeded: Settings) -> None:
    app = web_app(replace(seeded, demo_mode=False))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/board/analytics")
        assert response.status == 403
        assert (await client.get("/board/analytics/export?token=x.y")).status == 403

    async def tak(request: Any) -> Viewer:
        return PROVINCE_63

    app = web_app(seeded)
    app[VIEWER_OF] = tak
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        text = await (await client.get(f"/board/analytics?lang=en&days={_days()}&"
                                       "drills=1")).text()
        assert "Tak" in text and "Phitsanulok" not in text and "Bangkok" not in text
        outside = await client.get(f"/board/analytics?lang=en&area=65&days={_days()}")
        assert outside.status == 400 and "outside" in await outside.text()
        for bad in ("days=abc", "days=3650", "days=nan", "area=zz"):
            r = await client.get(f"/board/analytics?{bad}")
            assert r.status == 400, bad
            assert "Traceback" not in await r.text()


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
