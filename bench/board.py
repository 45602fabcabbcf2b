"""Benchmark the board's live stream (run on demand, never in CI).

`ess serve`'s application (SQLite, the board channel) in this process; N viewers, in a
second process (as browsers would be elsewhere), hold `/board/events` open (one connection
each) while reports arrive through the one inbound router at a fixed rate. Printed, from one
run:

1. event → every viewer: from the report's commit (its `created_at`) to each viewer
   receiving its `reported` event, p50 / p99 over every (report, viewer) pair;
2. the report flow's messages/s flat out, without viewers and with them, as a ratio: the
   median of interleaved rounds (alone, then with the viewers connected);
3. this process's CPU per report message (the app and the flow: `time.process_time`, every
   thread) alone and with the viewers, so the fan-out's own cost is a number, and the viewers'
   process's CPU per message beside it (browsers elsewhere in production, the same two cores
   here: their client reads chunks and parses only the frames it measures).

`--pin` keeps the viewers' process on the last core and this process on the others, in
every phase, so the viewers (browsers on other machines in production) take none of the
app's CPU; without it both share every core, as on a developer's laptop.

`--count` adds, per board event of the loaded phases, the board log reads, SSE renderings,
socket writes and event-loop callbacks (task steps and future callbacks) of this process;
counting slows it, so its rates are not comparable.

    .venv/bin/python -m bench.board [--viewers 200] [--rate 20] [--seconds 30] [--rounds 5]
                                    [--pin] [--count]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from asyncio import selector_events
from dataclasses import dataclass
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


@dataclass
class Phase:
    """One flat-out phase: its rate, and this process's CPU per message (the app and the
    flow share it; `process_time` counts every thread, SQLite's included)."""

    rate: float
    messages: int
    cpu: float  # seconds of this process's CPU

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / max(1, self.messages)


async def flat_out(services: Services, start: int, seconds: float) -> Phase:
    """Messages/s of back-to-back reports (5 messages each), 8 at a time."""
    done = 0
    end = time.perf_counter() + seconds
    counter = iter(range(start, start + 10**9))

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await one_report(services, next(counter))
            done += 5

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return Phase(done / (time.perf_counter() - began), done, time.process_time() - cpu)


class Counts:
    """`--count`: what the server does per board event while viewers watch (the counting
    itself costs time, so these runs are not the ones whose rates are reported)."""

    def __init__(self, services: Services, board_channel: Any) -> None:
        self.reads = self.renders = self.writes = self.callbacks = 0
        board: Any = services.storage.board
        after = board.after

        def reading(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return after(*args, **kwargs)

        board.after = reading
        feed = board_channel.feed
        real_render = feed.render

        def rendering(*args: Any) -> bytes:
            self.renders += 1
            return bytes(real_render(*args))

        feed.render = rendering
        socket_transport: Any = vars(selector_events)["_SelectorSocketTransport"]
        real_write = socket_transport.write

        def writing(transport: Any, data: Any) -> None:
            self.writes += 1
            real_write(transport, data)

        socket_transport.write = writing
        loop: Any = asyncio.get_running_loop()
        call_soon = loop.call_soon

        def soon(*args: Any, **kwargs: Any) -> Any:  # every task step and future callback
            self.callbacks += 1
            return call_soon(*args, **kwargs)

        loop.call_soon = soon

    def snapshot(self) -> tuple[int, int, int, int]:
        return self.reads, self.renders, self.writes, self.callbacks


@dataclass
class Tally:
    """The counts and the log's number at the start of a phase."""

    counts: Counts | None
    first: int
    before: tuple[int, int, int, int]

    @classmethod
    async def start(cls, services: Services, counts: Counts | None) -> Tally:
        return cls(counts, await services.storage.board.last(),
                   counts.snapshot() if counts else (0, 0, 0, 0))

    async def per_event(self, services: Services) -> list[float]:
        """Board events, then each count per board event (empty: not counting)."""
        if self.counts is None:
            return []
        events = max(1, await services.storage.board.last() - self.first)
        now = self.counts.snapshot()
        return [events] + [(b - a) / events for a, b in zip(self.before, now, strict=True)]


REPORTED = b'"kind": "reported"'
CREATED = b'"created_at": "'


async def viewer(http: aiohttp.ClientSession, url: str, lags: list[float],
                 ready: asyncio.Event, count: list[int], viewers: int) -> None:
    """One browser's stream, read as cheaply as possible (the viewers stand for browsers
    elsewhere, but share this machine's cores): chunks as they come, and only the frames it
    measures (a report's first event) are looked into, for their `created_at` alone."""
    async with http.get(f"{url}/board/events") as resp:
        count[0] += 1
        if count[0] == viewers:
            ready.set()
        rest = b""  # a frame cut between two reads waits for the rest
        async for chunk in resp.content.iter_any():
            rest = rest + chunk if rest else chunk
            cut = rest.rfind(b"\n\n")
            if cut < 0:
                continue
            frames, rest = rest[:cut], rest[cut + 2:]
            if REPORTED not in frames:
                continue
            now = utcnow()
            for frame in frames.split(b"\n\n"):
                start = frame.find(CREATED) + len(CREATED)
                if REPORTED in frame and start >= len(CREATED):  # a row: its report's commit
                    created = frame[start:frame.index(b'"', start)].decode()
                    lags.append((now - datetime.fromisoformat(created)).total_seconds())


def split_cores() -> tuple[set[int], int]:
    """`--pin`: the cores for the app's process, and the last one for the viewers'."""
    every = sorted(os.sched_getaffinity(0))
    if len(every) < 2:
        raise SystemExit("--pin needs two cores at least")
    return set(every[:-1]), every[-1]


async def watch(url: str, cookie: str, viewers: int, core: int | None) -> None:
    """The viewers' process: prints "ready", its CPU seconds for each line read, and the lags
    (s) as JSON when stdin closes."""
    if core is not None:
        os.sched_setaffinity(0, {core})
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
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(f"{time.process_time():.6f}", flush=True)  # asked: its CPU so far
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(lags), flush=True)


async def cpu_of(watcher: asyncio.subprocess.Process) -> float:
    """The viewers' process's CPU seconds so far (it answers a line on its stdin)."""
    assert watcher.stdin is not None and watcher.stdout is not None
    watcher.stdin.write(b"cpu\n")
    await watcher.stdin.drain()
    return float(await watcher.stdout.readline())


async def main(viewers: int, rate: float, seconds: float, rounds: int, count: bool,
               pin: bool) -> None:
    pinned: list[str] = []  # the viewers' process's arguments
    if pin:  # before any thread starts: SQLite's and the executor's inherit it
        app_cores, viewers_core = split_cores()
        os.sched_setaffinity(0, app_cores)
        pinned = ["--core", str(viewers_core)]
        print(f"pinned: app on cores {sorted(app_cores)}, viewers on {viewers_core}",
              flush=True)
    folder = tempfile.mkdtemp(prefix="ess-bench-board-")
    settings = Settings(data_dir=folder, log_format="console", log_level="error",
                        escalate_after=3600)
    registry = ChannelRegistry.discover(settings, only=["board"])
    app = create_app(settings, channels=registry)
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
            *pinned,
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
        alone: list[Phase] = []
        loaded: list[Phase] = []
        watched: list[float] = []  # the viewers' process: CPU ms per message, loaded phases
        counts = Counts(services, registry.get("board")) if count else None
        for r in range(rounds):
            tally = await Tally.start(services, counts)
            alone.append(await flat_out(services, (2 * r + 2) * 10**8, seconds / 2))
            quiet = await tally.per_event(services)
            watcher = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.board", "--watch", url, cookie, str(viewers),
                *pinned,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
            assert watcher.stdout is not None and watcher.stdin is not None
            assert (await asyncio.wait_for(watcher.stdout.readline(), 120)).strip() == b"ready"
            their = await cpu_of(watcher)
            tally = await Tally.start(services, counts)
            loaded.append(await flat_out(services, (2 * r + 3) * 10**8, seconds / 2))
            watched.append((await cpu_of(watcher) - their) * 1000 / max(1, loaded[-1].messages))
            busy = await tally.per_event(services)
            if busy and quiet:
                print(f"round {r + 1}, per board event ({busy[0] / loaded[-1].messages:.2f} "
                      f"per message), alone → "
                      f"with {viewers} viewers: log reads {quiet[1]:.2f} → {busy[1]:.2f}, "
                      f"renderings {quiet[2]:.2f} → {busy[2]:.2f}, socket writes {quiet[3]:.1f}"
                      f" → {busy[3]:.1f}, loop callbacks {quiet[4]:.1f} → {busy[4]:.1f}",
                      flush=True)
            watcher.stdin.close()
            await watcher.stdout.read()
            await watcher.wait()
        ratios = [w.rate / a.rate for a, w in zip(alone, loaded, strict=True)]
        lags.sort()
        if not lags:
            raise SystemExit("no viewer received any event")
        p50 = statistics.median(lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"viewers {viewers}, reports {reports} at {rate:g}/s: "
              f"{len(lags)} of {reports * viewers} (report, viewer) deliveries")
        print(f"event → viewer  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
              f"(target p99 < 1000 ms)")
        print(f"report flow     {statistics.median(a.rate for a in alone):7.1f} msg/s alone   "
              f"{statistics.median(w.rate for w in loaded):7.1f} msg/s with {viewers} viewers"
              f"   ratio {statistics.median(ratios):.2f} median of {rounds} rounds "
              f"({' '.join(f'{x:.2f}' for x in ratios)})   (target ≥ 0.90)")
        cpu_alone = statistics.median(a.cpu_ms for a in alone)
        cpu_loaded = statistics.median(w.cpu_ms for w in loaded)
        pairs = " ".join(f"{a.cpu_ms:.2f}/{w.cpu_ms:.2f}"
                         for a, w in zip(alone, loaded, strict=True))
        print(f"app CPU / msg   {cpu_alone:7.2f} ms alone   {cpu_loaded:7.2f} ms with viewers"
              f"   fan-out {cpu_loaded - cpu_alone:+.2f} ms   (medians; rounds {pairs})")
        print(f"viewers' CPU    {statistics.median(watched):7.2f} ms per message in their own "
              f"process (browsers elsewhere in production; here "
              f"{'on a core of their own' if pin else 'on the same cores as the app'})")
    finally:
        await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="the paced phase; each flat-out phase lasts half of it")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of the flow alone and with the viewers")
    parser.add_argument("--pin", action="store_true",
                        help="the viewers' process on the last core, this one on the others")
    parser.add_argument("--count", action="store_true",
                        help="count log reads, renderings, writes and loop callbacks per event")
    parser.add_argument("--watch", nargs=3, metavar=("URL", "COOKIE", "VIEWERS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)  # the viewers' core
    args = parser.parse_args()
    if args.watch:
        asyncio.run(watch(args.watch[0], args.watch[1], int(args.watch[2]), args.core))
    else:
        asyncio.run(main(args.viewers, args.rate, args.seconds, max(1, args.rounds),
                         args.count, args.pin))
    sys.exit(0)
