"""The board's fan-out over the real HTTP stream: a viewer that stops reading is cut off
(its memory bounded) without holding the others back, and every viewer gets exactly the
events of its own scope and in its own language, whatever else shares the process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.app import CHANNELS
from bot.incident import Incident, TimelineEvent
from bot.staff import BoardEvent, StaffMember, agencies_in_scope, in_scope
from channels.board import BoardChannel, wire
from channels.board.live import Change, Feed, Scope
from tests.test_board import add, client, services_of, sign_in
from tests.test_storage_contract import incident

__all__ = ["client"]  # the fixture


def feed_of(client: TestClient[Any, Any]) -> Feed:
    board = client.server.app[CHANNELS].get("board")
    assert isinstance(board, BoardChannel)
    return board.feed


async def until(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def cookie_of(client: TestClient[Any, Any], member: StaffMember) -> str:
    await add(client, member)
    client.session.cookie_jar.clear()
    signed = await sign_in(client, member.login)
    assert signed.status == 303
    client.session.cookie_jar.clear()
    return signed.cookies["ess_board"].value


async def stream(client: TestClient[Any, Any], cookie: str) -> ClientResponse:
    response = await client.session.get(client.make_url("/board/events"),
                                        headers={"Cookie": f"ess_board={cookie}"})
    assert response.status == 200
    return response


async def collect(response: ClientResponse, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        async for raw in response.content:
            line = raw.decode()
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))


async def report(client: TestClient[Any, Any], n: int, area: str = "65") -> Incident:
    """An incident stored by the real store (its log row written by the real trigger)."""
    made = replace(incident(f"t:fan{area}-{n}"), area_codes=[area])
    await services_of(client).storage.incidents.create(
        made, [], TimelineEvent("reported", "r", "sms"))
    return made


async def test_a_stuck_viewer_is_cut_off_and_does_not_hold_the_others_back(
        client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "LIMIT", 8 * 1024)  # a small bound: a test need not send MBs
    cookie = await cookie_of(client, StaffMember("wit", "Wit", "en", ("responder",), ("65",)))
    feed = feed_of(client)

    # The stuck viewer: a browser tab that stops reading after the first bytes, with small
    # socket buffers at both ends so the backlog reaches the server's bound soon.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    loop = asyncio.get_running_loop()
    assert client.port is not None
    await loop.sock_connect(stuck, ("127.0.0.1", client.port))
    await loop.sock_sendall(stuck, (
        f"GET /board/events HTTP/1.1\r\nHost: 127.0.0.1:{client.port}\r\n"
        f"Cookie: ess_board={cookie}\r\n\r\n").encode())
    head = await loop.sock_recv(stuck, 4096)
    assert head.startswith(b"HTTP/1.1 200")
    assert await until(lambda: len(feed.viewers) == 1)
    (lagging,) = feed.viewers
    assert isinstance(lagging.sink, wire.Wire)
    server_side = lagging.sink.transport.get_extra_info("socket")
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    got: list[dict[str, Any]] = []
    healthy = asyncio.create_task(collect(await stream(client, cookie), got))
    try:
        assert await until(lambda: len(feed.viewers) == 2 and all(
            v.live for v in feed.viewers))
        made = [await report(client, n) for n in range(120)]
        references = {m.reference for m in made}

        # The reader did not wait for the stuck socket: the healthy viewer has everything.
        assert await until(lambda: references <= {e["reference"] for e in got})
        # The stuck one was dropped by the fan-out (not kept until some queue filled), its
        # connection aborted, and nothing more is buffered for it.
        assert await until(lambda: lagging not in feed.viewers)
        assert lagging.sink.slow and lagging.sink.transport.is_closing()
        assert lagging.sink.transport.get_write_buffer_size() == 0
        assert len(feed.viewers) == 1
        received = len(head)
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(loop.sock_recv(stuck, 65536), 10):
                received += len(chunk)
        # Everything that reached it is what the kernel held plus the bound: not the lot.
        assert received < sum(len(json.dumps(e)) for e in got)
    finally:
        healthy.cancel()
        await healthy
        stuck.close()


async def test_every_viewer_gets_its_own_scope_and_language_only(
        client: TestClient[Any, Any]) -> None:
    viewers = {
        "phitsanulok": StaffMember("p1", "P", "en", ("responder",), ("65",)),
        "phitsanulok-th": StaffMember("p2", "P", "th", ("responder",), ("65",)),
        # Agencies on the account: these undispatched incidents are none of theirs.
        "police-65": StaffMember("p3", "P", "en", ("responder",), ("65",), ("police",)),
        "chiang-mai": StaffMember("c1", "C", "en", ("responder",), ("50",)),
        "both": StaffMember("b1", "B", "en", ("responder",), ("50", "65")),
        "national": StaffMember("n1", "N", "en", ("responder",), ("TH",), ("police",)),
    }
    cookies = {name: await cookie_of(client, m) for name, m in viewers.items()}
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in viewers}
    tasks = [asyncio.create_task(collect(await stream(client, cookies[name]), got[name]))
             for name in viewers]
    feed = feed_of(client)
    try:
        assert await until(lambda: len(feed.viewers) == len(viewers)
                           and all(v.live for v in feed.viewers))
        in_65 = {(await report(client, n, "65")).reference for n in range(3)}
        in_50 = {(await report(client, n, "50")).reference for n in range(2)}
        expected = {"phitsanulok": in_65, "phitsanulok-th": in_65, "police-65": set(),
                    "chiang-mai": in_50, "both": in_65 | in_50, "national": in_65 | in_50}
        assert await until(lambda: all(
            {e["reference"] for e in got[name]} >= refs for name, refs in expected.items()))
        await asyncio.sleep(0.5)  # anything out of scope would have come with the rest
        for name, refs in expected.items():
            assert [e["reference"] for e in got[name]] == [
                e["reference"] for e in got["national"] if e["reference"] in refs], name
        # The same events in each viewer's language, rendered for it, never another's.
        thai = got["phitsanulok-th"][0]["row"]["status_label"]
        english = got["phitsanulok"][0]["row"]["status_label"]
        assert thai != english and all(
            e["row"]["status_label"] == english for e in got["both"]
            if e["row"]["status"] == got["phitsanulok"][0]["row"]["status"])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks)


async def test_a_burst_goes_out_in_few_batches_and_a_lone_event_at_once(
        client: TestClient[Any, Any]) -> None:
    # Under a burst every commit wakes the reader; it reads at most once per `gap`, so the
    # burst reaches each viewer in a few batches (a few writes per viewer, not one per event),
    # while an event after a quiet spell is read as soon as it wakes the reader.
    cookie = await cookie_of(client, StaffMember("gap", "G", "en", ("responder",), ("65",)))
    feed = feed_of(client)
    feed.interval, feed.gap = 3600.0, 2.0  # no polls: only the wakes below read
    board: Any = services_of(client).storage.board
    real_after, reads = board.after, [0]

    async def after(*args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return await real_after(*args, **kwargs)

    board.after = after
    got: list[dict[str, Any]] = []
    task = asyncio.create_task(collect(await stream(client, cookie), got))
    loop = asyncio.get_running_loop()
    try:
        assert await until(lambda: len(feed.viewers) == 1 and all(
            v.live for v in feed.viewers))
        # Quiet for longer than the gap since the reader's last read: the one the viewer's
        # connection woke (at most a gap after the one before) and the pending poll of the
        # old interval are both over by then.
        await asyncio.sleep(2 * feed.gap + 0.8)
        began = loop.time()
        lone = await report(client, 0)
        feed.poke()
        assert await until(lambda: any(e["reference"] == lone.reference for e in got))
        assert loop.time() - began < feed.gap - 0.8  # not held back for a gap

        reads[0] = 0
        burst = []
        for n in range(1, 21):
            burst.append((await report(client, n)).reference)
            feed.poke()  # what this process does after each change it makes
        assert await until(lambda: len(got) == 21)
        assert [e["reference"] for e in got] == [lone.reference, *burst]  # in order, once
        # Without the gap: a read for each of the 20 wakes, and one more finding nothing.
        assert reads[0] <= 6, reads[0]
    finally:
        task.cancel()
        await task


def test_the_precomputed_scope_is_the_stores_rule() -> None:
    # Every combination of a viewer's areas and agencies against an event's: the fan-out's
    # two set tests decide exactly as `in_scope` and `agencies_in_scope` (the stores' rule).
    areas = [(), ("65",), ("50",), ("65", "50"), ("TH",), ("TH", "65")]
    agencies = [(), ("police",), ("welfare",), ("police", "191")]
    event_areas = [(), ("65",), ("6501", "65"), ("50",)]
    told: list[tuple[str, ...] | None] = [None, (), ("police",), ("welfare", "shelter")]
    checked = 0
    for mine, ours, theirs, dispatched in itertools.product(areas, agencies, event_areas, told):
        event = BoardEvent(1, "i", "R", "reported", "new", theirs, incident().created_at,
                           dispatched)
        change = Change.of(event, None)
        rule = in_scope(mine, theirs) and agencies_in_scope(mine, ours, dispatched or ())
        assert Scope.of(mine, ours).sees(change) == rule, (mine, ours, theirs, dispatched)
        checked += 1
    assert checked == 384
    assert Scope.of(("TH", "65"), ("police",)) == Scope.of(("TH",))  # one national audience
