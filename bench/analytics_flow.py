"""The report flow's rate while an analyst refreshes `/board/analytics` (run by
`python -m bench.analytics`; see its docstring). One `ess serve` on PostgreSQL + Redis with a
year of synthetic incidents, the closed-loop reporters of bench/closed_loop.py, and an
analyst: a board account (its second factor enrolled) reloading the page in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from datetime import datetime

from aiohttp import ClientSession, ClientTimeout, CookieJar, TCPConnector, web

from bench.closed_loop import KEYS, LineStandIn, Reporters, free_port, start_ess, stop
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board import TOTP_ROLES, totp
from channels.board.auth import hash_password
from config.settings import Settings
from storage.factory import make_sealer, open_storage

PASSWORD = "bench-analyst-password-1"
ANALYST = StaffMember("bench-analyst", "Bench Analyst", "en", ("analyst",), ("TH",))
PAGE = "/board/analytics?days=365&lang=en"


async def enrol(data_dir: str, pg_url: str, redis_url: str) -> bytes | None:
    """The analyst's account, written through the stores with the server's own keys."""
    settings = Settings(data_dir=data_dir, log_format="console", database_url=pg_url,
                        redis_url=redis_url, secret_keys=KEYS["ESS_SECRET_KEYS"],
                        lookup_key=KEYS["ESS_LOOKUP_KEY"], log_key=KEYS["ESS_LOG_KEY"])
    storage = await open_storage(settings, make_sealer(settings))
    try:
        await storage.staff.add(ANALYST, hash_password(PASSWORD))
        if not set(ANALYST.roles) & set(TOTP_ROLES):
            return None
        secret = totp.new_secret()
        await storage.staff.set_totp(ANALYST.login, secret)
        return secret
    finally:
        await storage.close()


async def sign_in(session: ClientSession, base: str, secret: bytes | None) -> None:
    code = totp.code_at(secret, totp.step_of(utcnow())) if secret else ""
    async with session.post(f"{base}/board/login", allow_redirects=False, data={
            "login": ANALYST.login, "password": PASSWORD, "code": code,
            "lang": "en"}) as response:
        await response.read()
        if response.status != 303:
            raise SystemExit(f"bench: the analyst could not sign in ({response.status})")
    async with session.get(f"{base}{PAGE}", allow_redirects=False) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"bench: the analytics page answered {response.status}")


async def analyst(session: ClientSession, base: str, stop_at: asyncio.Event,
                  loads: list[float]) -> None:
    """Reload the page, one after another, until told to stop."""
    while not stop_at.is_set():
        began = time.perf_counter()
        async with session.get(f"{base}{PAGE}", allow_redirects=False) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"bench: the analytics page answered {response.status}")
        loads.append(time.perf_counter() - began)


async def flow(rows: int, users: int, seconds: float, rounds: int, now: datetime) -> None:
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
        secret = await enrol(data_dir, pg_url, redis_url)
        print(f"\n== report flow under an analyst: ess serve on PostgreSQL + Redis, {rows:,} "
              f"incidents (written in {time.perf_counter() - began:.0f} s), {users} reporters, "
              f"{seconds:g} s per side and round ==")
        timeout = ClientTimeout(total=120)
        async with ClientSession(connector=TCPConnector(limit=0), trust_env=False,
                                 timeout=ClientTimeout(total=30)) as reporters_http, \
                ClientSession(cookie_jar=CookieJar(unsafe=True, treat_as_secure_origin=[base]),
                              trust_env=False,
                              timeout=timeout) as board:
            await sign_in(board, base, secret)
            reporters = Reporters(line, reporters_http)
            urls, pids = [f"{base}/webhooks/line"], {"ess": ess.pid}
            await reporters.round(urls, users, 2.0, True, pids)  # warm-up
            # The page on its own, no reporters: what a load costs without the contention.
            quiet: list[float] = []
            for _ in range(5):
                began = time.perf_counter()
                async with board.get(f"{base}{PAGE}", allow_redirects=False) as response:
                    await response.read()
                quiet.append(time.perf_counter() - began)
            print(f"page alone: p50 {statistics.median(quiet):.2f} s over {len(quiet)} loads")
            print(f"{'round':<7}{'alone/s':>9}{'analyst/s':>11}{'ratio':>7}{'errors':>8}"
                  f"{'page loads':>12}{'page p50 s':>12}")
            ratios = []
            for k in range(rounds):
                alone = await reporters.round(urls, users, seconds, True, pids)
                loads: list[float] = []
                stop_at = asyncio.Event()
                task = asyncio.create_task(analyst(board, base, stop_at, loads))
                await asyncio.sleep(0.5)  # the first page load is under way
                busy = await reporters.round(urls, users, seconds, True, pids)
                stop_at.set()
                await task
                a, b = alone.completed / alone.wall, busy.completed / busy.wall
                ratios.append(b / a if a else float("nan"))
                print(f"{k + 1:<7}{a:>9.1f}{b:>11.1f}{ratios[-1]:>7.2f}"
                      f"{alone.errors + busy.errors:>8}{len(loads):>12}"
                      f"{statistics.median(loads) if loads else float('nan'):>12.2f}")
            print(f"reports/s with an analyst / alone: median {statistics.median(ratios):.2f} "
                  f"(rounds {min(ratios):.2f}–{max(ratios):.2f})")
    finally:
        if ess is not None:
            await stop(ess)
        await runner.cleanup()
        with contextlib.suppress(Exception):
            rd.close()
        pg.close()
