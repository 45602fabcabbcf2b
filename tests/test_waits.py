"""bot.waits: a background loop cancelled at shutdown ends, whatever it was waiting for."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from bot.sweeper import Sweeper
from bot.waits import cancel_and_wait, woken
from config.settings import Settings
from storage.crypto import Sealer
from storage.factory import open_storage


async def test_set_timeout_and_already_set() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 10) is True
    event.clear()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await woken(event, 10) is True


@pytest.mark.parametrize("ticks", range(6))
async def test_a_cancel_in_the_tick_of_a_wake_ends_the_loop(ticks: int) -> None:
    # The shape of the dispatcher's and the drainers' loops. With asyncio.wait_for on 3.11
    # one of these tick offsets lost the cancel and the loop (and the shutdown) went on
    # forever (https://github.com/python/cpython/issues/86296).
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            event.clear()
            await woken(event, 30)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    event.set()
    for _ in range(ticks):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_a_cancel_while_a_child_winds_down_reaches_the_caller() -> None:
    # The dispatcher, cancelled at shutdown while it waited for its lease keeper to end:
    # `suppress(CancelledError): await keeper` took that cancel for the keeper's and the
    # loop went on (CI of 2026-12-03).
    wound_down = asyncio.Event()

    async def child() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await wound_down.wait()

    async def parent() -> None:
        task = asyncio.create_task(child())
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        await asyncio.sleep(30)  # "the loop goes on"

    task = asyncio.create_task(parent())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    wound_down.set()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_cancel_and_wait_raises_a_childs_failure() -> None:
    async def fails() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            raise ValueError("broken on the way out")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError):
        await cancel_and_wait(task)
    await cancel_and_wait()  # nothing to do


async def test_every_childs_failure_is_read_not_only_the_first() -> None:
    unread: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unread.append(context))

    async def fails(n: int) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            raise ValueError(n)

    tasks = [asyncio.create_task(fails(n)) for n in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(ValueError):
        await cancel_and_wait(*tasks)
    del tasks
    gc.collect()
    assert unread == []


async def test_a_cancel_a_client_library_turned_into_its_error_ends_the_sweeper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-py answers a cancel during a command with its own ConnectionError: the loop's
    # `except Exception` took it for an outage and swept on, and shutdown waited forever.
    storage = await open_storage(Settings(data_dir=str(tmp_path / "var")), Sealer([b"w" * 32]))
    sweeper = Sweeper(storage, interval=0.01)
    started = asyncio.Event()

    async def like_redis_py() -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None
        return 0

    monkeypatch.setattr(sweeper, "sweep_once", like_redis_py)
    task = asyncio.create_task(sweeper.run())
    try:
        await started.wait()
        async with asyncio.timeout(10):
            await cancel_and_wait(task)
        assert task.cancelled()
    finally:
        task.cancel()
        await storage.close()
