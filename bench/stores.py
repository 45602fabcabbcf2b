"""Benchmark the full report flow through the engine on each backend (on demand, not in CI).

For each backend (sqlite, postgres, postgres+redis), with one process and with two processes
sharing the store (disjoint halves of the conversations), it prints messages per second and
p50/p99 latency of `Engine.handle`, beside a bare baseline of the same run: per message, the
minimal round trips the flow needs with the same client libraries (read the session, write
it; at the submit, also insert the incident), with no engine, no flow, no sealing, no lock.
It also prints the round trips per message the engine made (counted on the wire).

    .venv/bin/python -m bench.stores [--conversations 400] [--concurrency 50]

It starts its own PostgreSQL and Redis (tests/servers.py) on loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import aiosqlite  # noqa: E402
import asyncpg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bot.types import Inbound, Kind, Location, LocationSource  # noqa: E402
from bot.wiring import open_services  # noqa: E402
from config.settings import Settings  # noqa: E402
from storage.composite import CompositeStorage  # noqa: E402
from storage.crypto import Sealer  # noqa: E402
from storage.postgres import PostgresStorage  # noqa: E402
from storage.redis import RedisState  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402
from tests.test_storage_roundtrips import CountingConnection, count_queries, trips  # noqa: E402

KEY = Sealer([b"b" * 32])
MESSAGES = 5


@dataclass
class Run:
    wall: float
    latencies: list[float]
    trips: int = 0


def report(tag: str, i: int) -> list[Inbound]:
    sender = f"{tag}-{i}"
    loc = Location(13.7 + i / 10000, 100.5, LocationSource.REPORTER_PIN)
    return [Inbound("bench", sender, Kind.START, f"{sender}-0"),
            Inbound("bench", sender, Kind.CHOICE, f"{sender}-1", "threat"),
            Inbound("bench", sender, Kind.LOCATION, f"{sender}-2", loc),
            Inbound("bench", sender, Kind.TEXT, f"{sender}-3", "081-234-5678"),
            Inbound("bench", sender, Kind.CHOICE, f"{sender}-4", "send")]


async def conversations(ids: range, concurrency: int,
                        step: Callable[[int, int], Awaitable[object]]) -> Run:
    """Conversations run concurrently; each one's messages one after another."""
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            for k in range(MESSAGES):
                t0 = time.perf_counter()
                await step(i, k)
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in ids))
    return Run(time.perf_counter() - start, latencies)


def settings_for(backend: str, urls: dict[str, str]) -> Settings:
    return Settings(data_dir=urls["dir"], log_level="error", log_format="json",
                    database_url=urls["pg"] if backend != "sqlite" else "",
                    redis_url=urls["redis"] if backend == "postgres+redis" else "",
                    database_pool_max=20)


async def engine_run(backend: str, urls: dict[str, str], ids: range, concurrency: int,
                     tag: str) -> Run:
    settings = settings_for(backend, urls)
    storage: Any = None
    if backend != "sqlite":
        storage = await PostgresStorage.open(settings, KEY, init=count_queries)
        if backend == "postgres+redis":
            state = await RedisState.open(settings, KEY, connection_class=CountingConnection)
            storage = CompositeStorage(storage, state)
    services = await open_services(settings, storage=storage)
    try:
        scripts = {i: report(tag, i) for i in ids}
        trips.clear()
        run = await conversations(ids, concurrency,
                                  lambda i, k: services.engine.handle(scripts[i][k]))
        run.trips = sum(trips.values())
        return run
    finally:
        await services.close()


async def baseline_run(backend: str, urls: dict[str, str], ids: range, concurrency: int,
                       tag: str) -> Run:
    blob = b"x" * 400  # about a sealed session
    if backend == "sqlite":
        conn = await aiosqlite.connect(Path(urls["dir"]) / "baseline.db", isolation_level=None)
        await conn.execute("PRAGMA busy_timeout = 10000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        lock = asyncio.Lock()

        async def step(i: int, k: int) -> None:
            key = f"{tag}-{i}"
            async with lock:
                await conn.execute_fetchall("SELECT v FROM s WHERE k = ?", (key,))
                await conn.execute("INSERT OR REPLACE INTO s VALUES (?, ?)", (key, blob))
                if k == MESSAGES - 1:
                    await conn.execute("INSERT INTO i VALUES (?, ?)", (key, blob))
        try:
            return await conversations(ids, concurrency, step)
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(urls["pg"], min_size=2, max_size=20)
    client = aioredis.Redis.from_url(urls["redis"], max_connections=50)
    try:
        async def step(i: int, k: int) -> None:
            key = f"{tag}-{i}"
            if backend == "postgres":
                await pool.fetchval("SELECT v FROM bs WHERE k = $1", key)
                await pool.execute("INSERT INTO bs VALUES ($1, $2) ON CONFLICT (k) DO UPDATE "
                                   "SET v = EXCLUDED.v", key, blob)
            else:
                await client.get(f"b:{key}")
                await client.set(f"b:{key}", blob, px=1_800_000)
            if k == MESSAGES - 1:
                await pool.execute("INSERT INTO bi VALUES ($1, $2)", key, blob)
        return await conversations(ids, concurrency, step)
    finally:
        await client.aclose()
        await pool.close()


def child(kind: str, backend: str, urls: dict[str, str], lo: int, hi: int,
          concurrency: int, tag: str) -> Run:
    fn = engine_run if kind == "engine" else baseline_run
    return asyncio.run(fn(backend, urls, range(lo, hi), concurrency, tag))


def measure(kind: str, backend: str, urls: dict[str, str], n: int, concurrency: int,
            processes: int, tag: str) -> Run:
    if processes == 1:
        return child(kind, backend, urls, 0, n, concurrency, tag)
    ctx = multiprocessing.get_context("spawn")
    half = n // processes
    with ctx.Pool(processes) as pool:
        runs = pool.starmap(child, [(kind, backend, urls, p * half, (p + 1) * half,
                                     concurrency, tag) for p in range(processes)])
    return Run(max(r.wall for r in runs), [x for r in runs for x in r.latencies],
               sum(r.trips for r in runs))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    pg, rd = PostgresServer(), RedisServer()
    pg.start()
    rd.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"full report flow, {args.conversations} conversations x {MESSAGES} messages,"
                  f" {args.concurrency} conversations at a time per process")
            print(f"{'backend':<16}{'procs':>6}{'':>10}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
                  f"{'ratio':>8}{'p50 x':>7}{'trips/msg':>10}")
            for backend in ("sqlite", "postgres", "postgres+redis"):
                for processes in (1, 2):
                    tag = f"{backend}-{processes}"
                    urls = {"dir": str(Path(tmp) / tag), "pg": pg.new_database(),
                            "redis": rd.new_url()}
                    Path(urls["dir"]).mkdir()
                    # Schema and baseline tables once, before the processes race.
                    asyncio.run(_prepare(backend, settings_for(backend, urls), urls))
                    e = measure("engine", backend, urls, args.conversations,
                                args.concurrency, processes, tag)
                    b = measure("baseline", backend, urls, args.conversations,
                                args.concurrency, processes, tag)
                    n = len(e.latencies)
                    rate_e, rate_b = n / e.wall, len(b.latencies) / b.wall
                    trips_msg = f"{e.trips / n:.2f}" if e.trips else "-"
                    print(f"{backend:<16}{processes:>6}{'engine':>10}{rate_e:>9.0f}"
                          f"{pct(e.latencies, .5):>9.2f}{pct(e.latencies, .99):>9.2f}"
                          f"{rate_e / rate_b:>8.2f}"
                          f"{statistics.median(e.latencies) / statistics.median(b.latencies):>7.1f}"
                          f"{trips_msg:>10}")
                    print(f"{'':<16}{'':>6}{'baseline':>10}{rate_b:>9.0f}"
                          f"{pct(b.latencies, .5):>9.2f}{pct(b.latencies, .99):>9.2f}")
    finally:
        rd.close()
        pg.close()


async def _prepare(backend: str, settings: Settings, urls: dict[str, str]) -> None:
    services = await open_services(settings)
    await services.close()
    if backend != "sqlite":
        conn = await asyncpg.connect(urls["pg"])
        await conn.execute("CREATE TABLE bs (k text PRIMARY KEY, v bytea)")
        await conn.execute("CREATE TABLE bi (k text PRIMARY KEY, v bytea)")
        await conn.close()
        return
    conn = await aiosqlite.connect(settings.data_path / "baseline.db", isolation_level=None)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v BLOB)")
    await conn.execute("CREATE TABLE i (k TEXT PRIMARY KEY, v BLOB)")
    await conn.close()


if __name__ == "__main__":
    main()
