"""Conversation locks across processes: two stores on one server stand for two processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from config.settings import Settings
from storage.crypto import Sealer
from storage.factory import open_storage
from storage.locks import renewed
from storage.ports import Storage
from storage.postgres import _lock_key

SEALER = Sealer([b"k" * 32])


@pytest.fixture(params=["postgres", "postgres+redis"])
async def two(request: pytest.FixtureRequest, tmp_path: Path
              ) -> AsyncIterator[tuple[Storage, Storage]]:
    redis_url = request.getfixturevalue("redis_url") if "redis" in request.param else ""
    settings = Settings(data_dir=str(tmp_path), database_url=request.getfixturevalue("pg_url"),
                        redis_url=redis_url, lock_ttl=1)
    a = await open_storage(settings, SEALER)
    b = await open_storage(settings, SEALER)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_one_holder_at_a_time_across_processes(two: tuple[Storage, Storage]) -> None:
    a, b = two
    order: list[str] = []
    inside = asyncio.Event()

    async def second() -> None:
        await inside.wait()
        async with b.locks.hold("c") as token:
            order.append(f"b-in:{token}")

    task = asyncio.create_task(second())
    async with a.locks.hold("c") as token:
        order.append(f"a-in:{token}")
        inside.set()
        await asyncio.sleep(0.2)  # room for the other process to barge in, if it could
        order.append("a-out")
    await task
    assert [o.split(":")[0] for o in order] == ["a-in", "a-out", "b-in"]
    assert int(order[2].split(":")[1]) > int(order[0].split(":")[1])  # fencing grows


async def test_postgres_lock_of_a_dead_connection_is_freed(pg_url: str, tmp_path: Path) -> None:
    store = await open_storage(Settings(data_dir=str(tmp_path), database_url=pg_url), SEALER)
    crashed = await asyncpg.connect(pg_url)
    try:
        await crashed.execute("SELECT pg_advisory_lock($1)", _lock_key(SEALER, "c"))
        crashed.terminate()  # the process dies: the server ends its session and its locks
        async with store.locks.hold("c") as token:
            assert token > 0
    finally:
        await store.close()


async def test_a_renewal_whose_client_swallows_the_cancel_still_lets_the_holder_go() -> None:
    """redis-py turns a cancellation inside a command into its own timeout error; the holder
    of a lock must still get out of `renewed` (it once waited for ever, renewing a released
    lock, and the conversation was stuck on every process)."""
    calls = 0
    in_flight = asyncio.Event()

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        in_flight.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError("Timeout reading from socket") from None
        return True

    async def hold() -> None:
        async with renewed(renew, 0.01):
            await in_flight.wait()  # released while a renewal is in flight

    await asyncio.wait_for(hold(), 30)  # a bound, not a timing: it hung for ever before
    assert calls == 1


async def test_a_renewal_runs_only_while_a_block_outlives_its_period() -> None:
    calls = 0
    thrice = asyncio.Event()

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        if calls >= 3:
            thrice.set()
        return True

    async with renewed(renew, 60.0):
        pass
    assert calls == 0  # the usual message: over before the first renewal
    async with renewed(renew, 0.01):
        # Renewed again and again while the block runs (a bound, not a timing).
        await asyncio.wait_for(thrice.wait(), 30)
    after = calls
    await asyncio.sleep(0.05)
    assert calls == after  # and never after it ended
