"""Benchmark routing (run on demand, not in CI): nearest-station queries and dispatch latency.

1. Nearest-station queries per second through the k-d tree, on the sample directory and on
   100,000 synthetic stations, beside a brute-force scan of the same points measured in the
   same run (the ratio is the index's gain; both return the same station, checked).
2. Time from a submitted report (the reporter's last tap handed to the engine) to its first
   responder card handed to the channel, through the real engine, SQLite store and
   dispatcher loop (p50/p99), beside the engine's own time for that tap as the baseline.

    .venv/bin/python -m bench.routing [--queries 2000] [--synthetic 100000] [--reports 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time

from bot.incident import Notification
from bot.logs import configure_logging
from bot.outbound import SendResult
from bot.types import Inbound, Kind, Location, LocationSource
from bot.wiring import open_services
from config.settings import Settings
from routing.directory import load_directory
from routing.spatial import SphereIndex, brute_nearest

THAILAND = ((5.6, 20.5), (97.3, 105.7))


def points(n: int, rng: random.Random) -> list[tuple[float, float]]:
    (la0, la1), (lo0, lo1) = THAILAND
    return [(rng.uniform(la0, la1), rng.uniform(lo0, lo1)) for _ in range(n)]


def rate(fn: object, queries: list[tuple[float, float]]) -> tuple[float, list[float]]:
    answers: list[float] = []
    start = time.perf_counter()
    for lat, lon in queries:
        answers.append(fn(lat, lon)[0][1])  # type: ignore[operator]
    return len(queries) / (time.perf_counter() - start), answers


def compare(name: str, index: SphereIndex, queries: list[tuple[float, float]],
            brute_queries: int) -> None:
    fast, got = rate(lambda la, lo: index.nearest(la, lo, 1), queries)
    sample = queries[:brute_queries]
    slow, want = rate(lambda la, lo: brute_nearest(index.vectors, la, lo, 1), sample)
    # Distances, not ids: the sample has districts sharing a seat (equal distances).
    assert all(abs(a - b) < 1e-6 for a, b in zip(got, want, strict=False)), \
        "index and brute force disagree"
    print(f"{name:<28} {len(index):>7} stations  index {fast:>10,.0f} q/s  "
          f"brute {slow:>9,.0f} q/s  ratio {fast / slow:>7.1f}x")


class TimingSender:
    """Records when the first card of each incident is handed to the channel."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def send(self, notification: Notification) -> SendResult:
        if notification.kind == "incident.new" and notification.incident_id:
            self.first.setdefault(notification.incident_id, time.perf_counter())
            self.arrived.set()
        return SendResult.sent()


async def dispatch_latency(reports: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sender = TimingSender()
        services = await open_services(Settings(data_dir=tmp, log_level="error"),
                                       sender=sender)
        loop = asyncio.create_task(services.dispatcher.run())
        engine = services.engine
        total: list[float] = []
        submit: list[float] = []
        rng = random.Random(7)
        stations = services.directory.stations
        try:
            for i in range(reports):
                who = f"b{i}"
                # Near a real station, so the report takes the full route (not the fallback).
                seat = rng.choice(stations)
                lat, lon = seat.lat + rng.uniform(-0.05, 0.05), seat.lon + rng.uniform(-.05, .05)
                for n, (kind, payload) in enumerate([
                        (Kind.START, None), (Kind.CHOICE, "threat"),
                        (Kind.LOCATION, Location(lat, lon, LocationSource.REPORTER_PIN)),
                        (Kind.TEXT, "081-234-5678")]):
                    await engine.handle(Inbound("bench", who, kind, f"{i}-{n}", payload))
                t0 = time.perf_counter()
                replies = await engine.handle(Inbound("bench", who, Kind.CHOICE, f"{i}-s",
                                                      "send"))
                submit.append(time.perf_counter() - t0)
                reference = replies[0].text.params["reference"]
                incident = await services.storage.incidents.get(reference)
                assert incident is not None
                while incident.id not in sender.first:
                    sender.arrived.clear()
                    await sender.arrived.wait()
                total.append(sender.first[incident.id] - t0)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await services.close()

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    base50, base99 = pct(submit, 50), pct(submit, 99)
    p50, p99 = pct(total, 50), pct(total, 99)
    print(f"report → first card handed to channel ({reports} reports, SQLite, one at a time)")
    print(f"  engine's own time for the submitting tap (baseline): p50 {base50 * 1000:.1f} ms"
          f"  p99 {base99 * 1000:.1f} ms")
    print(f"  to first card handed to the channel:                  p50 {p50 * 1000:.1f} ms"
          f"  p99 {p99 * 1000:.1f} ms")
    print(f"  ratio to baseline: p50 {p50 / base50:.2f}x  p99 {p99 / base99:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--reports", type=int, default=200)
    args = parser.parse_args()
    configure_logging("console", "error")
    rng = random.Random(1)
    queries = points(args.queries, rng)
    directory = load_directory()
    sample_index = SphereIndex([(s.lat, s.lon) for s in directory.stations])
    compare("sample directory", sample_index, queries, args.queries)
    start = time.perf_counter()
    synthetic = SphereIndex(points(args.synthetic, rng))
    print(f"built the synthetic index in {time.perf_counter() - start:.2f} s")
    compare("synthetic", synthetic, queries, max(20, args.queries // 50))
    asyncio.run(dispatch_latency(args.reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
