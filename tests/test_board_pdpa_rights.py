"""Subject rights acted on from the board's PDPA page, over HTTP: the same functions as
`ess subject …` (bot/privacy/rights.py) by `staff:<login>`, and every refusal a clear page:
non-admin 403, no CSRF token 403, an empty reason shown again with a message, an unknown
subject a message. The page in Chromium: tests/test_board_pdpa_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.privacy.sealed_export import open_export
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.pdpa import PATH
from channels.board.pdpa_rights import DOWNLOADED
from storage.privacy import SubjectRequest
from storage.vault import is_erased
from tests.dispatch_kit import report
from tests.test_board import PHITSANULOK, add, client, csrf_of, page, services_of, sign_in

__all__ = ["client"]  # the board's own client fixture

ADMIN = StaffMember("dpo", "Data Officer", "en", ("admin",), ("TH",))
PHONE = "081-234-5678"


async def admin(client: TestClient[Any, Any]) -> str:
    """Sign the admin in; the PDPA page's CSRF token."""
    await add(client, ADMIN)
    assert (await sign_in(client, "dpo")).status == 303
    status, html = await page(client, PATH)
    assert status == 200
    return csrf_of(html)


async def post(client: TestClient[Any, Any], action: str, **form: str) -> tuple[int, str]:
    response = await client.post(f"{PATH}/{action}", data=form, allow_redirects=False)
    return response.status, await response.text()


async def actions(client: TestClient[Any, Any]) -> list[tuple[str, str, str]]:
    rows = await services_of(client).storage.audit.find(staff="staff:dpo", limit=100)
    return [(r.entry.action, r.entry.subject, r.entry.detail) for r in reversed(rows)]


async def test_find_then_export_shows_the_password_once_and_the_file_downloads_once(
        client: TestClient[Any, Any]) -> None:
    services = services_of(client)
    mine = await report(services, "web:reporter-1", phone=PHONE)
    csrf = await admin(client)
    status, html = await post(client, "find", csrf=csrf, by="phone", value=PHONE)
    # The report, and the web conversation it was made from (its live state).
    assert status == 200 and mine.reference in html and "2 record(s) held" in html
    assert "The law allows 30 days: due" in html and "The law allows 90 days: due" in html
    subject = re.search(r"Subject (S-\w+)", html)
    assert subject
    exported = await client.post(f"{PATH}/export", data={
        "csrf": csrf, "by": "phone", "value": PHONE, "request": ""})
    html = await exported.text()
    assert exported.status == 200 and "shown only now and never stored" in html
    assert exported.headers["Cache-Control"] == "no-store"  # the password is on this page
    password = re.search(r'id="password">([\w-]+)<', html)
    link = re.search(rf'href="({PATH}/download/[\w-]+)"', html)
    assert password and link
    download = await client.get(link.group(1))
    assert download.status == 200
    assert download.headers["Cache-Control"] == "no-store"
    assert "attachment" in download.headers["Content-Disposition"]
    data = open_export(await download.read(), password.group(1))
    assert data["subject"] == subject.group(1)
    [record] = [r for r in data["records"] if r["kind"] == "incident"]
    assert record["data"]["phone"] == "+66812345678" and record["reference"] == mine.reference
    again = await client.get(link.group(1))  # once only
    assert again.status == 404 and "used already or has expired" in await again.text()
    # The same as `ess subject export`: a request answered, in the audit trail by the admin.
    [done] = await services.storage.privacy.requests(open_only=False)
    assert done.kind == "access" and done.status == "done"
    assert done.references == (mine.reference, "test conversation")
    trail = await actions(client)
    assert ("subject.export", subject.group(1),
            f"{done.id}: {len(data['records'])} record(s)") in trail
    assert any(a == DOWNLOADED and s == subject.group(1) for a, s, _ in trail)
    # Nothing personal in the trail: the phone is only ever a keyed digest.
    assert all("234" not in d and "5678" not in d for _, _, d in trail)


async def test_erase_needs_a_reason_then_a_confirmation_and_answers_the_request(
        client: TestClient[Any, Any]) -> None:
    services = services_of(client)
    mine = await report(services, "web:reporter-2", phone=PHONE)
    csrf = await admin(client)
    _, found = await post(client, "find", csrf=csrf, by="reference", value=mine.reference)
    subject = re.search(r"Subject (S-\w+)", found)
    assert subject
    now = utcnow()
    await services.storage.privacy.add_request(SubjectRequest(
        "R-erase000001", "erasure", subject.group(1), "phone", now - timedelta(days=10),
        now + timedelta(days=80), "cli:x"))
    _, found = await post(client, "find", csrf=csrf, by="reference", value=mine.reference)
    assert '<option value="R-erase000001" selected>' in found

    status, html = await post(client, "erase", csrf=csrf, by="reference",
                              value=mine.reference, request="R-erase000001", reason="  ")
    assert status == 400 and "Write the reason: it is kept with the request." in html
    assert mine.reference in html  # the same subject's page, shown again
    status, html = await post(client, "erase", csrf=csrf, by="reference",
                              value=mine.reference, request="R-erase000001",
                              reason="asked in writing on 2026-11-20")
    assert status == 200 and "cannot be undone" in html and 'name="confirm" value="yes"' in html
    still = await services.storage.incidents.get(mine.reference)
    assert still is not None and not is_erased(still)  # nothing erased before the confirm

    status, html = await post(client, "erase", csrf=csrf, by="reference",
                              value=mine.reference, request="R-erase000001",
                              reason="asked in writing on 2026-11-20", confirm="yes")
    assert status == 200 and "erased, backups included (request R-erase000001)" in html
    gone = await services.storage.incidents.get(mine.reference)
    assert gone is not None and is_erased(gone)
    closed = await services.storage.privacy.request("R-erase000001")
    assert closed is not None and closed.status == "done"
    assert closed.reason == "asked in writing on 2026-11-20"
    trail = await actions(client)
    assert ("subject.erase", subject.group(1), "R-erase000001") in trail  # per record
    _, after = await post(client, "find", csrf=csrf, by="phone", value=PHONE)
    assert "No record is held about this subject." in after


async def test_refuse_needs_a_written_reason_and_keeps_it(
        client: TestClient[Any, Any]) -> None:
    storage = services_of(client).storage
    now = utcnow()
    await storage.privacy.add_request(SubjectRequest(
        "R-refuse00001", "access", "S-aaaaaaaaaaaa", "phone", now, now + timedelta(days=30),
        "cli:x"))
    csrf = await admin(client)
    status, html = await post(client, "refuse", csrf=csrf, request="R-refuse00001",
                              reason="")
    assert status == 400 and "A refusal needs a written reason (PDPA s.39)." in html
    assert "R-refuse00001" in html  # still open, still listed
    status, html = await post(client, "refuse", csrf=csrf, request="R-refuse00001",
                              reason="not the person named (identity not proven)")
    assert status == 200 and "Request R-refuse00001 refused; the reason is kept." in html
    kept = await storage.privacy.request("R-refuse00001")
    assert kept is not None and kept.status == "refused"
    assert kept.reason == "not the person named (identity not proven)"
    status, html = await post(client, "refuse", csrf=csrf, request="R-refuse00001",
                              reason="again")
    assert status == 409 and "cannot be acted on" in html
    assert ("request.refuse", "S-aaaaaaaaaaaa", "R-refuse00001") in await actions(client)


async def test_unknown_subjects_and_bad_values_get_a_clear_message(
        client: TestClient[Any, Any]) -> None:
    csrf = await admin(client)
    for by, value, status, says in (
            ("reference", "ESS-XXXXX", 404, "No report or case with that reference."),
            ("case", "CASE-XXXXX", 404, "No report or case with that reference."),
            ("case", "7K3F9", 400, "A case reference looks like CASE-7K3F9."),
            ("phone", "hello", 400, "That is not a Thai phone number."),
            ("line-user", "bob", 400, "A LINE user id is U followed by 32 hex characters."),
            ("nonsense", "x", 400, "Choose how the subject is named"),
            ("phone", "", 400, "Choose how the subject is named")):
        for action in ("find", "export"):
            got, html = await post(client, action, csrf=csrf, by=by, value=value)
            assert (got, says in html) == (status, True), (action, by, value)
    got, html = await post(client, "export", csrf=csrf, by="phone", value="0899999999",
                           request="R-nothing")
    assert got == 409 and "Request R-nothing cannot be acted on: there is no such" in html
    # The header's language link on an answered page leads back to the page, not a 405.
    back = await client.get(f"{PATH}/find?lang=th", allow_redirects=False)
    assert (back.status, back.headers["Location"]) == (303, f"{PATH}?lang=th")
    got, html = await post(client, "find", csrf=csrf, by="phone", value="0899999999")
    assert got == 200 and "No record is held about this subject." in html
    assert "Export, sealed" not in html  # nothing to export or erase
    assert (await services_of(client).storage.privacy.requests(open_only=False)) == []


async def test_a_non_admin_and_a_missing_csrf_token_are_refused(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await sign_in(client, "somchai")
    _, board = await page(client, "/board")
    token = csrf_of(board)  # a real token of a supervisor's session
    for action in ("find", "export", "erase", "refuse"):
        status, html = await post(client, action, csrf=token, by="phone", value=PHONE,
                                  reason="x", confirm="yes", request="R-x")
        assert status == 403 and "for administrators only" in html, action
    refused = await services_of(client).storage.audit.find(staff="staff:somchai")
    assert {r.entry.action for r in refused} >= {
        "board.pdpa.find.refused", "board.pdpa.erase.refused"}

    client.session.cookie_jar.clear()
    await admin(client)
    for action in ("find", "export", "erase", "refuse"):
        status, _ = await post(client, action, by="phone", value=PHONE, reason="x",
                               confirm="yes")
        assert status == 403, action
        status, _ = await post(client, action, csrf="0" * 64, by="phone", value=PHONE)
        assert status == 403, action
    assert (await services_of(client).storage.privacy.requests(open_only=False)) == []
    signed_out = await client.get(f"{PATH}/download/whatever", allow_redirects=False)
    assert signed_out.status == 404  # signed in, but no such file
    client.session.cookie_jar.clear()
    assert (await client.get(f"{PATH}/download/whatever")).status == 401
