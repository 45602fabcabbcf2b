"""Benchmark `Engine.handle` on SQLite for the full report flow (run on demand, not in CI).

Baseline, measured in the same run on the same disk: as many bare SQLite write transactions
(aiosqlite, WAL, synchronous=FULL, one small INSERT each) as the engine handled messages.
Each message needs at least one durable write (the session and its event id), so the ratio
engine/baseline says how much the engine adds on top of the unavoidable commit.

    .venv/bin/python -m bench.engine [--conversations 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from bot.types import Inbound, Kind, Location, LocationSource
from bot.wiring import open_services
from config.settings import Settings


def report_messages(i: int) -> list[Inbound]:
    sender = f"bench-{i}"
    loc = Location(13.7 + i / 1000, 100.5, LocationSource.REPORTER_PIN)
    return [
        Inbound("bench", sender, Kind.START, f"{i}-0"),
        Inbound("bench", sender, Kind.CHOICE, f"{i}-1", "threat"),
        Inbound("bench", sender, Kind.LOCATION, f"{i}-2", loc),
        Inbound("bench", sender, Kind.TEXT, f"{i}-3", "081-234-5678"),
        Inbound("bench", sender, Kind.CHOICE, f"{i}-4", "send"),
        Inbound("bench", sender, Kind.CHOICE, f"{i}-5", "skip"),
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(ops: list[Callable[[], Awaitable[object]]], concurrency: int
                ) -> tuple[float, list[float]]:
    """Run ops with at most `concurrency` in flight; (wall seconds, per-op latencies)."""
    latencies: list[float] = []
    queue = list(reversed(ops))

    async def worker() -> None:
        while queue:
            op = queue.pop()
            t0 = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


async def bench_engine(root: Path, conversations: int, concurrency: int
                       ) -> tuple[float, list[float], int]:
    services = await open_services(Settings(data_dir=str(root / "engine"), log_level="error",
                                            log_format="json"))
    try:
        scripts = [report_messages(i) for i in range(conversations)]
        # Conversations run concurrently; each one's messages are sequential, as from a person.
        latencies: list[float] = []

        async def converse(msgs: list[Inbound]) -> None:
            for msg in msgs:
                t0 = time.perf_counter()
                await services.engine.handle(msg)
                latencies.append(time.perf_counter() - t0)

        sem = asyncio.Semaphore(concurrency)

        async def limited(msgs: list[Inbound]) -> None:
            async with sem:
                await converse(msgs)

        start = time.perf_counter()
        await asyncio.gather(*(limited(s) for s in scripts))
        wall = time.perf_counter() - start
        stored = len(await services.storage.incidents.recent(limit=conversations * 2))
        return wall, latencies, stored
    finally:
        await services.close()


async def bench_baseline(root: Path, count: int, concurrency: int) -> tuple[float, list[float]]:
    conn = await aiosqlite.connect(root / "baseline.db", isolation_level=None)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)")
    lock = asyncio.Lock()
    payload = b"x" * 200

    def op(i: int) -> Callable[[], Awaitable[object]]:
        async def write() -> None:
            async with lock:  # one connection, whole transactions: as the adapter does
                await conn.execute("BEGIN IMMEDIATE")
                await conn.execute("INSERT INTO t VALUES (?, ?)", (str(i), payload))
                await conn.execute("COMMIT")
        return write

    try:
        return await timed([op(i) for i in range(count)], concurrency)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wall_e, lat_e, stored = await bench_engine(root, args.conversations, args.concurrency)
        messages = len(lat_e)
        wall_b, lat_b = await bench_baseline(root, messages, args.concurrency)
    assert stored == args.conversations, f"only {stored} incidents stored"
    rate_e, rate_b = messages / wall_e, messages / wall_b
    print(f"full report flow on SQLite: {args.conversations} conversations, {messages} messages,"
          f" {args.concurrency} at a time")
    print(f"{'':<28}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'Engine.handle':<28}{rate_e:>10.0f}{pct(lat_e, .5) * 1e3:>10.2f}"
          f"{pct(lat_e, .99) * 1e3:>10.2f}")
    print(f"{'baseline (bare write txn)':<28}{rate_b:>10.0f}{pct(lat_b, .5) * 1e3:>10.2f}"
          f"{pct(lat_b, .99) * 1e3:>10.2f}")
    print(f"ratio engine/baseline: throughput {rate_e / rate_b:.2f}  "
          f"(target >= 0.50); mean latency x{statistics.mean(lat_e) / statistics.mean(lat_b):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
