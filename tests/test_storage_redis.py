"""Redis specifics beyond the contract: fencing, crashed lock holders, dedupe, pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.session import Session
from config.settings import Settings
from storage.crypto import Sealer
from storage.ports import StaleSession
from storage.redis import RedisState

SEALER = Sealer([b"k" * 32])


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
    dead = int(await a.locks._lock(keys=keys, args=[500, 60_000]))
    assert dead > 0
    async with b.locks.hold("c") as token:  # waits for the expiry, then takes over
        assert token > dead


async def test_dedupe_set_nx(states: tuple[RedisState, RedisState]) -> None:
    a, b = states
    assert await a.dedupe.first("line:ev1")
    assert not await b.dedupe.first("line:ev1")


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
