"""The incident page's record over HTTP: who was told at which escalation level and whether
it reached them (from the real outbox the dispatcher works through), and the relay chat with
the reporter, in order, with its direction, every text escaped."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.test_board import (
    PHITSANULOK,
    add,
    client,
    csrf_of,
    page,
    phitsanulok_report,
    services_of,
    sign_in,
)

__all__ = ["client"]  # the fixture, shared with tests/test_board.py


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    # Nobody acknowledges at first: the next level is told after a second.
    return Settings(data_dir=str(tmp_path / "var"), log_format="console", escalate_after=1.0)


def section(html: str, title: str) -> str:
    found = re.search(rf"<h2>{title}</h2>(.*?)<h2>", html, re.S)
    assert found, f"the page has the section {title!r}"
    return found.group(1)


async def test_the_page_says_who_was_told_at_which_level_and_shows_the_relay_chat(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    storage = services_of(client).storage
    for _ in range(150):  # the dispatcher delivers the cards, then the escalation's
        cards = [n for n in await storage.outbox.for_incident(incident.id)
                 if n.kind == "incident.new"]
        levels = {n.payload.get("level") for n in cards}
        if {0, 1} <= levels and all(n.status == "sent" for n in cards):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the cards of levels 0 and 1 were not delivered")
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    told = section(html, "Who was told")
    stored = await storage.incidents.get(incident.reference)
    assert stored is not None
    targets = stored.details["dispatch"]["targets"]
    rows = re.findall(r'<tr class="out-sent"><td>Level (\d+)</td><td>([^<]+)</td>', told)
    assert len(rows) >= len(cards)  # the later levels (and reminders) keep coming
    for address, target in targets.items():
        if any(n.recipient == address for n in cards):
            assert (str(target["level"]), target["name_en"]) in rows
    assert {level for level, _ in rows} >= {"0", "1"}
    assert "delivered" in told and "card" in told
    # No address (an SMS responder's is a phone number): a channel's name, never its address.
    assert not any(address in told for address in targets)
    assert not re.search(r"\b(console|line|sms|web):", told), told
    assert "No message has been exchanged" in section(html, "Chat with the reporter")

    token = csrf_of(html)
    await client.post(f"/board/i/{incident.reference}/act",
                      data={"csrf": token, "action": "acknowledge", "event": "a1"})
    sent = await client.post(f"/board/i/{incident.reference}/relay", data={
        "csrf": token, "text": "<script>alert(1)</script> Stay inside, we are coming."})
    assert sent.status == 200
    assert await services_of(client).responders.relay_to_responders(
        incident.reference, incident.reporter, "web", "Thank you <b>hurry</b>")
    _, html = await page(client, f"/board/i/{incident.reference}")
    chat = section(html, "Chat with the reporter")
    first = chat.index("To the reporter:")
    second = chat.index("From the reporter, to Somchai P.:")
    assert first < second
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Stay inside, we are coming." in chat
    assert "Thank you &lt;b&gt;hurry&lt;/b&gt;" in chat
    assert "<script>alert" not in html and "<b>hurry" not in html
