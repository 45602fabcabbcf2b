"""A staff member's agencies scope the board in the store's reads, not only in the page:
an incident of their own area dispatched to other agencies is not in their list, their live
stream, their incident pages or their export; the same incident is in another agency's."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp.test_utils import TestClient

from bot.incident import dispatched_agencies
from bot.staff import StaffMember
from tests.test_board import add, client, page, phitsanulok_report, services_of, sign_in

__all__ = ["client"]  # the fixture

# Both of Phitsanulok (65); a report there is dispatched to the police, the station, the
# shelter and welfare (the shipped directory), never to education.
EDUCATION = StaffMember("kanya", "Kanya T.", "en", ("supervisor",), ("65",), ("education",))
WELFARE = StaffMember("wanida", "Wanida S.", "en", ("supervisor",), ("65",), ("welfare",))
ALL_AGENCIES = StaffMember("preecha", "Preecha S.", "en", ("supervisor",), ("65",))


async def streamed(client: TestClient[Any, Any], after: int, seconds: float) -> list[str]:
    """The references the live stream replays after `after` within `seconds`."""
    response = await client.get(f"/board/events?after={after}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    seen: list[str] = []

    async def read() -> None:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:])["reference"])

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), seconds)
    response.close()
    return seen


async def test_another_agencys_incident_of_my_area_is_not_mine(
        client: TestClient[Any, Any]) -> None:
    for member in (EDUCATION, WELFARE, ALL_AGENCIES):
        await add(client, member)
    start = await services_of(client).storage.board.last()
    incident = await phitsanulok_report(client)
    assert "education" not in dispatched_agencies(incident.details)
    assert "welfare" in dispatched_agencies(incident.details)

    seen: dict[str, dict[str, Any]] = {}
    for member in (WELFARE, ALL_AGENCIES, EDUCATION):
        client.session.cookie_jar.clear()
        assert (await sign_in(client, member.login)).status == 303
        listed = await page(client, "/board")
        shown = await page(client, f"/board/i/{incident.reference}")
        export = await client.get("/board/export.csv")
        assert export.status == 200
        # The agency's own stream replays until it has the report; the others' are given
        # as long (what they do not get, they never get).
        stream = await streamed(client, start, 3.0)
        seen[member.login] = {"list": incident.reference in listed[1], "page": shown[0],
                              "export": incident.reference in await export.text(),
                              "stream": incident.reference in stream}
    assert seen["wanida"] == {"list": True, "page": 200, "export": True, "stream": True}
    assert seen["preecha"] == seen["wanida"]  # no agencies: every agency of the areas
    assert seen["kanya"] == {"list": False, "page": 404, "export": False, "stream": False}
    # Not even by its reference, for an action.
    client.session.cookie_jar.clear()
    await sign_in(client, EDUCATION.login)
    status, html = await page(client, "/board")
    assert status == 200
    token = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    timeline = services_of(client).storage.incidents.timeline
    before = len(await timeline(incident.id))
    acted = await client.post(f"/board/i/{incident.reference}/act", allow_redirects=False,
                              data={"csrf": token, "action": "ack"},
                              headers={"Origin": str(client.make_url("")).rstrip("/")})
    assert acted.status == 404
    assert not [e for e in (await timeline(incident.id))[before:] if e.channel == "board"]
