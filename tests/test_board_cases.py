"""The board's cases tab over HTTP: the caseload scoped to the staff member's areas in the
store's read, another area's case a 404 for every page and action, moves and referrals
through `Casework` as `board:<login>` (the volunteer told), the person hidden until revealed
with a reason, every read audited, CSRF and Origin checked. The cases are opened by a
registered volunteer through the real flow (tests/test_volunteer_case.py's intake)."""

from __future__ import annotations

from typing import Any

import aiosqlite
from aiohttp.test_utils import TestClient

from bot.staff import StaffMember
from config.settings import Settings
from routing.messages import notification_reply
from tests.test_board import (
    CHIANG_MAI,
    PHITSANULOK,
    add,
    client,
    csrf_of,
    page,
    services_of,
    sign_in,
)
from tests.test_volunteer_case import ADDRESS, THAI_ID, _outbox, intake, register

__all__ = ["client"]  # the board's fixture

NEEDS = "rice and school fees"  # what intake() types as the urgent needs
ID_SHOWN = "1-1017-00230-70-8"
RESPONDER_65 = StaffMember("dao", "Dao S.", "en", ("responder",), ("65",))


async def a_case(client: TestClient[Any, Any], sender: str = "vol",
                 hardships: tuple[str, ...] = ("old_age", "out_of_school")) -> str:
    services = services_of(client)
    await register(services, sender)  # a volunteer of district 6501 (Phitsanulok)
    replies = await intake(services, sender, hardships=hardships)
    return str(replies[-1].text.params["case_reference"])


async def status_of(client: TestClient[Any, Any], reference: str) -> str:
    case = await services_of(client).storage.cases.get(reference)
    assert case is not None
    return case.status


async def post(client: TestClient[Any, Any], path: str, **data: str) -> tuple[int, str]:
    response = await client.post(path, data=data)
    return response.status, await response.text()


async def audit_rows(settings: Settings) -> list[tuple[str, str, str]]:
    async with aiosqlite.connect(settings.sqlite_path) as db:
        return [tuple(r) for r in await db.execute_fetchall(  # type: ignore[misc]
            # The hash-chained trail (storage/audit.py) keeps what was read in `reference`.
            "SELECT actor, action, reference FROM audit")]


async def test_the_caseload_is_the_staff_members_areas_and_another_areas_case_is_a_404(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await add(client, CHIANG_MAI)
    reference = await a_case(client)
    await sign_in(client, "somchai")
    status, html = await page(client, "/board/cases")
    assert status == 200 and reference in html and "Zero Dropout" in html
    assert 'href="/board/cases"' in html  # the nav link
    status, html = await page(client, f"/board/cases/{reference}")
    assert status == 200 and "Elderly allowance" in html  # the screening hints

    client.session.cookie_jar.clear()
    await sign_in(client, "anong")
    status, html = await page(client, "/board/cases")
    assert status == 200 and reference not in html and "No case in your areas" in html
    token = csrf_of(html)
    for path in (f"/board/cases/{reference}", f"/board/cases/{reference.lower()}",
                 "/board/cases/CASE-ZZZZZ"):
        status, html = await page(client, path)
        assert status == 404 and "No case with that reference in your areas" in html
    for action, data in (("move", {"trigger": "screen"}), ("reveal", {"reason": "visit"}),
                         ("refer", {"to": "elderly_allowance", "days": "7"}),
                         ("referral", {"referral": "x", "trigger": "accept"})):
        status, html = await post(client, f"/board/cases/{reference}/{action}", csrf=token,
                                  **data)
        assert status == 404, action
        assert NEEDS not in html and ID_SHOWN not in html
    assert await status_of(client, reference) == "new"


async def test_moves_and_referrals_go_through_casework_and_the_volunteer_is_told(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    reference = await a_case(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/cases/{reference}")
    token = csrf_of(html)
    base = f"/board/cases/{reference}"
    for i, trigger in enumerate(("screen", "assess")):
        status, html = await post(client, f"{base}/move", csrf=token, trigger=trigger,
                                  event=f"m{i}")
        assert status == 200 and "The volunteer is told" in html
    status, html = await post(client, f"{base}/refer", csrf=token, to="elderly_allowance",
                              days="7", event="r1")
    assert status == 200 and "Elderly allowance" in html and "follow-up due" in html
    # The same form sent twice (a double tap) refers once.
    status, _ = await post(client, f"{base}/refer", csrf=token, to="elderly_allowance",
                           days="7", event="r1")
    assert status == 200
    case = await services_of(client).storage.cases.get(reference)
    assert case is not None and case.status == "referred" and len(case.referrals) == 1
    status, html = await post(client, f"{base}/move", csrf=token, trigger="reject",
                              event="j0")
    assert status == 409 and "a reason is required" in html
    evil = "<script>alert(1)</script>"
    status, html = await post(client, f"{base}/move", csrf=token, trigger="reject",
                              reason=f"no papers {evil}", event="j1")
    assert status == 200 and evil not in html and "&lt;script&gt;" in html
    status, html = await post(client, f"{base}/referral", csrf=token, trigger="reject",
                              referral=case.referrals[0].id, reason="not eligible",
                              event="f1")
    assert status == 200 and "declined" in html
    status, _ = await post(client, f"{base}/referral", csrf=token, trigger="done",
                           referral=case.referrals[0].id, event="f2")
    assert status == 409
    storage = services_of(client).storage
    events = await storage.cases.timeline(case.id)
    assert [(e.kind, e.actor, e.channel) for e in events[1:]] == [
        ("screen", "board:somchai", "board"), ("assess", "board:somchai", "board"),
        ("referral", "board:somchai", "board"), ("reject", "board:somchai", "board"),
        ("referral_reject", "board:somchai", "board")]
    told = [notification_reply(n).text.key for n in await _outbox(services_of(client))
            if n.recipient == ADDRESS]
    assert told == ["case.update.assess", "case.update.refer", "case.update.reject",
                    "case.update.referral_reject"]


async def test_closing_needs_a_supervisor_from_the_role(client: TestClient[Any, Any]) -> None:
    await add(client, RESPONDER_65)
    await add(client, PHITSANULOK)
    reference = await a_case(client)
    cw = services_of(client).casework
    for trigger in ("screen", "assess"):
        assert (await cw.move(reference, trigger, "cli")).error == ""
    await sign_in(client, "dao")
    _, html = await page(client, f"/board/cases/{reference}")
    assert 'value="close"' not in html and "needs a supervisor" in html
    status, html = await post(client, f"/board/cases/{reference}/move", csrf=csrf_of(html),
                              trigger="close")
    assert status == 409 and "needs a supervisor" in html
    assert await status_of(client, reference) == "assessed"
    client.session.cookie_jar.clear()
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/cases/{reference}")
    status, _ = await post(client, f"/board/cases/{reference}/move", csrf=csrf_of(html),
                           trigger="close")
    assert status == 200 and await status_of(client, reference) == "closed"


async def test_the_person_is_hidden_until_revealed_and_every_read_is_audited(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, PHITSANULOK)
    reference = await a_case(client)
    await sign_in(client, "somchai")
    _, listing = await page(client, "/board/cases")
    _, html = await page(client, f"/board/cases/{reference}")
    for secret in (NEEDS, THAI_ID, ID_SHOWN, ADDRESS, "16.8"):
        assert secret not in listing and secret not in html, secret
    status, html = await post(client, f"/board/cases/{reference}/reveal",
                              csrf=csrf_of(html), reason="sightseeing")
    assert status == 400 and NEEDS not in html
    status, html = await post(client, f"/board/cases/{reference}/reveal",
                              csrf=csrf_of(html), reason="assessment")
    assert status == 200 and NEEDS in html and ID_SHOWN in html and ADDRESS in html
    assert "Grandchild" in html and "Born 1956 (BE 2499)" in html
    rows = await audit_rows(settings)
    assert ("staff:somchai", "board.case.list", "65") in rows
    assert ("staff:somchai", "board.case.view", reference) in rows
    assert ("staff:somchai", "board.case.reveal:assessment", reference) in rows
    assert not any(r[1] == "board.case.reveal:sightseeing" for r in rows)


async def test_forged_csrf_or_another_origin_changes_nothing(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    reference = await a_case(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/cases/{reference}")
    token = csrf_of(html)
    path = f"/board/cases/{reference}/move"
    for data in ({"trigger": "screen"}, {"csrf": "0" * 64, "trigger": "screen"}):
        status, text = await post(client, path, **data)
        assert status == 403 and "did not come from the board" in text
    # A valid token from another site's page still fails on its Origin.
    response = await client.post(path, data={"csrf": token, "trigger": "screen"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    response = await client.post(f"/board/cases/{reference}/reveal",
                                 data={"csrf": token, "reason": "visit"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403 and NEEDS not in await response.text()
    assert await status_of(client, reference) == "new"
    status, _ = await post(client, path, csrf=token, trigger="screen")
    assert status == 200 and await status_of(client, reference) == "screening"


async def test_an_analyst_reads_the_caseload_but_cannot_act(
        client: TestClient[Any, Any]) -> None:
    await add(client, StaffMember("nok", "Nok", "en", ("analyst",), ("65",)))
    reference = await a_case(client)
    await sign_in(client, "nok")
    status, html = await page(client, f"/board/cases/{reference}")
    assert status == 200 and 'value="screen"' not in html
    for action, data in (("move", {"trigger": "screen"}), ("reveal", {"reason": "visit"})):
        status, text = await post(client, f"/board/cases/{reference}/{action}",
                                  csrf=csrf_of(html), **data)
        assert status == 403 and "reads the board only" in text
    assert await status_of(client, reference) == "new"


async def test_the_zero_dropout_filter_lists_only_the_areas_children_out_of_school(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    child = await a_case(client)
    adult = await a_case(client, "vol2", hardships=("income",))
    await sign_in(client, "somchai")
    _, html = await page(client, "/board/cases")
    assert child in html and adult in html
    status, html = await page(client, "/board/cases?flag=zero_dropout")
    assert status == 200 and child in html and adult not in html
    _, html = await page(client, "/board/cases?status=screening")
    assert child not in html and adult not in html
    _, html = await page(client, "/board/cases?area=50")  # not one of hers: nothing
    assert child not in html
    status, _ = await page(client, f"/board/cases?ref={child.lower()}")
    assert status == 303
