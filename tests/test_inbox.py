"""The durable inbound path (bot.inbox): spool, replay, lease takeover, refusing with 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import CHANNELS, SERVICES
from bot.inbox import GIVE_UP_ATTEMPTS, Arrival, Inbox, InboxUnavailable, arrival_data, arrival_of
from bot.types import Inbound, Kind, Location, LocationSource, Reply, Text, utcnow
from config.settings import Settings
from storage.crypto import Sealer
from storage.factory import open_storage
from storage.ports import JournalEntry, Storage
from storage.spool import Spool
from tests import line_events as ev
from tests.helpers import settle_app
from tests.line_standin import LineStandIn
from tests.servers import PostgresServer, RedisServer

SEALER = Sealer([b"j" * 32])
PHONE = "+66812345678"


def sms(n: int, sender: str = PHONE) -> Arrival:
    return Arrival(Inbound("sms", sender, Kind.TEXT, f"generic:m{n}", f"message {n}"))


class Recorder:
    """The channel side: records each arrival it is handed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, arrival: Arrival) -> None:
        self.seen.append(arrival.inbound.event_id)


def inbox_for(storage: Storage, folder: Path, recorder: Recorder, lease: float = 30.0,
              lanes: int = 64) -> Inbox:
    inbox = Inbox.open(storage, folder, SEALER, lease_seconds=lease, lanes=lanes)
    inbox.handlers = {"sms": recorder}
    return inbox


def test_an_arrival_round_trips_through_its_stored_form() -> None:
    pin = Arrival(Inbound("line", "U1", Kind.LOCATION, "e1",
                          Location(16.8, 100.2, LocationSource.REPORTER_PIN, text="x"),
                          hints={"flow": "silent"}), {"replyToken": "t"})
    assert arrival_of(arrival_data(pin)) == pin
    text = sms(1)
    assert arrival_of(arrival_data(text)) == text


def test_the_spool_is_fsynced_0600_and_reads_back_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "var", SEALER)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    entries = [JournalEntry(f"id{n}", "sms", f"sms:{PHONE}", f"sms:generic:m{n}",
                            arrival_data(sms(n)), utcnow()) for n in range(3)]
    spool.write(entries[:2])
    spool.write(entries[2:])
    assert spool.path.stat().st_ino in synced  # on disk before write() returned
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    raw = spool.path.read_bytes()
    assert PHONE.encode()[3:] not in raw and b"message" not in raw  # sealed
    # A crash mid-write leaves a torn last line: it is skipped, the rest read back.
    with spool.path.open("ab") as fh:
        fh.write(b"dG9ybg")
    [path] = spool.take()
    assert not spool.path.exists() and spool.waiting()
    assert spool.read(path) == entries


async def test_refused_with_5xx_when_neither_store_nor_spool_can_keep_it(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "var"))
    storage = await open_storage(settings, SEALER)
    inbox = inbox_for(storage, tmp_path / "var", Recorder())
    await storage.close()  # the store is gone...
    (tmp_path / "var" / "inbound-spool.log").mkdir()  # ...and the spool cannot be written
    with pytest.raises(InboxUnavailable):
        await inbox.accept([sms(1)])


async def test_store_down_spools_then_replays_in_order_exactly_once(
        tmp_path: Path, own_servers: tuple[PostgresServer, RedisServer]) -> None:
    pg, _ = own_servers
    settings = Settings(data_dir=str(tmp_path / "var"), database_url=pg.new_database(),
                        store_timeout=1.0)
    storage = await open_storage(settings, SEALER)
    recorder = Recorder()
    inbox = inbox_for(storage, tmp_path / "var", recorder)
    try:
        await inbox.accept([sms(0)])
        pg.stop()
        await inbox.accept([sms(1), sms(2)])  # into the spool: answered 200 all the same
        assert (tmp_path / "var" / "inbound-spool.log").exists()
        pg.start()
        # Back up: still through the spool until it is replayed, so order holds.
        await inbox.accept([sms(3)])
        await inbox.settle()
        assert recorder.seen == ["generic:m0", "generic:m1", "generic:m2", "generic:m3"]
        assert not inbox.spool.waiting()
        await inbox.accept([sms(4)])
        await inbox.settle()
        assert recorder.seen[-1] == "generic:m4" and len(recorder.seen) == 5
        assert not inbox.spool.waiting()  # the store took it directly
    finally:
        await storage.close()


async def test_a_dead_owners_conversations_are_taken_over_after_the_lease(
        tmp_path: Path, pg_url: str) -> None:
    settings = Settings(data_dir=str(tmp_path / "var"), database_url=pg_url)
    storage = await open_storage(settings, SEALER)
    try:
        stuck = asyncio.Event()

        async def hangs(arrival: Arrival) -> None:
            stuck.set()
            await asyncio.Event().wait()  # a process frozen mid-handling

        first = inbox_for(storage, tmp_path / "a", Recorder(), lease=1.0, lanes=1)
        first.handlers = {"sms": hangs}
        recorder = Recorder()
        second = inbox_for(storage, tmp_path / "b", recorder, lease=1.0)
        await first.accept([sms(0), sms(1), sms(2, "+66899999999")])
        assert await first.drain_once() == 2  # the oldest conversation, both its events
        await asyncio.wait_for(stuck.wait(), 5)
        # The other conversation is free; the stuck one is not (yet).
        assert await second.drain_once() == 1
        await asyncio.wait(set(second._lanes), timeout=5)
        assert recorder.seen == ["generic:m2"]
        for task in list(first._lanes):  # the first process dies; its lease is not renewed
            task.cancel()
        await asyncio.sleep(1.1)
        await second.settle()
        assert recorder.seen == ["generic:m2", "generic:m0", "generic:m1"]  # in order
    finally:
        await storage.close()


async def test_the_line_webhook_spools_then_answers_503_when_nothing_can_keep_it(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]

    async def post() -> int:
        raw = ev.body(ev.follow(ev.user("U" + "e" * 32)))
        response = await line_client.post("/webhooks/line", data=raw,
                                          headers={"X-Line-Signature": ev.sign(raw)})
        return response.status

    await services.storage.close()  # the store is gone: the spool keeps the event
    assert await post() == 200
    spool = services.settings.data_path / "inbound-spool.log"
    assert spool.stat().st_size > 0
    spool.unlink()
    spool.mkdir()  # and now the spool cannot be written either: LINE must retry
    assert await post() == 503
    spool.rmdir()


async def test_a_line_event_replayed_after_its_reply_token_went_stale_is_pushed(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    """As after a restart: the webhook was answered a minute ago, the entry runs now."""
    services = line_client.app[SERVICES]
    me = ev.user("U" + "f" * 32)
    minute_ago = int((time.time() - 60) * 1000)
    for make in (lambda: ev.follow(me, timestamp=minute_ago),
                 lambda: ev.postback(me, "threat", timestamp=int(time.time() * 1000))):
        raw = ev.body(make())
        response = await line_client.post("/webhooks/line", data=raw,
                                          headers={"X-Line-Signature": ev.sign(raw)})
        assert response.status == 200
        await settle_app(line_client.app)
    greeting, location_step = line_api.ok()
    assert greeting.kind == "push" and greeting.headers.get("X-Line-Retry-Key")
    assert location_step.kind == "reply"  # a fresh token is still used
    assert await services.storage.journal.pending() == 0


async def one_attempt(app: Any) -> None:
    """Claim what is free and wait for its handling (the entry stays when it failed)."""
    inbox = app[SERVICES].inbox
    await app[CHANNELS].tasks.join()
    await inbox.drain_once()
    if inbox._lanes:
        await asyncio.wait(set(inbox._lanes), timeout=30)  # a guard


async def test_a_store_failure_while_handling_is_retried_not_answered_unavailable(
        line_client: TestClient[Any, Any], line_api: LineStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails under the engine (a PostgreSQL restart's dead connections): the entry
    stays in the journal and is handled when it comes back; only the last of the attempts
    would tell the person to try again."""
    services = line_client.app[SERVICES]
    sessions = services.storage.sessions
    load, failures = sessions.load, [0]

    async def dead_connection(conversation: str, event_key: str) -> Any:
        if failures[0] < GIVE_UP_ATTEMPTS - 1:
            failures[0] += 1
            raise ConnectionResetError("the connection was closed by the server")
        return await load(conversation, event_key)

    monkeypatch.setattr(sessions, "load", dead_connection)
    later = [utcnow()]
    services.inbox.clock = lambda: later[0]
    raw = ev.body(ev.follow(ev.user("U" + "a" * 32)))
    response = await line_client.post("/webhooks/line", data=raw,
                                      headers={"X-Line-Signature": ev.sign(raw)})
    assert response.status == 200
    for attempt in range(1, GIVE_UP_ATTEMPTS):
        await one_attempt(line_client.app)
        assert failures[0] == attempt and line_api.ok() == []  # nothing said yet
        assert await services.storage.journal.pending() == 1
        later[0] += timedelta(seconds=services.inbox.lease_seconds + 1)  # the lease runs out
    await settle_app(line_client.app)
    assert await services.storage.journal.pending() == 0
    (greeting,) = line_api.ok()
    texts = " ".join(m.get("text", "") for m in greeting.raw["messages"])
    assert "ESS Help Me" in texts
    unavailable = services.catalogs.render("th", Text("common.unavailable"))
    assert unavailable not in texts


async def test_the_last_attempt_tells_the_person_to_try_again(
        line_client: TestClient[Any, Any], line_api: LineStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = line_client.app[SERVICES]

    async def down(conversation: str, event_key: str) -> Any:
        raise ConnectionResetError("the connection was closed by the server")

    monkeypatch.setattr(services.storage.sessions, "load", down)
    later = [utcnow()]
    services.inbox.clock = lambda: later[0]
    raw = ev.body(ev.follow(ev.user("U" + "b" * 32)))
    response = await line_client.post("/webhooks/line", data=raw,
                                      headers={"X-Line-Signature": ev.sign(raw)})
    assert response.status == 200
    for _ in range(GIVE_UP_ATTEMPTS):
        await one_attempt(line_client.app)
        later[0] += timedelta(seconds=services.inbox.lease_seconds + 1)
    await settle_app(line_client.app)  # the next claim forgets the entry given up
    assert await services.storage.journal.pending() == 0
    (told,) = line_api.ok()
    assert told.raw["messages"][0]["text"] == services.catalogs.render(
        "th", Text("common.unavailable"))


async def test_a_lane_that_ends_with_nothing_new_is_followed_by_no_empty_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.inbox.POLL_SECONDS", 60.0)  # only wakes may claim here
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    claims: list[int] = []
    claim = storage.journal.claim

    async def counted(*args: Any, **kwargs: Any) -> list[JournalEntry]:
        entries = await claim(*args, **kwargs)
        claims.append(len(entries))
        return entries

    monkeypatch.setattr(storage.journal, "claim", counted)
    release = asyncio.Event()
    seen: list[str] = []
    blocking = {"generic:m1", "generic:m11", "generic:m5"}

    progressed = asyncio.Event()

    async def handler(arrival: Arrival) -> None:
        seen.append(arrival.inbound.event_id)
        progressed.set()
        if arrival.inbound.event_id in blocking:
            await release.wait()

    inbox = inbox_for(storage, tmp_path / "var", Recorder(), lanes=2)
    inbox.handlers = {"sms": handler}
    runner = asyncio.create_task(inbox.run())

    async def until(count: int) -> None:
        async with asyncio.timeout(10):
            while len(seen) < count:
                progressed.clear()
                await progressed.wait()
        await asyncio.sleep(0.2)  # room for a claim that should not come

    try:
        await inbox.accept([sms(0)])
        await until(1)
        assert claims == [0, 1]  # the start, the arrival; nothing after the lane
        # An event for a conversation in hand is claimed when its lane ends.
        await inbox.accept([sms(1)])
        await until(2)
        await inbox.accept([sms(2)])
        await asyncio.sleep(0.2)
        assert claims[-1] == 0 and len(seen) == 2  # its conversation is in hand
        release.set()
        await until(3)
        assert seen == ["generic:m0", "generic:m1", "generic:m2"]
        # A claim that filled every lane left one behind: it is claimed when a lane ends.
        release.clear()
        await inbox.accept([sms(11), sms(5, "+66855555555"), sms(3, "+66899999999")])
        await until(5)
        assert seen[3:] == ["generic:m11", "generic:m5"]
        release.set()
        await until(6)
        assert seen[5:] == ["generic:m3"]
    finally:
        release.set()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await storage.close()


async def test_a_responder_event_that_failed_is_handled_on_its_retry(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    """Responder events are deduplicated by the router before they are handled; a failure
    in the handling must not leave the event marked seen, or the journal's retry would be
    dropped as a duplicate and the responder's action lost after its 200."""
    services = line_client.app[SERVICES]
    calls: list[str] = []

    async def is_action(inbound: Inbound) -> bool:
        return inbound.text.startswith("act:")

    async def flaky(inbound: Inbound) -> list[Reply]:
        calls.append(inbound.event_id)
        if len(calls) == 1:
            raise ConnectionResetError("the connection was closed by the server")
        return [Reply(Text("dispatch.action.acknowledge"), "th")]

    services.inbound.add("flaky", is_action, flaky, before="responder")
    later = [utcnow()]
    services.inbox.clock = lambda: later[0]
    raw = ev.body(ev.postback(ev.group("C" + "d" * 32, "U" + "d" * 32), "act:ack:ESS-7K3F9"))
    response = await line_client.post("/webhooks/line", data=raw,
                                      headers={"X-Line-Signature": ev.sign(raw)})
    assert response.status == 200
    await one_attempt(line_client.app)
    assert len(calls) == 1 and await services.storage.journal.pending() == 1
    later[0] += timedelta(seconds=services.inbox.lease_seconds + 1)
    await settle_app(line_client.app)
    assert len(calls) == 2 and calls[0] == calls[1]  # the same event, handled this time
    assert await services.storage.journal.pending() == 0
    (told,) = line_api.ok()
    assert told.raw["messages"][0]["text"] == services.catalogs.render(
        "th", Text("dispatch.action.acknowledge"))


async def test_handled_entries_are_forgotten_by_the_next_claim_and_at_shutdown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A delete of its own per handled entry was one statement per step of every report.
    monkeypatch.setattr("bot.inbox.POLL_SECONDS", 60.0)  # only arrivals claim here
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    claim, done = storage.journal.claim, storage.journal.done
    carried: list[list[str]] = []
    alone: list[list[str]] = []

    async def claiming(*args: Any, handled: Any = (), **kwargs: Any) -> list[JournalEntry]:
        carried.append(list(handled))
        return await claim(*args, handled=handled, **kwargs)

    async def deleting(ids: Any, owner: str) -> int:
        alone.append(list(ids))
        return await done(ids, owner)

    monkeypatch.setattr(storage.journal, "claim", claiming)
    monkeypatch.setattr(storage.journal, "done", deleting)
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def handler(arrival: Arrival) -> None:
        arrived.put_nowait(arrival.inbound.event_id)

    inbox = inbox_for(storage, tmp_path / "var", Recorder())
    inbox.handlers = {"sms": handler}
    runner = asyncio.create_task(inbox.run())
    seen = []
    try:
        for n in range(3):
            await inbox.accept([sms(n)])
            async with asyncio.timeout(10):
                seen.append(await arrived.get())
                while inbox._lanes:
                    await asyncio.wait(set(inbox._lanes))
        # Each arrival's claim forgot the entry handled before it, in the same call.
        assert [len(ids) for ids in carried] == [0, 0, 1, 1]  # the start, then 3 arrivals
        assert alone == []
        assert await storage.journal.pending() == 1  # the last one, handled, not yet forgotten
        await inbox.stop(5.0)
        assert await storage.journal.pending() == 0  # shutdown forgot it
        assert seen == [f"generic:m{n}" for n in range(3)]
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await storage.close()


async def test_shutdown_forgets_what_a_lane_handled_after_the_last_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.inbox.POLL_SECONDS", 60.0)
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    claim, done = storage.journal.claim, storage.journal.done
    stop_claimed, entered, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    alone: list[int] = []

    async def claiming(*args: Any, **kwargs: Any) -> list[JournalEntry]:
        entries = await claim(*args, **kwargs)
        if inbox._stopping:
            stop_claimed.set()
        return entries

    async def deleting(ids: Any, owner: str) -> int:
        alone.append(len(ids))
        return await done(ids, owner)

    async def handler(arrival: Arrival) -> None:
        entered.set()
        await release.wait()

    monkeypatch.setattr(storage.journal, "claim", claiming)
    monkeypatch.setattr(storage.journal, "done", deleting)
    inbox = inbox_for(storage, tmp_path / "var", Recorder())
    inbox.handlers = {"sms": handler}
    runner = asyncio.create_task(inbox.run())
    try:
        await inbox.accept([sms(0)])
        async with asyncio.timeout(10):
            await entered.wait()
            stopping = asyncio.create_task(inbox.stop(5.0))
            await stop_claimed.wait()  # shutdown's last claim came before the lane ended
            release.set()
            await stopping
        assert alone == [1]  # no claim after it to carry it: forgotten on its own
        assert await storage.journal.pending() == 0
    finally:
        release.set()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await storage.close()


async def test_an_entry_whose_handling_failed_comes_back_while_the_process_stays_busy(
        tmp_path: Path) -> None:
    # Every lease of the owner used to be renewed while any lane ran: the failed entry, and
    # its conversation, stayed stuck for as long as another conversation kept a lane busy.
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    attempts: dict[str, int] = {}
    release, retried = asyncio.Event(), asyncio.Event()

    async def handler(arrival: Arrival) -> None:
        event_id = arrival.inbound.event_id
        attempts[event_id] = attempts.get(event_id, 0) + 1
        if event_id == "generic:m0":
            await release.wait()  # a conversation that keeps its lane busy
        elif attempts[event_id] == 1:
            raise ConnectionResetError("the connection was closed by the server")
        else:
            retried.set()

    inbox = inbox_for(storage, tmp_path / "var", Recorder(), lease=1.0)
    inbox.handlers = {"sms": handler}
    runner = asyncio.create_task(inbox.run())
    try:
        await inbox.accept([sms(0)])
        await inbox.accept([sms(1, "+66855555555")])
        async with asyncio.timeout(15):
            await retried.wait()
        assert not release.is_set() and inbox._lanes  # the busy lane still runs
        assert attempts["generic:m1"] == 2
    finally:
        release.set()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await storage.close()


async def test_shutdown_during_a_claim_still_handles_what_it_claimed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store has committed the claim when shutdown comes: cancelling the drainer there
    # would leave the entry leased to this process with no lane to handle it (CI, stop 21).
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    claim = storage.journal.claim
    claimed = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> list[JournalEntry]:
        entries = await claim(*args, **kwargs)
        if entries:
            claimed.set()
            await asyncio.sleep(0.3)  # the answer is still on its way back
        return entries

    monkeypatch.setattr(storage.journal, "claim", slow)
    recorder = Recorder()
    inbox = inbox_for(storage, tmp_path / "var", recorder)
    runner = asyncio.create_task(inbox.run())
    try:
        await inbox.accept([sms(0)])
        async with asyncio.timeout(10):
            await claimed.wait()
        await inbox.stop(5.0)
        assert recorder.seen == ["generic:m0"]
        assert await storage.journal.pending() == 0
        assert runner.done()  # it ended between claims, not cancelled
        assert not runner.cancelled()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await storage.close()


async def test_shutdown_with_every_lane_stuck_ends_in_its_drain_time(tmp_path: Path) -> None:
    # A handler that never returns (a channel's call hanging) holds the only lane: stop()
    # must give up on it at its deadline, not wait for a free lane without one.
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), SEALER)
    handling = asyncio.Event()

    async def stuck(arrival: Arrival) -> None:
        handling.set()
        await asyncio.Event().wait()

    inbox = Inbox.open(storage, tmp_path / "var", SEALER, lanes=1)
    inbox.handlers = {"sms": stuck}
    try:
        await inbox.accept([sms(0, "+66811111111"), sms(1, "+66822222222")])
        assert await inbox.drain_once() == 1  # the only lane, taken
        async with asyncio.timeout(10):
            await handling.wait()
            await inbox.stop(0.3)
        assert not inbox._lanes
        # Nothing lost: both stay in the journal for whoever claims after the lease.
        assert await storage.journal.pending() == 2
    finally:
        await storage.close()
