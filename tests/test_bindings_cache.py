"""PostgreSQL's bindings answered from memory: what the cache must never get wrong.

The contract suite checks that another store's change is seen; here, that the answers are
really kept (no statement for a repeated question), and that a store whose listening
connection is killed reads every time until it listens again, so a change made meanwhile
is never hidden.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.types import utcnow
from config.settings import Settings
from storage import bindings_cache
from storage.crypto import Sealer
from storage.postgres import PostgresStorage

trips: Counter[str] = Counter()


async def count_queries(conn: asyncpg.Connection) -> None:
    conn.add_query_logger(lambda record: trips.update(
        ["bindings" if "FROM bindings" in record.query else "other"]))


@pytest.fixture
async def stores(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[PostgresStorage,
                                                                     PostgresStorage]]:
    settings = Settings(data_dir=str(tmp_path), log_format="console", database_url=pg_url)
    sealer = Sealer([b"k" * 32])
    mine = await PostgresStorage.open(settings, sealer, init=count_queries)
    other = await PostgresStorage.open(settings, sealer)
    try:
        yield mine, other
    finally:
        await other.close()
        await mine.close()


async def test_a_repeated_question_is_answered_from_memory(
        stores: tuple[PostgresStorage, PostgresStorage]) -> None:
    mine, _ = stores
    trips.clear()
    for _ in range(5):
        assert await mine.bindings.for_address("line:Ureporter") == []
    assert trips["bindings"] == 1


async def test_new_chats_are_answered_from_one_read_of_the_whole_table(
        stores: tuple[PostgresStorage, PostgresStorage]) -> None:
    mine, other = stores
    trips.clear()
    # Reporters: a new chat in every report, none of them bound.
    for n in range(20):
        assert await mine.bindings.for_address(f"line:Ureporter{n}") == []
    assert trips["bindings"] == 1
    # Another process binds a volunteer: its NOTIFY makes this one read the table again.
    await other.pool.execute("INSERT INTO bindings VALUES ('line:Uv', 'TH-65', 'volunteer', $1)",
                             utcnow())
    for _ in range(200):
        if await mine.bindings.for_address("line:Uv"):
            break
        await asyncio.sleep(0.05)
    [bound] = await mine.bindings.for_address("line:Uv")
    assert (bound.area, bound.agency) == ("TH-65", "volunteer")
    trips.clear()
    assert await asyncio.gather(*(mine.bindings.for_address(f"line:Un{n}") for n in range(10))
                                ) == [[]] * 10
    assert trips["bindings"] == 0


async def test_a_large_table_is_read_per_address(
        stores: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = stores
    monkeypatch.setattr(bindings_cache, "WHOLE", 1)
    assert await mine.bindings.for_address("line:Uv1") == []  # listening, table read
    seen = mine.bindings._generation
    for n in range(2):
        await other.pool.execute(
            "INSERT INTO bindings VALUES ($1, 'TH-65', 'volunteer', $2)", f"line:Uv{n}",
            utcnow())
    for _ in range(200):  # both NOTIFYs seen, so none lands in the middle of what follows
        if mine.bindings._generation >= seen + 2:
            break
        await asyncio.sleep(0.05)
    trips.clear()
    assert len(await mine.bindings.for_address("line:Uv1")) == 1
    assert await mine.bindings.for_address("line:Ur") == []
    assert await mine.bindings.for_address("line:Ur") == []  # kept per address
    # The whole read found too many; then one read per new address.
    assert trips["bindings"] == 3


async def test_after_a_failed_whole_read_chats_are_read_per_address(
        stores: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The callers queued behind a whole read that failed must not each wait out a store
    # that is away, one after another.
    mine, _ = stores

    class Failing:
        """The pool, but the whole read fails."""

        def __getattr__(self, name: str) -> object:
            return getattr(mine.pool, name)

        async def fetch(self, query: str, *args: object) -> object:
            if "ORDER BY bound_at LIMIT" in query:
                raise ConnectionResetError("the connection was closed by the server")
            return await mine.pool.fetch(query, *args)

    monkeypatch.setattr(mine.bindings, "_pool", Failing())
    with pytest.raises(ConnectionResetError):
        await mine.bindings.for_address("line:Ua")
    trips.clear()
    assert await asyncio.gather(*(mine.bindings.for_address(f"line:Ub{n}") for n in range(3))
                                ) == [[]] * 3
    assert trips["bindings"] == 3  # one per address, none waiting for another


async def test_without_its_listener_a_store_reads_every_time(
        stores: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch,
        pg_url: str) -> None:
    mine, other = stores
    monkeypatch.setattr(bindings_cache, "RELISTEN", 3600.0)  # no new listen in this test
    assert await mine.bindings.for_address("line:Uv") == []
    assert mine.bindings.listening
    conn = await asyncpg.connect(pg_url)
    try:
        # Kill every listening backend of this database (ours among them).
        await conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_stat_activity l "
            "WHERE l.datname = current_database() AND l.pid <> pg_backend_pid() "
            "AND l.query LIKE 'LISTEN%'")
    finally:
        await conn.close()
    for _ in range(50):
        if not mine.bindings.listening:
            break
        await asyncio.sleep(0.1)
    assert not mine.bindings.listening
    await other.pool.execute("INSERT INTO bindings VALUES ('line:Uv', 'TH-65', 'volunteer', $1)",
                             utcnow())
    # Told of nothing (its listener is gone), it still sees the change: it read again.
    trips.clear()
    assert len(await mine.bindings.for_address("line:Uv")) == 1
    assert len(await mine.bindings.for_address("line:Uv")) == 1
    assert trips["bindings"] == 2


async def test_a_small_pool_is_not_starved_by_the_listener(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(data_dir=str(tmp_path), log_format="console", database_url=pg_url,
                        database_pool_min=1, database_pool_max=1)
    storage = await PostgresStorage.open(settings, Sealer([b"k" * 32]))
    try:
        assert not storage.bindings.listening  # it reads every time instead
        async with asyncio.timeout(10):
            assert await storage.bindings.for_address("line:Ux") == []
            assert await storage.ping()
    finally:
        await storage.close()
