"""The web chat's map on the board's vendored Leaflet, in a real Chromium: it drags, zooms,
a tap places the pin and the pin's point reaches the flow; with no tile server it is still
a map; in silent mode it says nothing about what the page is for."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.types import Text
from channels.web_pages import VENDORED
from tests.test_webchat import browser, client, live, phone_context, shot, until  # noqa: F401  (fixtures)
from tests.test_webchat_languages import drawn, ui

DENIED = """() => document.getElementById("geo-status").textContent ===
  JSON.parse(document.getElementById("ess-config").textContent).ui.location_denied"""
PANE = "getComputedStyle(document.querySelector('.leaflet-map-pane')).transform"


def watch(page: Any) -> tuple[list[str], list[str]]:
    """Every page error, and every request the page makes (to check they stay local)."""
    errors: list[str] = []
    urls: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: urls.append(r.url))
    return errors, urls


def local_only(urls: list[str]) -> list[str]:
    return [u for u in urls if urlsplit(u).hostname not in ("127.0.0.1", "localhost")
            and not u.startswith("data:")]


async def zoom_in(page: Any, to: int) -> None:
    """Tap the map's + until it shows zoom `to` (a tap during a zoom's animation is lost)."""
    while (now := int(await page.get_attribute("#map", "data-zoom") or 0)) < to:
        await page.locator(".leaflet-control-zoom-in").click()
        await until(page, f"() => document.querySelector('#map').dataset.zoom === '{now + 1}'")


async def coords(page: Any) -> tuple[float, float]:
    text = (await page.locator("#map-coords").text_content() or "").strip()
    lat, lon = text.split(",")
    return float(lat), float(lon)


async def to_the_map(page: Any, url: str, *taps: str) -> None:
    """Open the page, tap through to the location step, refuse the device's position."""
    await page.goto(url)
    for name in taps:
        await page.get_by_role("button", name=name).click()
    await page.locator("#map .leaflet-map-pane").wait_for(state="attached")
    await until(page, DENIED)


@pytest.mark.browser
async def test_the_map_drags_zooms_and_a_tapped_pin_is_the_reported_point(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    base, app = live
    context = await phone_context(browser, base, geolocation=False)
    page = await context.new_page()
    errors, urls = watch(page)
    await to_the_map(page, "/chat?lang=en", "Threatened with harm, or assaulted",
                     "Use my location")
    assert await page.get_attribute("script[src*='leaflet']", "src") == \
        "/chat/static/leaflet/leaflet.js"
    box = await page.locator("#map").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 200

    # No tile server: a usable map all the same, saying so, with the provinces to find
    # one's way (named once zoomed in).
    assert "no-tiles" in (await page.get_attribute("#map", "class") or "")
    assert await page.is_visible("#map-note")
    assert await page.locator(".leaflet-tooltip.place").count() == 77
    assert not await page.locator(".leaflet-tooltip.place").first.is_visible()
    assert await page.is_disabled("#map-send")
    assert await page.locator("#map a[href^='http']").count() == 0  # no link off the page

    # Zoom in with the control, as a thumb would: the province names appear; out with the
    # wheel: they go again (they would cover one another).
    assert await page.get_attribute("#map", "data-zoom") == "5"
    await zoom_in(page, 7)
    assert "crowded" not in (await page.get_attribute("#map", "class") or "")
    assert await page.locator(".leaflet-tooltip.place:visible").count() > 0
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.wheel(0, 200)
    await until(page, "() => Number(document.querySelector('#map').dataset.zoom) < 7")
    assert "crowded" in (await page.get_attribute("#map", "class") or "")

    # A tap places the pin; its point is read out.
    x, y = box["x"] + 120, box["y"] + 90
    await page.touchscreen.tap(x, y)
    await page.locator(".pin").wait_for()
    first = await coords(page)
    assert 0 < first[0] < 30 and 90 < first[1] < 115  # around Thailand, where the map is
    assert not await page.is_disabled("#map-send")

    # Drag the map (not the pin): the same screen spot is now another place.
    before = await page.evaluate(PANE)
    await page.mouse.move(box["x"] + 250, box["y"] + 200)
    await page.mouse.down()
    for step in range(1, 9):
        await page.mouse.move(box["x"] + 250 - 10 * step, box["y"] + 200 - 8 * step)
    await page.mouse.up()
    assert await page.evaluate(PANE) != before
    assert await coords(page) == first  # the pin stays where it was put
    await page.touchscreen.tap(x, y)
    second = await coords(page)
    assert second[1] > first[1] and second[0] < first[0]  # dragged up-left: east and south

    # Drag the pin itself to adjust it.
    pin = await page.locator(".pin").bounding_box()
    assert pin is not None
    px, py = pin["x"] + pin["width"] / 2, pin["y"] + pin["height"] / 2
    await page.mouse.move(px, py)
    await page.mouse.down()
    for step in range(1, 6):
        await page.mouse.move(px + 8 * step, py + 6 * step)
    await page.mouse.up()
    moved = await coords(page)
    assert moved != second
    assert moved[1] > second[1] and moved[0] < second[0]
    await page.screenshot(path=shot("webchat-leaflet-en.png"), full_page=True)

    # Sent through the page: the flow has the pin's point as the location answer.
    await page.get_by_role("button", name="Send this point").click()
    await page.get_by_label("Phone number").wait_for()
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('ess-chat')).token")
    loaded = await app[SERVICES].storage.sessions.load(f"web:{token.partition('.')[0]}",
                                                       "probe")
    location = loaded.session.slots["location"]
    assert location["source"] == "reporter_pin"
    assert abs(location["lat"] - moved[0]) < 1e-5 and abs(location["lon"] - moved[1]) < 1e-5
    assert errors == []
    assert local_only(urls) == []
    await context.close()


@pytest.mark.browser
async def test_the_map_in_silent_mode_says_nothing_of_its_purpose(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    base, _ = live
    context = await phone_context(browser, base, geolocation=False)
    page = await context.new_page()
    errors, urls = watch(page)
    await to_the_map(page, "/chat?silent=1", "ต่อไป", "ถูกกักขังหน่วงเหนี่ยว", "ใช้ตำแหน่งของฉัน")
    await zoom_in(page, 7)
    await page.locator(".leaflet-tooltip.place:visible").first.wait_for()
    # What the page shows: its words, the map's own (names, credit, control titles), the
    # addresses it loads. Nothing names a service, the police or an emergency.
    shown = " ".join([
        await page.title(), await page.locator("body").inner_text(),
        *[await el.get_attribute("title") or "" for el in
          await page.locator("#map [title]").all()],
        *urls]).casefold()
    for word in (r"\bess\b", "police", "ตำรวจ", "emergency", "ฉุกเฉิน", "แจ้งเหตุ", "board",
                 "help", "station"):
        assert not re.search(word, shown), word
    assert "/chat/static/leaflet/leaflet.js" in " ".join(urls)  # the check saw the scripts
    assert await drawn(page, "กขค")
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.touchscreen.tap(box["x"] + 150, box["y"] + 120)
    await page.locator(".pin").wait_for()
    await page.screenshot(path=shot("webchat-leaflet-silent-th.png"), full_page=True)
    assert errors == []
    assert local_only(urls) == []
    await context.close()


async def test_leaflet_is_served_from_the_package_files_and_nothing_else(
        client: TestClient[Any, Any]) -> None:  # noqa: F811
    page = await client.get("/chat")
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    served = await client.get("/chat/static/leaflet/leaflet.js")
    assert served.status == 200 and served.content_type == "text/javascript"
    assert await served.read() == (VENDORED["leaflet"] / "leaflet.js").read_bytes()
    assert (await client.get("/chat/static/leaflet/leaflet.css")).status == 200
    for outside in ("/chat/static/leaflet/%2e%2e/%2e%2e/chat.js",
                    "/chat/static/leaflet/nothing.js", "/chat/static/markercluster/x.js"):
        assert (await client.get(outside)).status == 404, outside


@pytest.mark.browser
async def test_a_pinch_zooms_the_map_and_the_keyboard_drops_the_pin(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    base, _ = live
    context = await phone_context(browser, base, geolocation=False)
    page = await context.new_page()
    errors, _ = watch(page)
    await to_the_map(page, "/chat?lang=en", "Confined or detained", "Use my location")
    box = await page.locator("#map").bounding_box()
    assert box is not None and await page.get_attribute("#map", "data-zoom") == "5"
    # Two fingers spreading apart, through Chromium's own touch input pipeline.
    cdp = await context.new_cdp_session(page)
    await cdp.send("Input.synthesizePinchGesture", {
        "x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2,
        "scaleFactor": 4, "relativeSpeed": 400, "gestureSourceType": "touch"})
    await until(page, "() => Number(document.querySelector('#map').dataset.zoom) > 5")
    # Keyboard only: the arrows pan (Leaflet's own keys), Enter drops the pin mid-map.
    await page.locator("#map").focus()
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("Enter")
    await page.locator(".pin").wait_for()
    assert (await page.locator("#map-coords").text_content() or "").count(",") == 1
    assert not await page.is_disabled("#map-send")
    assert errors == []
    await context.close()


PLACE_NAMES = """() => Array.from(document.querySelectorAll('.leaflet-tooltip.place'))
  .map((el) => el.textContent).sort()"""


@pytest.mark.browser
async def test_the_province_names_follow_a_language_switch(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    # The map is drawn in Thai; the reporter switches to English at the location step: the
    # same map's 77 names are redrawn in English (they stayed Thai before), and back.
    base, app = live
    provinces = app[SERVICES].gazetteer.provinces()
    thai = sorted(p.name_th for p in provinces)
    english = sorted(p.name_en for p in provinces)
    assert thai != english
    context = await phone_context(browser, base, geolocation=False)  # a Thai phone
    page = await context.new_page()
    errors, _ = watch(page)
    catalogs = app[SERVICES].catalogs
    await to_the_map(page, "/chat", catalogs.render("th", Text("incident.threat")),
                     ui("th", "use_location"))
    await zoom_in(page, 7)
    assert await page.evaluate(PLACE_NAMES) == thai
    assert await drawn(page, "พิษณุโลก")
    for lang, word, names in (("en", "English", english), ("th", "ไทย", thai)):
        box = page.get_by_label(ui("th" if lang == "en" else "en", "message_label"))
        await box.fill("ภาษา" if lang == "en" else "language")
        await box.press("Enter")
        await page.get_by_role("button", name=word).last.click()
        await until(page, f"() => document.documentElement.lang === '{lang}'")
        expected = json.dumps(names, ensure_ascii=False, separators=(",", ":"))
        await until(page, f"() => JSON.stringify(({PLACE_NAMES})()) === {json.dumps(expected)}")
        await page.locator(".leaflet-tooltip.place:visible").first.wait_for()
        if lang == "en":
            await page.screenshot(path=shot("webchat-map-names-en.png"))
    assert errors == []
    await context.close()
