"""The board across two `ess serve` processes on one PostgreSQL and one Redis.

A viewer connected to one process sees what a staff member does on the other (the session
is shared too: the same cookie works on both); a viewer that disconnects while things happen
gets every missed event on reconnect (`Last-Event-ID`), in order, once.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from channels.board.auth import hash_password
from tests.test_multiprocess import running_cluster

PASSWORD = "correct horse battery"
PHITSANULOK = [16.8211, 100.2659]


async def add_staff(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "INSERT INTO staff (login, name, lang, roles, areas, agencies, disabled, "
            "created_at, password) VALUES ('somchai', 'Somchai P.', 'en', '[\"responder\"]', "
            "'[\"65\"]', '[]', false, now(), $1)", hash_password(PASSWORD))
    finally:
        await conn.close()


async def report(http: aiohttp.ClientSession, url: str, sender: str) -> str:
    steps = [("start", None), ("choice", "threat"), ("location", PHITSANULOK),
             ("text", "0812345678"), ("choice", "send")]
    reference = ""
    for n, (kind, payload) in enumerate(steps):
        async with http.post(f"{url}/_test/inbound", json={
                "sender": sender, "kind": kind, "payload": payload,
                "event_id": f"{sender}-{n}"}) as resp:
            body = await resp.json()
        reference = next((r["reference"] for r in body["replies"] if r["reference"]),
                         reference)
    assert reference.startswith("ESS-")
    return reference


async def events(response: aiohttp.ClientResponse, until: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if until(seen[-1]):
                    return

    await asyncio.wait_for(read(), 20)
    return seen


async def act(http: aiohttp.ClientSession, url: str, reference: str, **form: str) -> None:
    async with http.get(f"{url}/board/i/{reference}") as resp:
        assert resp.status == 200
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await resp.text())
    assert csrf
    async with http.post(f"{url}/board/i/{reference}/act",
                         data={"csrf": csrf.group(1), **form}) as resp:
        assert resp.status == 200, await resp.text()


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_viewer_on_one_process_sees_actions_on_the_other_and_replays_what_it_missed(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    async with running_cluster(tmp_path, pg_url, redis_url) as cluster:
        a, b = (p.url for p in cluster.processes)
        await add_staff(pg_url)
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[a, b])
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.post(f"{b}/board/login", allow_redirects=False,
                                 data={"login": "somchai", "password": PASSWORD}) as resp:
                assert resp.status == 303
            stream = await http.get(f"{a}/board/events?after=0")  # signed in on b, viewing a
            assert stream.status == 200
            reference = await report(http, b, "mp-1")
            await act(http, b, reference, action="acknowledge", event="1")
            seen = await events(stream, lambda d: d["kind"] == "acknowledged")
            assert {d["reference"] for d in seen} == {reference}
            assert seen[0]["kind"] == "reported" and seen[-1]["row"]["holder"] == "Somchai P."
            last = seen[-1]["seq"]
            stream.close()

            # Away: things happen on the other process meanwhile.
            await act(http, b, reference, action="en_route", minutes="9", event="2")
            await act(http, b, reference, action="note", detail="gate code 1234", event="3")
            await act(http, b, reference, action="on_scene", event="4")
            await asyncio.sleep(2)
            again = await http.get(f"{a}/board/events", headers={"Last-Event-ID": str(last)})
            missed = await events(again, lambda d: d["kind"] == "on_scene")
            again.close()
            assert [d["kind"] for d in missed] == ["en_route", "note", "on_scene"]
            assert [d["seq"] for d in missed] == list(range(last + 1, last + 4))
            assert "gate code" not in json.dumps(missed)  # a note's text is not broadcast
