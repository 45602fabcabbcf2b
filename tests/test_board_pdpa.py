"""The board's PDPA page: admins only, audited; open subject requests with their deadlines
and what retention erases in the coming days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.incident import TimelineEvent
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.pdpa import PATH, VIEW
from storage.privacy import SubjectRequest
from tests.test_board import PHITSANULOK, add, client, page, services_of, sign_in
from tests.test_storage_contract import incident

__all__ = ["client"]  # the board's own client fixture

ADMIN = StaffMember("dpo", "Data Officer", "en", ("admin",), ("TH",))


async def test_a_supervisor_is_refused_and_the_attempt_is_audited(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    assert (await page(client, PATH))[0] == 303  # not signed in: to the sign-in page
    await sign_in(client, "somchai")
    status, html = await page(client, PATH)
    assert status == 403 and "for administrators only" in html
    trail = await services_of(client).storage.audit.find(staff="staff:somchai")
    assert [r.entry.action for r in trail] == [VIEW + ".refused", "staff.login"]
    _, board = await page(client, "/board")
    assert f'href="{PATH}"' not in board  # the header links the page for admins only


async def test_the_admins_header_links_the_page_in_both_languages(
        client: TestClient[Any, Any]) -> None:
    await add(client, ADMIN)
    await sign_in(client, "dpo")
    for lang, name in (("en", "PDPA"), ("th", "PDPA ข้อมูลส่วนบุคคล")):
        _, html = await page(client, f"/board?lang={lang}")
        header = html.split("<header>", 1)[1].split("</header>", 1)[0]
        assert f'<a class="nav" href="{PATH}">{name}</a>' in header


async def test_an_admin_sees_requests_by_deadline_and_what_retention_erases_soon(
        client: TestClient[Any, Any]) -> None:
    storage = services_of(client).storage
    now = utcnow()
    late = SubjectRequest("R-late000001", "access", "S-aaaaaaaaaaaa", "phone",
                          now - timedelta(days=35), now - timedelta(days=5), "cli:x")
    fresh = SubjectRequest("R-fresh00001", "erasure", "S-bbbbbbbbbbbb", "phone",
                           now - timedelta(days=10), now + timedelta(days=80), "cli:x")
    done = SubjectRequest("R-done000001", "access", "S-cccccccccccc", "phone",
                          now - timedelta(days=3), now + timedelta(days=27), "cli:x",
                          status="done", closed_at=now)
    for r in (fresh, late, done):
        await storage.privacy.add_request(r)
    # Resolved 360 days ago: retention (365 days) erases it within the week, not tomorrow.
    old = incident("board-pdpa:old")
    old.created_at = old.updated_at = now - timedelta(days=361)
    old = await storage.incidents.create(old, [], TimelineEvent("reported", "r", "sms"))
    old.status = "resolved"
    await storage.incidents.update(old, TimelineEvent("resolve", "police", "line",
                                                      now - timedelta(days=360)))
    kept = await storage.incidents.create(incident("board-pdpa:open"), [],
                                          TimelineEvent("reported", "r", "sms"))
    await add(client, ADMIN)
    await sign_in(client, "dpo")
    status, html = await page(client, PATH)
    assert status == 200
    assert html.index("R-late000001") < html.index("R-fresh00001")  # soonest deadline first
    assert "overdue by 5 day(s)" in html and "R-done000001" not in html
    assert old.reference in html and kept.reference not in html
    assert "phone, exact location, answers, relay messages" in html
    _, tomorrow = await page(client, PATH + "?days=1")
    assert old.reference not in tomorrow and "Nothing is due" in tomorrow
    _, thai = await page(client, PATH + "?lang=th&days=nonsense")
    assert "เกินกำหนด 5 วัน" in thai and old.reference in thai  # bad days: the default week
    views = await storage.audit.find(staff="staff:dpo")
    assert [r.entry.action for r in views].count(VIEW) == 3
    assert (await storage.audit.verify()).broken_at is None
