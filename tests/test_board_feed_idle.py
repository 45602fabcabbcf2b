"""The board's reader does no work while nobody watches (each report's wake-up would
otherwise cost a query on the report path), and the first viewer to connect misses nothing:
on SQLite, PostgreSQL (NOTIFY) and PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from bot.incident import TimelineEvent
from channels.board.live import Feed
from storage.ports import Storage
from tests import test_storage_contract as contract
from tests.test_storage_contract import incident

backend_settings, store = contract.backend_settings, contract.store


def counted(store: Storage) -> list[str]:
    """The board log's reads, counted as they pass through to the real store."""
    calls: list[str] = []
    board: Any = store.board
    for name in ("after", "last"):
        real: Callable[..., Awaitable[Any]] = getattr(board, name)

        def through(*args: Any, _real: Callable[..., Awaitable[Any]] = real,
                    _name: str = name, **kwargs: Any) -> Awaitable[Any]:
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(board, name, through)
    return calls


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)


async def test_no_viewer_no_read_and_the_first_viewer_misses_nothing(store: Storage) -> None:
    start = await store.board.last()
    calls = counted(store)
    feed = Feed(store, interval=0.05)
    await feed.start()
    try:
        for n in range(3):
            await store.incidents.create(incident(f"t:idle{n}"), [],
                                         TimelineEvent("reported", "r", "sms"))
        await asyncio.sleep(0.5)  # woken by each append, and polled ten times
        assert calls == []  # nobody watches: not one query

        # The first viewer, live only (no number): every event from its connection on.
        got: list[int] = []

        async def watch() -> None:
            async for batch in feed.follow(("TH-65",), None):
                got.extend(c.event.seq for c in batch)

        task = asyncio.create_task(watch())
        await until(lambda: feed.following)
        made = incident("t:live")
        await store.incidents.create(made, [], TimelineEvent("reported", "r", "sms"))
        await until(lambda: bool(got))
        events = await store.board.after(start)
        assert got == [events[-1].seq] and events[-1].reference == made.reference

        # A viewer reconnecting with its number gets everything it missed, once, in order.
        replayed: list[int] = []

        async def replay() -> None:
            async for batch in feed.follow(("TH-65",), start):
                replayed.extend(c.event.seq for c in batch)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(replay(), 1.0)
        assert replayed == [e.seq for e in events]

        # Everyone leaves: the reader stops reading again.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        assert not feed.viewers and not feed.following
        calls.clear()
        await store.incidents.create(incident("t:idle-again"), [],
                                     TimelineEvent("reported", "r", "sms"))
        await asyncio.sleep(0.3)
        assert calls == []
    finally:
        await feed.stop()


async def test_a_first_viewer_replaying_while_reports_arrive_gets_each_once(
        store: Storage) -> None:
    # Reports keep arriving while the first viewer connects and replays: none is lost
    # between its replay and the live events, none comes twice.
    start = await store.board.last()
    feed = Feed(store, interval=0.05)
    await feed.start()
    stop = asyncio.Event()

    async def reports() -> None:
        n = 0
        while not stop.is_set():
            await store.incidents.create(incident(f"t:burst{n}"), [],
                                         TimelineEvent("reported", "r", "sms"))
            n += 1
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(reports())
    got: list[int] = []
    try:
        await asyncio.sleep(0.1)

        async def watch() -> None:
            async for batch in feed.follow(("TH-65",), start):
                got.extend(c.event.seq for c in batch)

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        stop.set()
        await writer
        last = await store.board.last()
        await until(lambda: bool(got) and got[-1] == last)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert got == list(range(start + 1, last + 1))
    finally:
        stop.set()
        await feed.stop()
