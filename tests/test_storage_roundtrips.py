"""Round trips per inbound message, counted on the wire of real servers.

Redis: a connection class that counts what it sends (a pipeline or a script is one send).
PostgreSQL: asyncpg's query logger on every pooled connection (one statement, one trip).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from bot.services import Services
from bot.wiring import open_services
from config.settings import Settings
from storage.composite import CompositeStorage
from storage.crypto import Sealer
from storage.postgres import PostgresStorage
from storage.redis import RedisState
from tests.helpers import choice, pin, start, text

trips: Counter[str] = Counter()


class CountingConnection(aioredis.Connection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        trips["redis"] += 1
        await super().send_packed_command(command, check_health)


async def count_queries(conn: asyncpg.Connection) -> None:
    conn.add_query_logger(lambda record: trips.update(["postgres"]))


async def report(services: Services, who: str, *, routed: bool = False) -> list[Counter[str]]:
    """One whole report (through the inbound router when `routed`, as channels hand it
    over); the round trips of each message."""
    per_message = []
    handle = services.inbound.handle if routed else services.engine.handle
    for inbound in (start(who), choice(who, "threat"), pin(who), text(who, "081-234-5678"),
                    choice(who, "send")):
        trips.clear()
        replies = await handle(inbound)
        assert replies and replies[0].text.key != "common.unavailable"
        per_message.append(Counter(trips))
    return per_message


@pytest.fixture
async def counted(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest
                  ) -> AsyncIterator[Services]:
    settings = Settings(data_dir=str(tmp_path), log_format="console", database_url=pg_url,
                        log_level="warning")
    sealer = Sealer([b"k" * 32])
    storage: Any = await PostgresStorage.open(settings, sealer, init=count_queries)
    if request.param == "redis":
        settings = Settings(**{**settings.__dict__, "redis_url":
                               request.getfixturevalue("redis_url")})
        state = await RedisState.open(settings, sealer, connection_class=CountingConnection)
        storage = CompositeStorage(storage, state)
    services = await open_services(settings, storage=storage)
    try:
        await report(services, "warm-up")  # scripts loaded, pools filled
        yield services
    finally:
        await services.close()


@pytest.mark.parametrize("counted", ["redis"], indirect=True)
async def test_round_trips_with_redis(counted: Services) -> None:
    per_message = await report(counted, "u1")
    # lock + load (one script: the session is read under the lock just taken), then save +
    # unlock (one script: the step's save releases the lock it was fenced by)
    assert [m["redis"] for m in per_message] == [2, 2, 2, 2, 2]
    # PostgreSQL on the conversation's first message, for its data key (made and read in
    # one statement, then cached: no vault trip per message), and when the report is
    # submitted: one statement writes the incident, its timeline event, its outbox rows and
    # its escalation watchdog. The area's responder bindings come from memory
    # (storage/bindings_cache.py; the warm-up read them).
    assert [m["postgres"] for m in per_message] == [1, 0, 0, 0, 1]


@pytest.mark.parametrize("counted", ["redis"], indirect=True)
async def test_round_trips_through_the_inbound_router(counted: Services) -> None:
    # Whether a private chat is a responder's or a volunteer's is answered from memory: the
    # whole bindings table is read at the first question, not a statement per new chat.
    first = await report(counted, "u2", routed=True)
    per_message = await report(counted, "u3", routed=True)
    # (The first message also makes the conversation's data key.)
    assert [m["postgres"] for m in first] == [2, 0, 0, 0, 1]
    assert [m["postgres"] for m in per_message] == [1, 0, 0, 0, 1]
    assert [m["redis"] for m in per_message] == [2, 2, 2, 2, 2]


@pytest.mark.parametrize("counted", ["redis"], indirect=True)
async def test_round_trips_of_the_dispatch(counted: Services) -> None:
    while await counted.dispatcher.run_once():  # the warm-up's report
        pass
    await report(counted, "u3")
    trips.clear()
    passes = [await counted.dispatcher.run_once() for _ in range(3)]
    assert passes[-1] == 0  # all sent
    # Pass 1: timers, the claim of 4 cards and the receipt, one update arming the incident
    # (from the copy the report service just committed, not read back; the other three
    # cards wait, then find it armed in memory), the cards completed in one statement (the
    # receipt, to a chat of a channel this test does not run, is buried). Pass 2: timers,
    # the claim of the "dispatched" push, its burial. Pass 3: timers and an empty claim.
    # (Each card reading and arming, as before: 20 statements.)
    assert passes[:2] == [5, 1]
    assert trips["postgres"] == 5 + 3 + 2


@pytest.mark.parametrize("counted", ["postgres"], indirect=True)
async def test_round_trips_postgres_only(counted: Services) -> None:
    per_message = await report(counted, "u1")
    # advisory lock + fencing token (one statement), load, save, and the lock connection's
    # reset that releases the lock; the submit adds the one above, the first message the
    # conversation's data key (once: cached after).
    assert [m["postgres"] for m in per_message] == [5, 4, 4, 4, 5]
