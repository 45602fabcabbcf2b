"""Staff administration in the board over HTTP: only an administrator, only within their
areas (what they see, change and grant), CSRF and Origin like every board form, every
change audited, and the one-time link it prints sets a password that signs in."""

from __future__ import annotations

import re
from typing import Any

import aiosqlite
from aiohttp.test_utils import TestClient

from bot.staff import StaffMember
from config.settings import Settings
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

__all__ = ["client"]  # the fixture, shared with tests/test_board.py

PROVINCE_ADMIN = StaffMember("malee", "Malee S.", "en", ("admin",), ("65",))
NATIONAL_ADMIN = StaffMember("root", "Root", "en", ("admin",), ("TH",))
ROOT = "/board/admin/staff"


async def admin_page(client: TestClient[Any, Any]) -> str:
    status, html = await page(client, ROOT)
    assert status == 200, html
    return html


async def audit(settings: Settings) -> list[tuple[str, str, str]]:
    async with aiosqlite.connect(settings.sqlite_path) as db:
        return [tuple(r) for r in await db.execute_fetchall(  # type: ignore[misc]
            "SELECT actor, action, reference FROM audit WHERE action LIKE 'board.staff.%'")]


async def test_only_an_administrator_manages_staff(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await sign_in(client, "somchai")
    status, html = await page(client, ROOT)
    assert status == 403 and "Only an administrator" in html
    _, board = await page(client, "/board")
    assert ROOT not in board  # no link to it either
    response = await client.post(f"{ROOT}/add", data={
        "csrf": csrf_of(board), "login": "intruder", "role_admin": "1", "areas": "TH"})
    assert response.status == 403
    assert await services_of(client).storage.staff.get("intruder") is None


async def test_an_admin_sees_and_changes_only_the_accounts_of_their_areas(
        client: TestClient[Any, Any], settings: Settings) -> None:
    for member in (PROVINCE_ADMIN, PHITSANULOK, CHIANG_MAI, NATIONAL_ADMIN):
        await add(client, member)
    await sign_in(client, "malee")
    _, board = await page(client, "/board")
    assert f'href="{ROOT}"' in board
    html = await admin_page(client)
    assert 'id="staff-somchai"' in html and 'id="staff-malee"' in html
    assert "anong" not in html and 'id="staff-root"' not in html
    token = csrf_of(html)
    staff = services_of(client).storage.staff
    for login in ("anong", "root", "nobody"):
        for what in ("save", "disable", "reset"):
            response = await client.post(f"{ROOT}/{login}/{what}", data={
                "csrf": token, "role_responder": "1", "areas": "65"})
            assert response.status == 404, (login, what)
    assert not (await staff.get("anong")).disabled  # type: ignore[union-attr]
    assert (await staff.get("root")).roles == ("admin",)  # type: ignore[union-attr]

    # Areas outside their own are refused, for a new account and for a change.
    for path, extra in ((f"{ROOT}/add", {"login": "newbie"}), (f"{ROOT}/somchai/save", {})):
        for areas in ("50", "TH", "65 50", "6"):
            response = await client.post(path, data={
                "csrf": token, "role_responder": "1", "areas": areas, **extra})
            assert response.status == 400, (path, areas)
            assert "only areas inside your own: 65" in await response.text()
    assert await staff.get("newbie") is None
    assert (await staff.get("somchai")).areas == ("65",)  # type: ignore[union-attr]

    response = await client.post(f"{ROOT}/somchai/save", data={
        "csrf": token, "name": "Somchai <b>P.</b>", "lang": "th", "role_supervisor": "1",
        "role_analyst": "1", "areas": "65 6501", "agencies": "police msdhs"})
    assert response.status == 200
    text = await response.text()
    assert "Account somchai saved." in text and "<b>P.</b>" not in text
    assert "Somchai &lt;b&gt;P.&lt;/b&gt;" in text
    saved = await staff.get("somchai")
    assert saved is not None and saved.roles == ("supervisor", "analyst")
    assert saved.areas == ("65", "6501") and saved.agencies == ("police", "msdhs")
    assert saved.lang == "th"
    assert ("staff:malee", "board.staff.save:supervisor,analyst:65,6501", "staff:somchai") \
        in await audit(settings)


async def test_an_admin_adds_an_account_whose_link_sets_a_password_that_signs_in(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, PROVINCE_ADMIN)
    await sign_in(client, "malee")
    token = csrf_of(await admin_page(client))
    bad = await client.post(f"{ROOT}/add", data={
        "csrf": token, "login": "bad login!", "role_responder": "1", "areas": "65"})
    assert bad.status == 400 and "A login is 1 to 64" in await bad.text()
    none = await client.post(f"{ROOT}/add", data={
        "csrf": token, "login": "dao", "areas": "65"})
    assert none.status == 400 and "at least one role" in await none.text()
    response = await client.post(f"{ROOT}/add", data={
        "csrf": token, "login": "dao", "name": "Dao", "lang": "en", "role_responder": "1",
        "areas": "6501", "agencies": "police"})
    assert response.status == 200
    text = await response.text()
    link = re.search(r"(http://[^ <]+/board/password\?token=[\w-]+)", text)
    assert link, text
    taken = await client.post(f"{ROOT}/add", data={
        "csrf": token, "login": "dao", "role_responder": "1", "areas": "65"})
    assert taken.status == 409
    member = await services_of(client).storage.staff.get("dao")
    assert member is not None and member.areas == ("6501",) and member.roles == ("responder",)
    assert ("staff:malee", "board.staff.add:responder:6501", "staff:dao") in \
        await audit(settings)

    new_token = link.group(1).rsplit("token=", 1)[1]
    client.session.cookie_jar.clear()
    response = await client.post("/board/password", data={
        "token": new_token, "password": "a long enough password", "lang": "en"})
    assert response.status == 200
    assert (await sign_in(client, "dao", "a long enough password")).status == 303


async def test_a_reset_replaces_the_link_and_a_disable_ends_the_sessions(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, PROVINCE_ADMIN)
    await add(client, PHITSANULOK)
    other = await sign_in(client, "somchai")
    somchai_cookie = other.cookies["ess_board"].value
    client.session.cookie_jar.clear()
    await sign_in(client, "malee")
    token = csrf_of(await admin_page(client))
    reset = await client.post(f"{ROOT}/somchai/reset", data={"csrf": token})
    assert reset.status == 200 and "/board/password?token=" in await reset.text()
    # Without the token or from another site: refused, nothing changed.
    forged = await client.post(f"{ROOT}/somchai/disable", data={"csrf": "0" * 64})
    assert forged.status == 403
    foreign = await client.post(f"{ROOT}/somchai/disable", data={"csrf": token},
                                headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    staff = services_of(client).storage.staff
    assert not (await staff.get("somchai")).disabled  # type: ignore[union-attr]
    disabled = await client.post(f"{ROOT}/somchai/disable", data={"csrf": token})
    assert disabled.status == 200 and "every session of it has ended" in await disabled.text()
    assert (await staff.get("somchai")).disabled  # type: ignore[union-attr]
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"ess_board": somchai_cookie})
    assert (await client.get("/board", allow_redirects=False)).status == 303
    rows = await audit(settings)
    assert ("staff:malee", "board.staff.reset", "staff:somchai") in rows
    assert ("staff:malee", "board.staff.disable", "staff:somchai") in rows
