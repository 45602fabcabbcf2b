"""The board log records the agencies each event was visible to, with the event: an agency
told later (an escalation adds the 191 centre) sees the incident from then on, in its live
stream and in its replay, but never the events from before it was told."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import aiosqlite
from aiohttp.test_utils import TestClient

from bot.incident import Incident, dispatched_agencies
from bot.services import Services
from bot.staff import StaffMember
from channels.board.live import Feed
from tests.test_board import add, client, phitsanulok_report, services_of, sign_in

__all__ = ["client"]  # the fixture

# All of Phitsanulok (65): a report there goes to the police, the station, the shelter and
# welfare at level 0; the escalation to level 1 adds the 191 centre (the shipped directory).
WELFARE = StaffMember("wanida", "Wanida S.", "en", ("supervisor",), ("65",), ("welfare",))
CENTRE_191 = StaffMember("boon", "Boonmee K.", "en", ("supervisor",), ("65",), ("191",))
ALL_AGENCIES = StaffMember("preecha", "Preecha S.", "en", ("supervisor",), ("65",))


async def escalate(services: Services, incident: Incident) -> Incident:
    """The real escalation: the level-0 card is delivered, its timer falls due and fires."""
    cards = [n for n in await services.storage.outbox.for_incident(incident.id)
             if n.kind == "incident.new"]
    await services.responders.delivered(cards[0])
    stored = await services.storage.incidents.get(incident.reference)
    assert stored is not None
    due = stored.created_at + timedelta(seconds=services.settings.escalate_after + 3600)
    timers = [t for t in await services.storage.timers.claim_due("test", due, 10, 30)
              if t.kind == "escalate" and t.subject == incident.id]
    assert len(timers) == 1
    assert await services.responders.fire(timers[0]) == "escalated"
    escalated = await services.storage.incidents.get(incident.reference)
    assert escalated is not None
    return escalated


async def stream_of(client: TestClient[Any, Any], after: int,
                    seconds: float) -> list[tuple[int, str]]:
    """(seq, kind) of every event the HTTP stream replays after `after` within `seconds`."""
    response = await client.get(f"/board/events?after={after}")
    assert response.status == 200
    seen: list[tuple[int, str]] = []

    async def read() -> None:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
                seen.append((data["seq"], data["kind"]))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), seconds)
    response.close()
    return seen


async def test_an_agency_told_by_the_escalation_does_not_see_what_came_before(
        client: TestClient[Any, Any]) -> None:
    services = services_of(client)
    for member in (WELFARE, CENTRE_191, ALL_AGENCIES):
        await add(client, member)
    start = await services.storage.board.last()
    incident = await phitsanulok_report(client)
    assert "welfare" in dispatched_agencies(incident.details)
    assert "191" not in dispatched_agencies(incident.details)
    before = [e.seq for e in await services.storage.board.after(start)]
    assert before  # e1 and what else the report wrote, all before 191 was told
    escalated = await escalate(services, incident)
    assert "191" in dispatched_agencies(escalated.details)
    events = await services.storage.board.after(start)
    e2 = [e for e in events if e.kind == "escalated"]
    assert len(e2) == 1 and e2[0].agencies is not None and "191" in e2[0].agencies
    assert all(e.agencies is not None and "191" not in e.agencies for e in events
               if e.seq in before)
    # The app's dispatcher goes on delivering the new cards meanwhile: compare up to here.
    cut = events[-1].seq
    everything = [(e.seq, e.kind) for e in events]
    from_e2 = [(e.seq, e.kind) for e in events if e.seq >= e2[0].seq]

    async def streamed(client: TestClient[Any, Any], after: int,
                       seconds: float) -> list[tuple[int, str]]:
        return [e for e in await stream_of(client, after, seconds) if e[0] <= cut]

    seen: dict[str, list[tuple[int, str]]] = {}
    for member in (WELFARE, CENTRE_191, ALL_AGENCIES):
        client.session.cookie_jar.clear()
        assert (await sign_in(client, member.login)).status == 303
        seen[member.login] = await streamed(client, start, 3.0)
    assert seen["wanida"] == everything  # told from the start: e1 and e2
    assert seen["preecha"] == everything  # no agencies: every agency of the areas
    assert seen["boon"] == from_e2  # e2 and later, never e1

    # A row written before the log recorded agencies falls back to the incident as it
    # stands now (what the stream did before).
    async with aiosqlite.connect(services.settings.sqlite_path) as db:
        await db.execute("UPDATE board_events SET agencies = NULL")
        await db.commit()
    assert all(e.agencies is None for e in await services.storage.board.after(start))
    assert await streamed(client, start, 3.0) == everything


async def test_live_and_replayed_events_follow_the_recorded_agencies(
        client: TestClient[Any, Any]) -> None:
    # The same rule through the feed's live path (a viewer connected before the report) as
    # through its replay; and the national centre sees everything.
    services = services_of(client)
    feed = Feed(services.storage, interval=0.05)
    await feed.start()
    try:
        start = await services.storage.board.last()
        got: dict[str, list[int]] = {"191": [], "welfare": [], "TH": []}

        async def watch(name: str, areas: tuple[str, ...], agencies: tuple[str, ...]) -> None:
            async for batch in feed.follow(areas, None, agencies):
                got[name] += [c.event.seq for c in batch]

        tasks = [asyncio.create_task(watch("191", ("65",), ("191",))),
                 asyncio.create_task(watch("welfare", ("65",), ("welfare",))),
                 asyncio.create_task(watch("TH", ("TH",), ("191",)))]
        await asyncio.sleep(0.2)  # connected
        incident = await phitsanulok_report(client)
        await escalate(services, incident)
        events = await services.storage.board.after(start)
        e2 = next(e.seq for e in events if e.kind == "escalated")
        cut = events[-1].seq  # the app's dispatcher goes on delivering: compare up to here
        everything = [e.seq for e in events]

        def upto(seqs: list[int]) -> list[int]:
            return [s for s in seqs if s <= cut]

        for _ in range(200):
            if upto(got["welfare"]) == everything and upto(got["TH"]) == everything:
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        assert upto(got["welfare"]) == everything and upto(got["TH"]) == everything
        assert upto(got["191"]) == [s for s in everything if s >= e2]
        replayed: list[int] = []

        async def replay() -> None:
            async for batch in feed.follow(("65",), start, ("191",)):
                replayed.extend(c.event.seq for c in batch)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(replay(), 1.0)
        assert upto(replayed) == upto(got["191"])
    finally:
        await feed.stop()
