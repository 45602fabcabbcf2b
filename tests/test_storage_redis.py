"""Redis specifics beyond the contract: fencing, lock renewal, crashed lock holders, dedupe,
pub/sub."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.session import Session
from bot.types import utcnow
from config.settings import Settings
from storage.crypto import Sealer
from storage.ports import StaleSession
from storage.redis import RedisState

SEALER = Sealer([b"k" * 32])
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def redis_settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(data_dir=str(tmp_path), redis_url=redis_url, lock_ttl=0.5,
                    store_timeout=2)


@pytest.fixture
async def states(redis_settings: Settings) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """Two processes' worth of Redis state on one server."""
    a = await RedisState.open(redis_settings, SEALER)
    b = await RedisState.open(redis_settings, SEALER)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_late_holder_cannot_overwrite(states: tuple[RedisState, RedisState]) -> None:
    a, b = states
    taken, saved = asyncio.Event(), asyncio.Event()

    async def newer_holder() -> int:
        async with b.locks.hold("c") as token:
            taken.set()
            await saved.wait()
            loaded = await b.sessions.load("c", "e2")
            assert loaded.session is None  # the late write did not land
            await b.sessions.save(Session("c", lang="en"), "e2")
            return token

    async with a.locks.hold("c") as first:
        session = Session("c", lang="th", flow="report", slots={"x": 1})
        # The lock expires under the holder (a long pause, a stalled process)...
        await a.client.delete(a.sessions._keys.of("l", "c"))
        task = asyncio.create_task(newer_holder())
        await taken.wait()
        # ... and its save is refused by the fencing token, though the version matches.
        with pytest.raises(StaleSession, match="lock expired"):
            await a.sessions.save(session, "e1")
        saved.set()
        second = await task
    assert second > first
    loaded = await a.sessions.load("c", "e1")
    assert loaded.session is not None and loaded.session.lang == "en"
    assert not loaded.duplicate  # the refused event was not recorded as handled


async def test_a_crashed_holders_lock_frees_itself(states: tuple[RedisState, RedisState]
                                                   ) -> None:
    a, b = states
    # A holder that dies without releasing: the lock script ran, nothing ever unlocks.
    keys = [a.sessions._keys.of("l", "c"), a.sessions._keys.of("f", "c")]
    dead = int((await a.locks._lock(keys=keys, args=[500, 60_000]))[0])
    assert dead > 0
    async with b.locks.hold("c") as token:  # waits for the expiry, then takes over
        assert token > dead


async def test_a_long_step_keeps_its_lock(states: tuple[RedisState, RedisState]) -> None:
    a, b = states  # lock_ttl 0.5 s: the step below lasts more than three of them
    order: list[str] = []

    async def other_process() -> None:
        async with b.locks.hold("c"):
            order.append("b")

    async with a.locks.hold("c") as token:
        waiting = asyncio.create_task(other_process())
        for _ in range(8):
            await asyncio.sleep(0.2)
            assert await a.client.get(a.sessions._keys.of("l", "c")) == str(token).encode()
        assert not waiting.done()
        order.append("a")
        await a.sessions.save(Session("c", lang="th"), "e1")  # the fencing token still holds
    await waiting
    assert order == ["a", "b"]


HOLDER = """
import asyncio, sys
from config.settings import Settings
from storage.crypto import Sealer
from storage.redis import RedisState

async def main():
    settings = Settings(redis_url=sys.argv[1], lock_ttl=0.5)
    state = await RedisState.open(settings, Sealer([b"k" * 32]))
    async with state.locks.hold("c") as token:
        print(token, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_dead_holders_renewed_lock_still_expires(
        states: tuple[RedisState, RedisState], redis_settings: Settings) -> None:
    _, b = states
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, redis_settings.redis_url, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        dead = int(await asyncio.wait_for(holder.stdout.readline(), 60))  # a guard
        await asyncio.sleep(1.0)  # two expiries: the live holder renewed its lock
        assert await b.client.get(b.sessions._keys.of("l", "c")) == str(dead).encode()
    finally:
        holder.kill()  # SIGKILL: no unlock, no more renewals
        await holder.wait()
    async with b.locks.hold("c") as token:  # the lock expires, then b takes over
        assert token > dead


async def test_dedupe_set_nx(states: tuple[RedisState, RedisState]) -> None:
    a, b = states
    now = utcnow()
    assert await a.dedupe.first("line:ev1", timedelta(hours=1), now)
    assert not await b.dedupe.first("line:ev1", timedelta(hours=1), now)


async def test_live_updates_reach_every_subscriber(states: tuple[RedisState, RedisState]
                                                   ) -> None:
    a, b = states
    async with b.live.subscribe("board") as messages:
        assert await a.live.publish("board", {"reference": "ESS-7K3F9"}) == 1
        got = await asyncio.wait_for(anext(messages), 30)  # a guard, not a timing check
    assert got == {"reference": "ESS-7K3F9"}


async def test_session_keys_carry_no_conversation_key(states: tuple[RedisState, RedisState]
                                                      ) -> None:
    a, _ = states
    await a.sessions.save(Session("sms:+66812345678", lang="th", flow="report"), "sms:1")
    keys = [k async for k in a.client.scan_iter()]
    assert keys and not any(b"812345678" in k for k in keys)


async def test_the_steps_save_releases_its_lock_in_the_same_trip(
        states: tuple[RedisState, RedisState]) -> None:
    a, b = states
    lock_key = a.sessions._keys.of("l", "c")
    async with a.locks.hold("c", "e1"):
        loaded = await a.sessions.load("c", "e1")
        session = loaded.session or Session("c", lang="th")
        # A refused save (another writer moved the version) keeps the lock for the retry.
        await a.client.hset(a.sessions._keys.of("m", "c"), "v", 7)
        with pytest.raises(StaleSession, match="changed"):
            await a.sessions.save(session, "e1")
        assert await a.client.exists(lock_key) == 1
        session.version = 7
        await a.sessions.save(session, "e1")
        # Saved and unlocked by the one script: the other process takes it at once.
        assert await a.client.exists(lock_key) == 0
        async with b.locks.hold("c", "e2") as token:
            assert token > 0
            # A save for another event than the hold's (not the step's own) keeps the lock.
            again = await b.sessions.load("c", "e2")
            assert again.session is not None and again.session.version == 8
            await b.sessions.save(again.session, "e3")
            assert await b.client.exists(lock_key) == 1
        assert await b.client.exists(lock_key) == 0


async def test_a_late_holders_releasing_save_leaves_the_new_lock(
        states: tuple[RedisState, RedisState]) -> None:
    a, b = states
    lock_key = a.sessions._keys.of("l", "c")
    taken, tried = asyncio.Event(), asyncio.Event()

    async def newer_holder() -> int:
        async with b.locks.hold("c", "e2") as token:
            taken.set()
            await tried.wait()
            # Fenced: the late save was refused, and this holder's lock is still its own.
            assert int(await b.client.get(lock_key)) == token
            return token

    async with a.locks.hold("c", "e1"):
        await a.sessions.load("c", "e1")
        await a.client.delete(lock_key)  # expired under a stalled holder
        task = asyncio.create_task(newer_holder())
        await taken.wait()
        with pytest.raises(StaleSession, match="lock expired"):
            await a.sessions.save(Session("c", lang="th"), "e1")
        tried.set()
        assert await task > 0
