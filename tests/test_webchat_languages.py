"""The web chat in Burmese, Khmer and Lao: Accept-Language, labels that follow the language,
fonts that really draw the scripts (in Chromium at 360 px), and "my reports"."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.i18n import Catalogs
from bot.types import Text
from tests.test_webchat import (  # noqa: F401 - fixtures
    browser,
    client,
    hello,
    live,
    phone_context,
    shot,
    until_prompt,
)

CATALOGS = Catalogs.load()
# Three different letters of each script, and a script no installed font has (Vai): the
# check below must tell them apart, or it could not fail.
SAMPLES = {"my": "ကခဂ", "km": "កខគ", "lo": "ກຂຄ", "th": "กขค"}
NO_FONT = "ꔀꔁꔂ"  # Vai, U+A500..: no Debian font package of the test set-up covers it

# Each letter drawn alone in the page's own font on a canvas, and an unassigned code point
# (always the "missing glyph" box): a script without a font draws every letter as that box.
GLYPHS = """([letters, missing]) => {
  const canvas = document.createElement("canvas");
  canvas.width = 80; canvas.height = 60;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const font = getComputedStyle(document.body).font;
  const draw = (s) => {
    g.clearRect(0, 0, 80, 60); g.font = font; g.fillStyle = "#000"; g.fillText(s, 8, 40);
    const d = g.getImageData(0, 0, 80, 60).data;
    let hash = 0, ink = 0;
    for (let i = 3; i < d.length; i += 4) { hash = (hash * 31 + d[i]) >>> 0; if (d[i]) ink++; }
    return hash + ":" + ink;
  };
  return { letters: Array.from(letters).map(draw), missing: draw(missing) };
}"""


def ui(lang: str, key: str) -> str:
    return CATALOGS.render(lang, Text(f"web.{key}"))


async def drawn(page: Any, letters: str) -> bool:
    """Whether the page's font stack has real glyphs for these letters (no tofu)."""
    seen = await page.evaluate(GLYPHS, [letters, "\u0378"])
    images = seen["letters"]
    return len(set(images)) == len(images) and seen["missing"] not in images \
        and all(not image.endswith(":0") for image in images)


@pytest.mark.browser
@pytest.mark.parametrize(("locale", "lang"), [("my-MM", "my"), ("km-KH", "km"),
                                              ("lo-LA", "lo")])
async def test_the_browser_language_picks_labels_and_the_fonts_draw_them(
        browser: Any, live: tuple[str, Any], locale: str, lang: str) -> None:  # noqa: F811
    base, _ = live
    context = await browser.new_context(viewport={"width": 360, "height": 740},
                                        locale=locale, has_touch=True, base_url=base)
    page = await context.new_page()
    sent: dict[str, str] = {}
    page.on("request", lambda r: sent.update(r.headers) if r.url.endswith("/chat") else None)
    await page.goto("/chat")
    assert sent["accept-language"].lower().startswith(locale.lower())
    prompt = CATALOGS.render(lang, Text("report.type.prompt"))
    await page.get_by_text(prompt).wait_for()
    assert await page.evaluate("document.documentElement.lang") == lang
    assert await page.get_by_label(ui(lang, "message_label")).is_visible()
    assert await page.get_by_role("button", name=ui(lang, "send")).first.is_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert await drawn(page, SAMPLES[lang]), f"{lang}: the letters are drawn as empty boxes"
    assert not await drawn(page, NO_FONT)  # the check does fail when a font is missing
    await page.screenshot(path=shot(f"webchat-{lang}.png"), full_page=True)
    await context.close()


@pytest.mark.browser
async def test_the_page_labels_follow_the_language_command(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    base, _ = live
    context = await phone_context(browser, base)  # a Thai phone
    page = await context.new_page()
    await page.goto("/chat")
    await page.get_by_text(CATALOGS.render("th", Text("report.type.prompt"))).wait_for()
    assert await page.get_by_label(ui("th", "message_label")).is_visible()
    box = page.get_by_label(ui("th", "message_label"))
    await box.fill("ภาษา")
    await box.press("Enter")
    for name in ("ไทย", "English", "မြန်မာ", "ខ្មែរ", "ລາວ"):  # each in its own script
        await page.get_by_role("button", name=name).wait_for()
    await page.get_by_role("button", name="ລາວ").click()
    await page.get_by_text(CATALOGS.render("lo", Text("report.type.prompt"))).wait_for()
    # Every label of the page, not only the bot's messages, is now Lao.
    assert await page.evaluate("document.documentElement.lang") == "lo"
    assert await page.get_by_label(ui("lo", "message_label")).is_visible()
    assert await page.get_by_role("button", name=ui("lo", "exit")).is_visible()
    assert await page.get_by_label(ui("th", "message_label")).count() == 0
    await page.get_by_role("button", name=CATALOGS.render("lo", Text("incident.threat"))).click()
    await page.get_by_role("button", name=ui("lo", "use_location")).wait_for()
    assert await page.get_by_text(ui("lo", "map_label")).is_visible()
    assert await page.get_by_role("button", name=ui("lo", "zoom_in")).is_visible()
    assert await drawn(page, SAMPLES["lo"])
    await page.screenshot(path=shot("webchat-labels-follow-lo.png"), full_page=True)
    await context.close()


async def web_report(ws: Any, flow: str = "report") -> str:
    """A whole report over the web protocol; its reference."""
    await ws.send_json({"type": "start", "id": f"s-{flow}", "flow": flow})
    await until_prompt(ws)
    steps: list[dict[str, Any]] = (
        [{"type": "choice", "value": "go"}, {"type": "choice", "value": "threat"},
         {"type": "location", "lat": 16.8, "lon": 100.2}, {"type": "choice", "value": "no"}]
        if flow == "silent" else
        [{"type": "choice", "value": "threat"}, {"type": "location", "lat": 16.8, "lon": 100.2},
         {"type": "text", "text": "0812345678"}, {"type": "choice", "value": "send"}])
    frames: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        await ws.send_json({**step, "id": f"{flow}-{index}"})
        frames = await until_prompt(ws)
    # The receipt is the outbox's (bot.reports): it may follow the next question.
    while "ESS-" not in (texts := "\n".join(f.get("text", "") for f in frames)):
        frames.append(await ws.receive_json(timeout=30))  # a guard, not a timing
    start = texts.index("ESS-")
    return texts[start:start + 9]


async def test_my_reports_on_the_web_chat_and_the_silent_exclusion(
        client: TestClient[Any, Any]) -> None:  # noqa: F811
    ws, _ = await hello(client, lang="km")
    hidden = await web_report(ws, "silent")
    await ws.send_json({"type": "text", "id": "q1", "text": hidden})
    frames = await until_prompt(ws)
    assert frames[1]["text"] == CATALOGS.render(
        "km", Text("status.silent.dispatched", {"reference": hidden}))
    assert frames[1]["silent"] is True and frames[1]["lang"] == "km"
    shown = await web_report(ws, "report")
    await ws.send_json({"type": "text", "id": "q2", "text": "MY"})
    frames = await until_prompt(ws)
    listing = "\n".join(f.get("text", "") for f in frames)
    assert CATALOGS.render("km", Text("mine.title")) in listing
    assert shown in listing and hidden not in listing
    assert "0812345678" not in listing
    await ws.close()
