"""Every sign-in attempt on the board, and every sign-out, in the hash-chained audit trail:
as `staff:<login>` for an account, under a keyed name for a login nobody has; never the
password, and the page says nothing more than before about which logins exist."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.privacy.access import (
    LOGIN,
    LOGIN_FAILED,
    LOGOUT,
    NO_ACCOUNT,
    PASSWORD_SET,
    PASSWORD_SET_FAILED,
)
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.auth import ACCOUNT_TRIES
from tests.test_board import (
    PASSWORD,
    PHITSANULOK,
    add,
    client,
    csrf_of,
    page,
    services_of,
    sign_in,
)
from tests.test_cli import ess

__all__ = ["client"]  # the board's own client fixture

RESPONDER = StaffMember("malee", "Malee S.", "en", ("responder",), ("65",))
WRONG = "not the password at all"


async def trail(client: TestClient[Any, Any], actor: str) -> list[tuple[str, str]]:
    rows = await services_of(client).storage.audit.find(staff=actor)
    return [(r.entry.action, r.entry.detail) for r in reversed(rows)]


async def test_success_wrong_password_totp_failure_and_sign_out_are_audited(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)  # a supervisor: TOTP enrolled
    assert (await sign_in(client, "somchai", WRONG)).status == 401
    assert (await sign_in(client, "somchai", code="000000")).status == 401
    assert (await sign_in(client, "somchai")).status == 303
    _, html = await page(client, "/board")
    out = await client.post("/board/logout", data={"csrf": csrf_of(html)},
                            allow_redirects=False)
    assert out.status == 303
    assert await trail(client, "staff:somchai") == [
        (LOGIN_FAILED, "wrong_password"), (LOGIN_FAILED, "totp_failed"),
        (LOGIN, "password+totp"), (LOGOUT, "")]
    assert (await services_of(client).storage.audit.verify()).intact


async def test_a_disabled_account_and_a_locked_out_one_are_audited_as_such(
        client: TestClient[Any, Any]) -> None:
    await add(client, RESPONDER)  # a responder: password only
    assert (await sign_in(client, "malee")).status == 303
    await services_of(client).storage.staff.disable("malee")
    refused = await sign_in(client, "malee")
    assert refused.status == 401
    for _ in range(ACCOUNT_TRIES):
        await sign_in(client, "malee", WRONG)
    assert (await sign_in(client, "malee")).status == 429
    rows = await trail(client, "staff:malee")
    assert rows[:2] == [(LOGIN, "password"), (LOGIN_FAILED, "disabled")]
    assert rows[-1] == (LOGIN_FAILED, "locked_out")


async def test_an_unknown_login_is_kept_keyed_and_the_page_reads_as_a_wrong_password(
        client: TestClient[Any, Any], tmp_path: Path) -> None:
    await add(client, RESPONDER)
    wrong = await sign_in(client, "malee", WRONG)
    # What someone pasted into the login field may be a password: never in the trail.
    unknown = await sign_in(client, "hunter2-secret", PASSWORD)
    assert wrong.status == unknown.status == 401
    assert await wrong.text() == await unknown.text()
    storage = services_of(client).storage
    [row] = [r for r in await storage.audit.find(limit=50) if r.entry.actor != "staff:malee"]
    assert row.entry.action == LOGIN_FAILED and row.entry.detail == "unknown_login"
    assert row.entry.actor.startswith("login?")
    everything = json.dumps([[r.entry.actor, r.entry.detail, r.entry.subject]
                             for r in await storage.audit.find(limit=50)])
    assert "hunter2" not in everything and PASSWORD not in everything and WRONG not in everything

    # `ess audit show --staff NAME`: the account's sign-ins, or the tries of a name nobody has.
    shown = await asyncio.to_thread(ess, tmp_path, "audit", "show", "--staff", "malee",
                                    "--json")
    assert shown.returncode == 0, shown.stderr
    assert [(r["actor"], r["action"], r["detail"]) for r in json.loads(shown.stdout)] == [
        ("staff:malee", LOGIN_FAILED, "wrong_password")]
    tries = await asyncio.to_thread(ess, tmp_path, "audit", "show", "--staff",
                                    "hunter2-secret", "--json")
    assert [r["actor"] for r in json.loads(tries.stdout)] == [row.entry.actor]
    text = await asyncio.to_thread(ess, tmp_path, "audit", "show", "--staff", "malee")
    assert "staff.login_failed" in text.stdout and "wrong_password" in text.stdout


async def test_setting_a_password_from_a_one_time_link_is_audited(
        client: TestClient[Any, Any]) -> None:
    storage = services_of(client).storage
    assert await storage.staff.add(RESPONDER, None)  # a new account: no password yet
    link = "a-one-time-link-token-of-enough-length"
    await storage.staff.issue_token("malee", link, utcnow() + timedelta(hours=1))
    chosen = "a long enough password"
    for token in (link, link):  # the second use finds the link spent
        await client.post("/board/password", data={
            "token": token, "password": chosen, "lang": "en"})
    assert await trail(client, "staff:malee") == [(PASSWORD_SET, "one-time link")]
    assert await trail(client, NO_ACCOUNT) == [
        (PASSWORD_SET_FAILED, "link unknown, used or expired")]
    raw = json.dumps([[r.entry.actor, r.entry.detail, r.entry.reference, r.entry.subject]
                      for r in await storage.audit.records()])
    assert link not in raw and chosen not in raw  # neither secret reaches the trail
    assert (await sign_in(client, "malee", chosen)).status == 303
