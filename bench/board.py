"""Benchmark the board's live stream (run on demand, never in CI).

`ess serve`'s application (SQLite, the board channel) in this process; N viewers, in a
second process (as browsers would be elsewhere), hold `/board/events` open (one connection
each) while reports arrive through the one inbound router at a fixed rate. Printed, from one
run:

1. event → every viewer: from the report's commit (its `created_at`) to each viewer
   receiving its `reported` event, p50 / p99 over every (report, viewer) pair;
2. the report flow's messages/s flat out, without viewers and with them, as a ratio: the
   median of interleaved rounds (alone, then with the viewers connected).

    .venv/bin/python -m bench.board [--viewers 200] [--rate 20] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from yarl import URL

from bot.app import SERVICES, create_app
from bot.services import Services
from bot.staff import StaffMember
from bot.types import Inbound, Kind, Location, LocationSource, utcnow
from channels.board.auth import hash_password
from channels.registry import ChannelRegistry
from config.settings import Settings

PASSWORD = "bench password 123"


async def one_report(services: Services, n: int) -> None:
    sender = f"bench-{n}"
    steps: list[tuple[Kind, Any]] = [
        (Kind.START, None), (Kind.CHOICE, "threat"),
        (Kind.LOCATION, Location(16.8211, 100.2659, LocationSource.REPORTER_PIN)),
        (Kind.TEXT, "0812345678"), (Kind.CHOICE, "send")]
    for i, (kind, payload) in enumerate(steps):
        await services.inbound.handle(Inbound("bench", sender, kind, f"{sender}-{i}",
                                              payload))


async def flat_out(services: Services, start: int, seconds: float) -> float:
    """Messages/s of back-to-back reports (5 messages each), 8 at a time."""
    done = 0
    end = time.perf_counter() + seconds
    counter = iter(range(start, start + 10**9))

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await one_report(services, next(counter))
            done += 5

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return done / (time.perf_counter() - began)


async def viewer(http: aiohttp.ClientSession, url: str, lags: list[float],
                 ready: asyncio.Event, count: list[int], viewers: int) -> None:
    async with http.get(f"{url}/board/events") as resp:
        count[0] += 1
        if count[0] == viewers:
            ready.set()
        async for raw in resp.content:
            if not raw.strip():
                continue
            line = raw.decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if data["kind"] == "reported" and data.get("row"):
                    created = datetime.fromisoformat(data["row"]["created_at"])
                    lags.append((utcnow() - created).total_seconds())


async def watch(url: str, cookie: str, viewers: int) -> None:
    """The viewers' process: prints "ready", then each lag (s) per line until stdin closes."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[url])
    jar.update_cookies({"ess_board": cookie}, URL(url))
    connector = aiohttp.TCPConnector(limit=viewers + 10)
    lags: list[float] = []
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        ready, count = asyncio.Event(), [0]
        tasks = [asyncio.create_task(viewer(http, url, lags, ready, count, viewers))
                 for _ in range(viewers)]
        await asyncio.wait_for(ready.wait(), 60)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(lags), flush=True)


async def main(viewers: int, rate: float, seconds: float, rounds: int) -> None:
    folder = tempfile.mkdtemp(prefix="ess-bench-board-")
    settings = Settings(data_dir=folder, log_format="console", log_level="error",
                        escalate_after=3600)
    app = create_app(settings, channels=ChannelRegistry.discover(settings, only=["board"]))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    services: Services = app[SERVICES]
    await services.storage.staff.add(StaffMember("bench", "Bench", "en", ("responder",),
                                                 ("TH",)), hash_password(PASSWORD))
    try:
        async with aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[url])
                ) as http, http.post(f"{url}/board/login", allow_redirects=False,
                                     data={"login": "bench", "password": PASSWORD}) as resp:
            assert resp.status == 303, resp.status
            cookie = resp.cookies["ess_board"].value
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.board", "--watch", url, cookie, str(viewers),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
        assert watcher.stdout is not None and watcher.stdin is not None
        assert (await asyncio.wait_for(watcher.stdout.readline(), 120)).strip() == b"ready"
        reports = int(rate * seconds)
        began = time.perf_counter()
        sending = []
        for n in range(reports):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            sending.append(asyncio.create_task(one_report(services, 10**8 + n)))
        await asyncio.gather(*sending)
        await asyncio.sleep(3)  # the last events reach the viewers
        watcher.stdin.close()
        lags = json.loads((await watcher.stdout.readline()) or b"[]")
        await watcher.wait()
        # The flow flat out, alone and then with the same viewers connected, in interleaved
        # rounds: one pair on a loaded 2-core machine swings either way, and the store grows
        # through the run, so a lone "alone" measured first on an empty store flatters it.
        alone: list[float] = []
        loaded: list[float] = []
        for r in range(rounds):
            alone.append(await flat_out(services, (2 * r + 2) * 10**8, seconds / 2))
            watcher = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.board", "--watch", url, cookie, str(viewers),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
            assert watcher.stdout is not None and watcher.stdin is not None
            assert (await asyncio.wait_for(watcher.stdout.readline(), 120)).strip() == b"ready"
            loaded.append(await flat_out(services, (2 * r + 3) * 10**8, seconds / 2))
            watcher.stdin.close()
            await watcher.stdout.read()
            await watcher.wait()
        ratios = [w / a for a, w in zip(alone, loaded, strict=True)]
        lags.sort()
        if not lags:
            raise SystemExit("no viewer received any event")
        p50 = statistics.median(lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"viewers {viewers}, reports {reports} at {rate:g}/s: "
              f"{len(lags)} of {reports * viewers} (report, viewer) deliveries")
        print(f"event → viewer  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
              f"(target p99 < 1000 ms)")
        print(f"report flow     {statistics.median(alone):7.1f} msg/s alone   "
              f"{statistics.median(loaded):7.1f} msg/s with {viewers} viewers   ratio "
              f"{statistics.median(ratios):.2f} median of {rounds} rounds "
              f"({' '.join(f'{x:.2f}' for x in ratios)})   (target ≥ 0.90)")
    finally:
        await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the flow alone and with the viewers")
    parser.add_argument("--watch", nargs=3, metavar=("URL", "COOKIE", "VIEWERS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch:
        asyncio.run(watch(args.watch[0], args.watch[1], int(args.watch[2])))
    else:
        asyncio.run(main(args.viewers, args.rate, args.seconds, max(1, args.rounds)))
    sys.exit(0)
