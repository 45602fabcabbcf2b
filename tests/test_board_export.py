"""The board's CSV export over HTTP: the filtered list for supervisors, admins and analysts
(a responder is refused), no phone number and no free text in it, every export audited with
its filter."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiosqlite
from aiohttp.test_utils import TestClient

from bot.staff import StaffMember
from channels.board.export import cell
from config.settings import Settings
from tests.test_board import PHITSANULOK, add, client, page, phitsanulok_report, sign_in

__all__ = ["client"]  # the fixture, shared with tests/test_board.py

ANALYST = StaffMember("nok", "Nok", "en", ("analyst",), ("65",))
RESPONDER = StaffMember("dao", "Dao", "en", ("responder",), ("65",))


def test_a_cell_a_spreadsheet_would_run_is_text() -> None:
    assert [cell(v) for v in ("=HYPERLINK(1)", "+1", "-2", "@x", "ok", None, 3)] == [
        "'=HYPERLINK(1)", "'+1", "'-2", "'@x", "ok", "", "3"]


async def test_the_export_is_the_filtered_list_without_personal_data_and_audited(
        client: TestClient[Any, Any], settings: Settings) -> None:
    await add(client, ANALYST)
    await add(client, PHITSANULOK)
    incident = await phitsanulok_report(client)
    await sign_in(client, "nok")
    _, board = await page(client, "/board?status=&type=threat")
    assert 'href="/board/export.csv?type=threat"' in board
    response = await client.get("/board/export.csv?type=threat&area=65")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    body = (await response.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["reference"] for r in rows] == [incident.reference]
    assert rows[0]["type"] == "threat" and rows[0]["areas"].split()[0] == "65"
    for spelling in ("+66812345678", "0812345678", "081-234-5678", "812345678",
                     str(incident.location.lat), str(round(incident.location.lat or 0, 3))):
        assert spelling not in body
    empty = await client.get("/board/export.csv?status=on_scene")
    assert list(csv.DictReader(io.StringIO((await empty.read()).decode("utf-8-sig")))) == []
    async with aiosqlite.connect(settings.sqlite_path) as db:
        audit = [tuple(r) for r in await db.execute_fetchall(
            "SELECT actor, action, reference FROM audit WHERE action LIKE 'board.export%'")]
    assert audit == [("staff:nok", "board.export:area=65&type=threat", "1 incidents"),
                     ("staff:nok", "board.export:status=on_scene", "0 incidents")]


async def test_a_responder_does_not_export(client: TestClient[Any, Any]) -> None:
    await add(client, RESPONDER)
    await sign_in(client, "dao")
    _, board = await page(client, "/board")
    assert "/board/export.csv" not in board
    response = await client.get("/board/export.csv")
    assert response.status == 403 and "does not export" in await response.text()
    client.session.cookie_jar.clear()
    assert (await client.get("/board/export.csv", allow_redirects=False)).status == 303
