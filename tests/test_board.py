"""The operations board over HTTP: sign-in, area scope, actions through the responder path,
the live stream with replay, and the attacks of issue 11 (each a clear 4xx, nothing changed).
The whole flow in a real browser is in tests/test_board_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES, create_app
from bot.incident import Incident
from bot.services import Services
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board import TOTP_ROLES, totp
from channels.board.auth import hash_password
from channels.board.live import Feed
from channels.registry import ChannelRegistry
from config.settings import Settings
from tests.dispatch_kit import GULF_OF_THAILAND, report

PASSWORD = "correct horse battery"
PHITSANULOK = StaffMember("somchai", "Somchai P.", "en", ("supervisor",), ("65",), ("police",))
CHIANG_MAI = StaffMember("anong", "Anong K.", "en", ("supervisor",), ("50",))


def board_app(settings: Settings) -> Any:
    return create_app(settings, channels=ChannelRegistry.discover(settings, only=["board"]))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(board_app(settings), host="127.0.0.1")
    await server.start_server()
    # Browsers treat 127.0.0.1 as a secure origin and send Secure cookies to it; so does this.
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(server.make_url("/"))])
    async with TestClient(server, cookie_jar=jar) as test_client:
        yield test_client


def services_of(client: TestClient[Any, Any]) -> Services:
    return client.server.app[SERVICES]  # type: ignore[no-any-return]


SECRETS: dict[str, bytes] = {}  # login → TOTP secret of the accounts `add` enrolled
_USED: dict[bytes, int] = {}  # secret → the last time step a helper signed in with


async def add(client: TestClient[Any, Any], member: StaffMember) -> None:
    """Add an account with PASSWORD; the roles that need a second factor get one enrolled."""
    staff = services_of(client).storage.staff
    assert await staff.add(member, hash_password(PASSWORD))
    if set(member.roles) & set(TOTP_ROLES):
        SECRETS[member.login] = totp.new_secret()
        assert await staff.set_totp(member.login, SECRETS[member.login])


async def fresh_code(secret: bytes) -> str:
    """A code the store has not accepted yet (each step's code is good once)."""
    while True:
        now = totp.step_of(utcnow())
        step = max(now - totp.DRIFT_STEPS, _USED.get(secret, -1) + 1)
        if step <= now + totp.DRIFT_STEPS:
            _USED[secret] = step
            return totp.code_at(secret, step)
        await asyncio.sleep(1)


async def sign_in(client: TestClient[Any, Any], login: str, password: str = PASSWORD,
                  code: str | None = None) -> ClientResponse:
    """Sign in; an enrolled account sends a fresh one-time code unless `code` is given."""
    if code is None:
        code = await fresh_code(SECRETS[login]) if login in SECRETS else ""
    return await client.post("/board/login", allow_redirects=False,
                             data={"login": login, "password": password, "code": code,
                                   "lang": "en"})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page carries its CSRF token"
    return found.group(1)


async def page(client: TestClient[Any, Any], path: str) -> tuple[int, str]:
    response = await client.get(path, allow_redirects=False)
    return response.status, await response.text()


async def phitsanulok_report(client: TestClient[Any, Any]) -> Incident:
    incident = await report(services_of(client), "web:reporter-1")
    assert "65" in incident.area_codes
    return incident


async def test_a_visitor_is_sent_to_sign_in_and_an_empty_board_says_how_to_start(
        client: TestClient[Any, Any]) -> None:
    status, _ = await page(client, "/board")
    assert status == 303
    status, html = await page(client, "/board/login?lang=en")
    assert status == 200 and "ess staff add LOGIN --admin" in html
    assert 'type="password"' in html and 'name="login"' in html


async def test_sign_in_sets_a_strict_cookie_and_shows_only_own_areas(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await add(client, CHIANG_MAI)
    mine = await phitsanulok_report(client)
    response = await sign_in(client, "somchai")
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    status, html = await page(client, "/board")
    assert status == 200 and mine.reference in html
    assert "script-src 'self'" in (await client.get("/board")).headers[
        "Content-Security-Policy"]

    client.session.cookie_jar.clear()
    await sign_in(client, "anong")
    status, html = await page(client, "/board")
    assert status == 200 and mine.reference not in html
    status, html = await page(client, f"/board/i/{mine.reference}")
    assert status == 404 and "No incident with that reference in your areas" in html


async def test_acknowledge_and_eta_from_the_board_go_through_the_responder_path(
        client: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    status, html = await page(client, f"/board/i/{incident.reference}")
    assert status == 200 and "Acknowledge" in html
    token = csrf_of(html)
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": token, "action": "acknowledge", "event": "e1"})
    assert response.status == 200
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": token, "action": "en_route", "minutes": "12",
                                       "event": "e2"})
    assert response.status == 200
    storage = services_of(client).storage
    stored = await storage.incidents.get(incident.reference)
    assert stored is not None and stored.status == "en_route"
    holder = stored.details["dispatch"]["holder"]
    assert holder["address"] == "board:somchai" and holder["name"] == "Somchai P."
    kinds = [e.kind for e in await storage.incidents.timeline(stored.id)]
    assert kinds[-2:] == ["acknowledged", "en_route"]
    # The responders notified were told who has it, through the outbox, as from any channel
    # (the sample directory's console addresses print what they are sent).
    for _ in range(50):
        if "มีผู้รับเรื่องแล้ว: Somchai P." in capsys.readouterr().out:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the notified responders were not told who has it")


async def test_the_phone_is_masked_until_revealed_and_every_view_is_audited(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    # Every spelling of the number, not a bare "081": a CSRF token or a time may hold that.
    assert not any(n in html for n in ("+66812345678", "0812345678", "081-234-5678"))
    response = await client.post(f"/board/i/{incident.reference}/reveal",
                                 data={"csrf": csrf_of(html), "reason": "callback"})
    assert response.status == 200 and "+66812345678" in await response.text()
    _, board = await page(client, "/board")
    assert "+66812345678" not in board
    # Through the hash-chained trail (storage/audit.py): the reference is its own column.
    trail = services_of(client).storage.audit
    rows = [(r.entry.actor, r.entry.action, r.entry.reference)
            for r in await trail.find(reference=incident.reference)]
    assert ("staff:somchai", "board.incident.view", incident.reference) in rows
    assert ("staff:somchai", "board.phone.reveal:callback", incident.reference) in rows
    assert (await trail.verify()).broken_at is None


async def test_the_live_stream_replays_missed_events_in_order_once(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    await sign_in(client, "somchai")
    storage = services_of(client).storage
    start = await storage.board.last()
    first = await phitsanulok_report(client)
    await report(services_of(client), "web:far", *GULF_OF_THAILAND)  # no area of ours
    response = await client.get(f"/board/events?after={start}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    seen: list[tuple[int, str]] = []

    async def read() -> None:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
                seen.append((data["seq"], data["reference"]))
                assert "phone" not in line and "+66" not in line
                if data["kind"] == "reported":
                    return

    await asyncio.wait_for(read(), 10)
    response.close()
    assert seen and all(ref == first.reference for _, ref in seen)
    assert [s for s, _ in seen] == sorted({s for s, _ in seen})
    # A reconnect with Last-Event-ID gets only what came after it.
    last = seen[-1][0]
    second = await report(services_of(client), "web:reporter-2")
    response = await client.get("/board/events", headers={"Last-Event-ID": str(last)})
    again: list[int] = []
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
        if line.startswith("data: "):
            data = json.loads(line[6:])
            again.append(data["seq"])
            if data["reference"] == second.reference:
                break
    response.close()
    assert again[0] == last + 1 and again == sorted(set(again))


async def test_a_report_committed_by_this_process_wakes_the_feed_at_once(
        client: TestClient[Any, Any]) -> None:
    """SQLite has no NOTIFY: the feed is woken by its own process's commits, so a viewer does
    not wait for the poll (here an hour, so only the wake-up can deliver in time)."""
    storage = services_of(client).storage
    feed = Feed(storage, interval=3600)
    await feed.start()
    try:
        await asyncio.sleep(0)  # the reader's first pass: nobody watching yet
        changes = feed.follow(("TH",), None)
        first = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0)  # the follower registers its queue before its first wait
        assert feed.viewers
        incident = await phitsanulok_report(client)
        batch = await asyncio.wait_for(first, 10)
        assert batch[0].event.incident_id == incident.id
        await changes.aclose()
    finally:
        await feed.stop()


# -- attacks: each a clear 4xx, and nothing changed -------------------------------------------

async def status_after(client: TestClient[Any, Any], incident: Incident) -> str:
    stored = await services_of(client).storage.incidents.get(incident.reference)
    assert stored is not None
    return stored.status


async def test_forged_or_missing_csrf_is_refused(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    before = await status_after(client, incident)
    for data in ({"action": "acknowledge"}, {"csrf": "0" * 64, "action": "acknowledge"}):
        response = await client.post(f"/board/i/{incident.reference}/act", data=data)
        assert response.status == 403
        assert "did not come from the board" in await response.text()
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"action": "acknowledge", "csrf": "x"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert await status_after(client, incident) == before


async def test_another_areas_reference_is_refused_for_every_action(
        client: TestClient[Any, Any]) -> None:
    await add(client, CHIANG_MAI)
    incident = await phitsanulok_report(client)
    await sign_in(client, "anong")
    _, html = await page(client, "/board")
    token = csrf_of(html)
    for path, data in ((f"/board/i/{incident.reference}/act", {"action": "acknowledge"}),
                       (f"/board/i/{incident.reference}/reveal", {"reason": "callback"}),
                       (f"/board/i/{incident.reference}/relay", {"text": "hi"})):
        response = await client.post(path, data={**data, "csrf": token})
        assert response.status == 404
        assert "+66" not in await response.text()
    assert await status_after(client, incident) in ("new", "dispatched")


async def test_a_disabled_accounts_cookie_opens_nothing(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    await services_of(client).storage.staff.disable("somchai")
    status, _ = await page(client, f"/board/i/{incident.reference}")
    assert status == 401
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": csrf_of(html), "action": "acknowledge"})
    assert response.status == 401
    assert (await client.get("/board/events")).status == 401
    assert (await sign_in(client, "somchai")).status == 401
    assert await status_after(client, incident) in ("new", "dispatched")


async def test_a_tampered_or_replayed_cookie_opens_nothing(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    response = await sign_in(client, "somchai")
    token = response.cookies["ess_board"].value
    client.session.cookie_jar.clear()
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for value in (tampered, "x" * 500, ""):
        client.session.cookie_jar.update_cookies({"ess_board": value})
        assert (await client.get("/board", allow_redirects=False)).status == 303
    # Signed out: the same cookie, replayed, is dead.
    client.session.cookie_jar.update_cookies({"ess_board": token})
    _, html = await page(client, "/board")
    await client.post("/board/logout", data={"csrf": csrf_of(html)}, allow_redirects=False)
    client.session.cookie_jar.update_cookies({"ess_board": token})
    assert (await client.get("/board", allow_redirects=False)).status == 303


async def test_brute_force_is_locked_out_without_telling_which_logins_exist(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    # The password is checked before the code, so a wrong one uses no code: waiting for a
    # fresh step per attempt (fresh_code) cost this test 70 s of TOTP steps.
    current = totp.code_at(SECRETS["somchai"], totp.step_of(utcnow()))
    wrong = [await sign_in(client, "somchai", "wrong password!", current) for _ in range(5)]
    assert {r.status for r in wrong} == {401}
    unknown = await sign_in(client, "nobody-here", "wrong password!")
    assert unknown.status == 401
    assert "The login or the password is wrong" in await wrong[0].text()
    assert (await wrong[0].text()).count("wrong") == (await unknown.text()).count("wrong")
    locked = await sign_in(client, "somchai")  # even the right password, now
    assert locked.status == 429 and "locked for 15 minutes" in await locked.text()
    assert "Set-Cookie" not in locked.headers


async def test_a_megabyte_form_is_refused(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": csrf_of(html), "action": "note",
                                       "detail": "x" * 1_000_000})
    assert response.status == 413
    assert "too much text" in await response.text()
    stored = await services_of(client).storage.incidents.get(incident.reference)
    assert stored is not None and not stored.details.get("notes")


async def test_html_in_a_note_is_shown_as_text(client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    token = csrf_of(html)
    await client.post(f"/board/i/{incident.reference}/act",
                      data={"csrf": token, "action": "acknowledge", "event": "a"})
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": token, "action": "note", "detail": evil,
                                       "event": "b"})
    text = await response.text()
    assert response.status == 200
    assert evil not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_boards_words_are_complete_in_thai_and_english() -> None:
    from channels.board.words import board_catalogs

    catalogs = board_catalogs()
    assert [lang.code for lang in catalogs.languages] == ["th", "en"]
    assert catalogs.missing() == {}


async def test_metrics_have_the_response_histograms_and_the_viewer_count(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "somchai")
    _, html = await page(client, f"/board/i/{incident.reference}")
    await client.post(f"/board/i/{incident.reference}/act",
                      data={"csrf": csrf_of(html), "action": "acknowledge", "event": "m"})
    stream = await client.get("/board/events")
    text = await (await client.get("/metrics")).text()
    stream.close()
    for name in ("ess_report_to_first_ack_seconds_count", "ess_report_to_first_card_seconds",
                 "ess_outbox_age_seconds", "ess_webhook_answer_seconds",
                 "ess_board_event_to_viewer_seconds", "ess_board_viewers"):
        assert name in text, name
    viewers = next(line for line in text.splitlines() if line.startswith("ess_board_viewers "))
    assert float(viewers.split()[1]) >= 1


async def test_an_analyst_reads_but_cannot_act(client: TestClient[Any, Any]) -> None:
    await add(client, StaffMember("nok", "Nok", "en", ("analyst",), ("65",)))
    incident = await phitsanulok_report(client)
    await sign_in(client, "nok")
    status, html = await page(client, f"/board/i/{incident.reference}")
    assert status == 200 and 'value="acknowledge"' not in html
    response = await client.post(f"/board/i/{incident.reference}/act",
                                 data={"csrf": csrf_of(html), "action": "acknowledge"})
    assert response.status == 403 and "reads the board only" in await response.text()
    assert await status_after(client, incident) in ("new", "dispatched")
