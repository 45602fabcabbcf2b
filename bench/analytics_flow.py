"""The report flow's rate while an analyst refreshes `/board/analytics` (run by
`python -m bench.analytics`; see its docstring). One `ess serve` on PostgreSQL + Redis with a
year of synthetic incidents, the closed-loop reporters of bench/closed_loop.py, and an
analyst: a board account (its second factor enrolled) reloading the page in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, CookieJar, TCPConnector, web
from yarl import URL

from bench.closed_loop import (
    KEYS,
    ROOT,
    LineStandIn,
    Reporters,
    children,
    cpu_seconds,
    family_cpu,
    free_port,
    start_ess,
    stop,
)
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board import TOTP_ROLES, totp
from channels.board.auth import COOKIE, hash_password
from config.settings import Settings
from storage.factory import make_sealer, open_storage

PASSWORD = "bench-analyst-password-1"
ANALYST = StaffMember("bench-analyst", "Bench Analyst", "en", ("analyst",), ("TH",))
# The provinces with the most stations in the shipped directory: one analyst each, so no two
# of them (nor the national one) share figures.
PROVINCES = ("10", "30", "34", "40", "31", "33", "50", "80", "41", "45", "46", "47")
PAGE = "/board/analytics?days=365&lang=en"
HUMAN_PAUSE = 5.0  # the page does not refresh itself: a person reloads every few seconds


def analysts(count: int) -> list[StaffMember]:
    """`count` analysts: the national one, then one per province of PROVINCES."""
    if not 1 <= count <= len(PROVINCES) + 1:
        raise SystemExit(f"--analysts: 1 to {len(PROVINCES) + 1}")
    return [ANALYST] + [StaffMember(f"bench-analyst-{code}", f"Analyst {code}", "en",
                                    ("analyst",), (code,)) for code in PROVINCES[:count - 1]]


async def enrol(data_dir: str, pg_url: str, redis_url: str,
                members: list[StaffMember]) -> dict[str, bytes | None]:
    """The analysts' accounts, written through the stores with the server's own keys; each
    one's second-factor secret (None without one)."""
    settings = Settings(data_dir=data_dir, log_format="console", database_url=pg_url,
                        redis_url=redis_url, secret_keys=KEYS["ESS_SECRET_KEYS"],
                        lookup_key=KEYS["ESS_LOOKUP_KEY"], log_key=KEYS["ESS_LOG_KEY"])
    storage = await open_storage(settings, make_sealer(settings))
    try:
        secrets: dict[str, bytes | None] = {}
        for member in members:
            await storage.staff.add(member, hash_password(PASSWORD))
            secrets[member.login] = None
            if set(member.roles) & set(TOTP_ROLES):
                secrets[member.login] = totp.new_secret()
                await storage.staff.set_totp(member.login, secrets[member.login])
        return secrets
    finally:
        await storage.close()


async def sign_in(session: ClientSession, base: str, login: str, secret: bytes | None) -> str:
    """Sign an analyst in; its session cookie (handed to the browser process)."""
    code = totp.code_at(secret, totp.step_of(utcnow())) if secret else ""
    async with session.post(f"{base}/board/login", allow_redirects=False, data={
            "login": login, "password": PASSWORD, "code": code,
            "lang": "en"}) as response:
        await response.read()
        if response.status != 303:
            raise SystemExit(f"bench: the analyst could not sign in ({response.status})")
    async with session.get(f"{base}{PAGE}", allow_redirects=False) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"bench: the analytics page answered {response.status}")
    cookie = session.cookie_jar.filter_cookies(URL(base + "/board")).get(COOKIE)
    if cookie is None:
        raise SystemExit("bench: the analyst's session cookie is missing")
    return cookie.value


def pin_threads(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` onto `cores` (threads and processes it starts later inherit)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cores)


def pin_tree(pid: int, cores: set[int]) -> None:
    """`pid`, its threads and its children's (the postmaster's backends) onto `cores`."""
    pin_threads(pid, cores)
    for child in children(pid):
        pin_tree(child, cores)


async def analyst(base: str, cookies: str, pause: float) -> None:
    """The analysts' browsers, in their own process (`--analyst`): each session of
    `cookies` (comma-separated) reloads the page, `pause` s apart (0: one after another),
    until stdin closes; then print every load's seconds."""
    loads: list[float] = []
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def watch_stdin() -> None:
        await loop.run_in_executor(None, sys.stdin.read)
        stopped.set()

    async def reload(session: ClientSession) -> None:
        while not stopped.is_set():
            began = time.perf_counter()
            async with session.get(f"{base}{PAGE}", allow_redirects=False) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"bench: the analytics page answered {response.status}")
            loads.append(time.perf_counter() - began)
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopped.wait(), pause)

    watcher = asyncio.create_task(watch_stdin())
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(ClientSession(
            trust_env=False, timeout=ClientTimeout(total=120),
            headers={"Cookie": f"{COOKIE}={cookie}"})) for cookie in cookies.split(",")]
        print("ready", flush=True)
        await asyncio.gather(*(reload(session) for session in sessions))
    await watcher
    print(json.dumps(loads), flush=True)


def _cpu(name: str, pid: int) -> float:
    # PostgreSQL works in its backends; the bench's own children (ess serve, the servers)
    # are counted under their own names, not the bench's.
    return family_cpu(pid) if name == "postgres" else cpu_seconds(pid)


class Browser:
    """The analysts' process, started for one round and stopped after it."""

    def __init__(self, base: str, cookies: list[str], pause: float) -> None:
        self.args = (base, ",".join(cookies), f"{pause:g}")
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Browser:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.analytics_flow", "--analyst", *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise SystemExit("bench: the analyst's process did not start")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def loads(self) -> list[float]:
        assert self.process is not None and self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        out = await asyncio.wait_for(self.process.stdout.read(), 150)
        await self.process.wait()
        return [float(x) for x in json.loads(out.decode().strip().splitlines()[-1])]

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@dataclass
class Side:
    """One side of a round: reports/s, errors, CPU ms per report of each process, the
    analyst's page loads."""

    rate: float
    errors: int
    cpu: dict[str, float]
    loads: list[float] = field(default_factory=list)


async def one_side(reporters: Reporters, urls: list[str], users: int, seconds: float,
                   pids: dict[str, int], browser: Browser | None,
                   spy: str = "") -> Side:
    pids = {**pids, **({"analyst": browser.pid} if browser else {})}
    before = {name: _cpu(name, pid) for name, pid in pids.items()}
    recorder = None
    if spy:
        recorder = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"), "record", "-r", "100", "-d",
            f"{seconds:g}", "-p", str(pids["ess"]), "-f", "raw", "-o", spy,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tally = await reporters.round(urls, users, seconds, True, {})
    cpu = {name: (_cpu(name, pid) - before[name]) * 1000 / max(1, tally.completed)
           for name, pid in pids.items()}
    loads = await browser.loads() if browser else []
    if recorder is not None:
        await recorder.wait()
    return Side(tally.completed / tally.wall, tally.errors, cpu, loads)


async def flow(rows: int, users: int, seconds: float, rounds: int, now: datetime,
               spy: str = "", pause: float = HUMAN_PAUSE, pin: bool = False,
               count: int = 1) -> None:
    from bench.analytics import fill_postgres
    from tests.servers import PostgresServer, RedisServer

    pg, rd = PostgresServer(), RedisServer()
    pg.start()
    rd.start()
    line = LineStandIn()
    runner = web.AppRunner(line.app(), access_log=None)
    await runner.setup()
    line_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", line_port).start()
    pg_url, redis_url = pg.new_database(), rd.new_url()
    data_dir = os.path.join(tempfile.mkdtemp(prefix="ess-bench-"), "data")
    os.mkdir(data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ess = None
    try:
        ess = await start_ess(port, data_dir, f"http://127.0.0.1:{line_port}", pg_url,
                              redis_url, "")  # it migrates the database
        began = time.perf_counter()
        await fill_postgres(pg_url, rows, now)
        members = analysts(count)
        secrets = await enrol(data_dir, pg_url, redis_url, members)
        print(f"\n== report flow under an analyst: ess serve on PostgreSQL + Redis, {rows:,} "
              f"incidents (written in {time.perf_counter() - began:.0f} s), {users} reporters, "
              f"{seconds:g} s per side and round; {count} analyst(s) (national"
              f"{', then one per province' if count > 1 else ''}), their browsers in their "
              "own process ==")
        timeout = ClientTimeout(total=120)
        async with ClientSession(connector=TCPConnector(limit=0), trust_env=False,
                                 timeout=ClientTimeout(total=30)) as reporters_http, \
                ClientSession(cookie_jar=CookieJar(unsafe=True, treat_as_secure_origin=[base]),
                              trust_env=False,
                              timeout=timeout) as board:
            cookies = [await sign_in(board, base, m.login, secrets[m.login]) for m in members]
            reporters = Reporters(line, reporters_http)
            urls = [f"{base}/webhooks/line"]
            assert pg.proc is not None and rd.proc is not None
            pids = {"ess": ess.pid, "bench": os.getpid(), "postgres": pg.proc.pid,
                    "redis": rd.proc.pid}
            if pin:
                # The clients (reporters, LINE stand-in, the analyst's browser, which this
                # process starts) on the last core, the servers on the others: what the
                # flow loses is then the servers' work for the analyst, not its client's.
                cores = sorted(os.sched_getaffinity(0))
                if len(cores) < 2:
                    raise SystemExit("--pin needs two cores at least")
                servers, clients = set(cores[:-1]), {cores[-1]}
                pin_threads(os.getpid(), clients)
                for name in ("ess", "postgres", "redis"):
                    pin_tree(pids[name], servers)
                print(f"pinned: servers on cores {sorted(servers)}, clients on {cores[-1]}")
            await reporters.round(urls, users, 2.0, True, {})  # warm-up
            # The page on its own, no reporters: what a load costs without the contention.
            quiet: list[float] = []
            for _ in range(5):
                began = time.perf_counter()
                async with board.get(f"{base}{PAGE}", allow_redirects=False) as response:
                    await response.read()
                quiet.append(time.perf_counter() - began)
            # The first computes the figures; the others within ESS_ANALYTICS_FRESH reuse
            # them and wait for their turn under ESS_ANALYTICS_PACE.
            print(f"page alone: first load {quiet[0]:.2f} s, then p50 "
                  f"{statistics.median(quiet[1:]):.2f} s over {len(quiet) - 1} loads; "
                  + ", ".join(f"{name}={os.environ.get(name, 'default')}" for name in
                              ("ESS_ANALYTICS_FRESH", "ESS_ANALYTICS_PACE")))
            kinds = {"flat out": 0.0, f"every {pause:g} s": pause}
            print(f"{'round':<7}{'analyst':<12}{'alone/s':>9}{'analyst/s':>11}{'ratio':>7}"
                  f"{'errors':>8}{'page loads':>12}{'page p50 s':>12}")
            ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
            sides: dict[str, list[Side]] = {"alone": [], **{kind: [] for kind in kinds}}
            for k in range(rounds):
                alone = await one_side(reporters, urls, users, seconds, pids, None)
                sides["alone"].append(alone)
                for kind, gap in kinds.items():
                    async with Browser(base, cookies, gap) as browser:
                        busy = await one_side(reporters, urls, users, seconds, pids, browser,
                                              f"{spy}.{k + 1}" if spy and not gap else "")
                    sides[kind].append(busy)
                    ratios[kind].append(busy.rate / alone.rate if alone.rate else float("nan"))
                    p50 = statistics.median(busy.loads) if busy.loads else float("nan")
                    print(f"{k + 1:<7}{kind:<12}{alone.rate:>9.1f}{busy.rate:>11.1f}"
                          f"{ratios[kind][-1]:>7.2f}{alone.errors + busy.errors:>8}"
                          f"{len(busy.loads):>12}{p50:>12.2f}")
            pooled = statistics.fmean(s.rate for s in sides["alone"])
            for kind, values in ratios.items():
                # Pooled: mean rate over every round of the side / alone's, so one round's
                # swing (the flow alone moves ±30 % between rounds here) weighs less.
                print(f"reports/s with an analyst reloading {kind} / alone: median "
                      f"{statistics.median(values):.2f} (rounds {min(values):.2f}–"
                      f"{max(values):.2f}), pooled "
                      f"{statistics.fmean(s.rate for s in sides[kind]) / pooled:.2f}")
            names = [*pids, "analyst"]
            print(f"{'CPU ms per report (median of rounds)':<42}" + "".join(
                f"{name:>10}" for name in names))
            for kind, runs in sides.items():
                cells = "".join(f"{statistics.median(s.cpu.get(name, 0.0) for s in runs):>10.1f}"
                                for name in names)
                print(f"  {kind:<40}{cells}")
    finally:
        if ess is not None:
            await stop(ess)
        await runner.cleanup()
        with contextlib.suppress(Exception):
            rd.close()
        pg.close()


if __name__ == "__main__":
    # The analyst's browser (a subprocess of the bench): --analyst BASE COOKIE PAUSE
    if sys.argv[1:2] == ["--analyst"]:
        asyncio.run(analyst(sys.argv[2], sys.argv[3], float(sys.argv[4])))
