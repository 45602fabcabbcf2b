"""What a reporter feels: closed-loop LINE reports against `ess serve` and a bare baseline.

Run on demand, never in CI:

    .venv/bin/python -m bench.closed_loop [--users 32] [--rounds 3] [--seconds 8]
                                          [--backends pg,sqlite] [--processes 1,2]

The generator hosts the LINE API stand-in itself. Each simulated reporter (a fresh LINE user
for every report) sends one signed webhook, waits until the reply to it reaches the stand-in
(matched by reply token, or by push target), and only then sends the next step; latency is
webhook sent → reply received. The five steps: follow, the incident type, the location pin,
the call-back number, and "send" (the submit).

**Which reply ends the submit.** ESS answers "send" twice: the reply (by token) asks the
optional follow-up question, and the receipt ("received, reference ESS-…") comes a moment
later by push, from the dispatcher's outbox. The reporter is told the report is in only by
the receipt, so the submit ends when *both* arrived (in practice the receipt); the reply's
own latency is printed too (`submit-reply`).

Beside ESS, in the same run and in interleaved rounds on the same servers, a bare baseline
does the least work the same report needs: verify the signature, parse the body, one Redis
round trip (a pipelined GET + SET of the conversation's state), a PostgreSQL insert on the
last step, one reply call. On SQLite the same with the state and the insert in one SQLite
file (WAL, synchronous=FULL, one write per step). ESS runs with escalation and reminder
timers of a day, so no timer fires during the run.

Printed per backend and process count: reports/s, steps/s, p50/p99 per step, CPU ms per
report of each server process (utime + stime from /proc/PID/stat, before/after each round),
errors, and reports stored vs completed (they must be equal). The machine may be shared:
the ratios to the baseline of the same run are the figures to compare. Everything is on
loopback and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-channel-secret"
TOKEN = "bench-access-token"
STEP_TIMEOUT = 30.0  # one step's reply; a miss is an error, and that reporter gives up
START_TIMEOUT = 60.0
STEPS = ("follow", "type", "location", "phone", "submit")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Fixed keys so that two `ess serve` processes share one database (seals and look-ups).
KEYS = {name: base64.b64encode(bytes([i]) * 32).decode()
        for i, name in enumerate(("ESS_SECRET_KEYS", "ESS_LOOKUP_KEY", "ESS_LOG_KEY"), 1)}


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live children of `pid` (PostgreSQL's backends, its autovacuum workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(_stat(stat.parent.name)[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def family_cpu(pid: int) -> float:
    """CPU seconds of a server and its children (PostgreSQL's backends): its own, its
    reaped children's, and its live children's."""
    total = sum(int(f) for f in _stat(pid)[11:15]) / CLK_TCK
    for child in children(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += sum(int(x) for x in _stat(child)[11:15]) / CLK_TCK
    return total



# -- the webhooks of one report -------------------------------------------------------------

def event(user: str, n: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "mode": "active", "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user}, "replyToken": f"rt{user}x{n}",
            "webhookEventId": f"01B{user[-24:]}{n:02d}",
            "deliveryContext": {"isRedelivery": False}, **extra}


def step_body(user: str, n: int) -> bytes:
    steps = (
        lambda: event(user, 0, "follow", follow={"isUnblocked": False}),
        lambda: event(user, 1, "postback", postback={"data": "threat"}),
        lambda: event(user, 2, "message", message={"id": f"{user[-8:]}2", "type": "location",
                                                   "latitude": 16.82, "longitude": 100.26}),
        lambda: event(user, 3, "message", message={"id": f"{user[-8:]}3", "type": "text",
                                                   "quoteToken": "q", "text": "081-234-5678"}),
        lambda: event(user, 4, "postback", postback={"data": "send"}),
    )
    return json.dumps({"destination": "U" + "0" * 32, "events": [steps[n]()]}).encode()


# -- the LINE API stand-in, matching every reply to the reporter waiting for it ---------------

@dataclass
class Waiting:
    reply: asyncio.Future[float]
    push: asyncio.Future[float] | None = None


class LineStandIn:
    """Answers reply, push and profile calls; resolves the waiting reporter's futures."""

    def __init__(self) -> None:
        self.by_token: dict[str, Waiting] = {}
        self.by_user: dict[str, Waiting] = {}
        self.unmatched = 0
        self.others = 0  # pushes to responder groups (the report's card)
        self.calls = 0  # every call to the LINE API: reply, push, profile

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/bot/message/reply", self.reply)
        app.router.add_post("/v2/bot/message/push", self.push)
        app.router.add_get("/v2/bot/profile/{user}", self.profile)
        return app

    @staticmethod
    def _sent(data: dict[str, Any]) -> web.Response:
        return web.json_response({"sentMessages": [
            {"id": str(i), "quoteToken": "q"} for i, _ in enumerate(data.get("messages", []))]})

    async def reply(self, request: web.Request) -> web.Response:
        self.calls += 1
        data = await request.json()
        waiting = self.by_token.pop(str(data.get("replyToken")), None)
        if waiting is not None and not waiting.reply.done():
            waiting.reply.set_result(time.perf_counter())
        else:
            self.unmatched += 1
            if os.environ.get("BENCH_DEBUG"):
                print("unmatched reply", data.get("replyToken"), file=sys.stderr)
        return self._sent(data)

    async def push(self, request: web.Request) -> web.Response:
        self.calls += 1
        data = await request.json()
        to = str(data.get("to"))
        waiting = self.by_user.get(to)
        if waiting is None:
            if to.startswith("U"):
                self.unmatched += 1
                if os.environ.get("BENCH_DEBUG"):
                    print("unmatched push", to, json.dumps(data)[:300], file=sys.stderr)
            else:
                self.others += 1
        elif waiting.push is not None and not waiting.push.done():
            waiting.push.set_result(time.perf_counter())
        elif not waiting.reply.done():
            waiting.reply.set_result(time.perf_counter())  # a reply that went by push
        else:
            self.unmatched += 1
        return self._sent(data)

    async def profile(self, request: web.Request) -> web.Response:
        self.calls += 1
        return web.json_response({"userId": request.match_info["user"], "displayName": "B",
                                  "language": "th"})


# -- the bare baseline (a subprocess of this module) -----------------------------------------

def run_bare(port: int, line_url: str, pg_url: str, redis_url: str, sqlite_path: str) -> None:
    import asyncpg
    import redis.asyncio as aioredis

    async def app_factory() -> web.Application:
        session = ClientSession(connector=TCPConnector(limit=100), trust_env=False)
        reply_url = f"{line_url}/v2/bot/message/reply"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        pool: Any = None
        client: Any = None
        db: Any = None
        if sqlite_path:
            import aiosqlite

            db = await aiosqlite.connect(sqlite_path, isolation_level=None)
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("CREATE TABLE IF NOT EXISTS s (k TEXT PRIMARY KEY, v TEXT)")
            await db.execute("CREATE TABLE IF NOT EXISTS i (k TEXT PRIMARY KEY, v TEXT)")
        else:
            pool = await asyncpg.create_pool(pg_url, min_size=2, max_size=10)
            await pool.execute("CREATE TABLE IF NOT EXISTS bare_reports "
                               "(k text PRIMARY KEY, v text)")
            client = aioredis.Redis.from_url(redis_url, max_connections=50)

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if not hmac.compare_digest(sign(body).encode(),
                                       request.headers.get("X-Line-Signature", "").encode()):
                return web.Response(status=401)
            ev = json.loads(body)["events"][0]
            user = ev["source"]["userId"]
            last = ev.get("postback", {}).get("data") == "send"
            if db is not None:
                await db.execute("INSERT OR REPLACE INTO s VALUES (?, ?)", (user, ev["type"]))
                if last:
                    await db.execute("INSERT INTO i VALUES (?, ?)", (user, "threat"))
            else:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.get(f"bare:{user}")
                    pipe.set(f"bare:{user}", ev["type"], px=600_000)
                    await pipe.execute()
                if last:
                    await pool.execute("INSERT INTO bare_reports VALUES ($1, $2)", user,
                                       "threat")
            payload = json.dumps({"replyToken": ev["replyToken"],
                                  "messages": [{"type": "text", "text": "ok"}]})
            async with session.post(reply_url, data=payload, headers=headers) as response:
                await response.read()
            return web.json_response({})

        async def stored(request: web.Request) -> web.Response:
            if db is not None:
                rows = await db.execute_fetchall("SELECT count(*) FROM i")
                return web.json_response({"stored": rows[0][0]})
            return web.json_response({"stored": await pool.fetchval(
                "SELECT count(*) FROM bare_reports")})

        async def close(app: web.Application) -> None:
            await session.close()
            if db is not None:
                await db.close()
            else:
                await client.aclose()
                await pool.close()

        app = web.Application()
        app.router.add_post("/webhooks/line", handle)
        app.router.add_get("/stored", stored)
        app.on_cleanup.append(close)
        return app

    web.run_app(app_factory(), host="127.0.0.1", port=port, print=None)


# -- the reporters ---------------------------------------------------------------------------

@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    completed: int = 0
    errors: int = 0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    servers: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    stored: int = -1
    unmatched: int = 0
    rounds: list[tuple[float, float]] = field(default_factory=list)
    trips: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Tally) -> None:
        for name, values in other.latencies.items():
            self.latencies[name].extend(values)
        self.completed += other.completed
        self.errors += other.errors
        self.wall += other.wall
        for name, seconds in other.cpu.items():
            self.cpu[name] += seconds
        for name, seconds in other.servers.items():
            self.servers[name] += seconds


class Reporters:
    def __init__(self, line: LineStandIn, session: ClientSession,
                 servers: dict[str, int] | None = None) -> None:
        self.line = line
        self.session = session
        self.serial = 0
        # The shared servers (PostgreSQL's postmaster, Redis): their CPU in each round is
        # the side's, as the two sides never run at once.
        self.servers = servers or {}

    def fresh_user(self) -> str:
        self.serial += 1
        return f"U{os.getpid():08x}{self.serial:024x}"

    async def report(self, url: str, tally: Tally, receipt: bool) -> None:
        """One whole report by a fresh reporter, each step after the previous reply."""
        user = self.fresh_user()
        for n, name in enumerate(STEPS):
            loop = asyncio.get_running_loop()
            waiting = Waiting(loop.create_future(),
                              loop.create_future() if receipt and n == len(STEPS) - 1
                              else None)
            self.line.by_token[f"rt{user}x{n}"] = waiting
            self.line.by_user[user] = waiting
            body = step_body(user, n)
            began = time.perf_counter()
            try:
                async with self.session.post(url, data=body, headers={
                        "X-Line-Signature": sign(body),
                        "Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"webhook {response.status}")
                wanted = [waiting.reply] + ([waiting.push] if waiting.push else [])
                done = await asyncio.wait_for(asyncio.gather(*wanted), STEP_TIMEOUT)
            except (TimeoutError, RuntimeError, OSError) as exc:
                tally.errors += 1

                if os.environ.get("BENCH_DEBUG"):
                    print("error", user, name, repr(exc), file=sys.stderr)
                return
            finally:
                self.line.by_token.pop(f"rt{user}x{n}", None)
                self.line.by_user.pop(user, None)
            if waiting.push is not None:
                tally.latencies["submit-reply"].append((done[0] - began) * 1000)
            tally.latencies[name].append((max(done) - began) * 1000)
        tally.completed += 1

    async def round(self, urls: list[str], users: int, seconds: float, receipt: bool,
                    pids: dict[str, int]) -> Tally:
        """`users` reporters in a closed loop for about `seconds` (each finishes its report)."""
        tally = Tally()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        servers = {name: family_cpu(pid) for name, pid in self.servers.items()}
        deadline = time.perf_counter() + seconds

        async def reporter(index: int) -> None:
            url = urls[index % len(urls)]
            while time.perf_counter() < deadline:
                await self.report(url, tally, receipt)

        began = time.perf_counter()
        await asyncio.gather(*(reporter(i) for i in range(users)))
        tally.wall = time.perf_counter() - began
        for name, pid in pids.items():
            tally.cpu[name] = cpu_seconds(pid) - before[name]
        for name, pid in self.servers.items():
            tally.servers[name] = family_cpu(pid) - servers[name]
        return tally


# -- servers ------------------------------------------------------------------------------

async def wait_http(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up within {START_TIMEOUT:.0f}s")


async def start_ess(port: int, data_dir: str, line_url: str, pg_url: str, redis_url: str,
                    profile: str) -> asyncio.subprocess.Process:
    env = {**os.environ, **KEYS, "ESS_DATA_DIR": data_dir, "ESS_PORT": str(port),
           "ESS_HOST": "127.0.0.1", "ESS_LOG_FORMAT": "json",
           "ESS_LOG_LEVEL": os.environ.get("BENCH_ESS_LOG", "warning"),
           "ESS_LINE_CHANNEL_SECRET": SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
           "ESS_LINE_API_URL": line_url, "ESS_ESCALATE_AFTER": "24h", "ESS_REMIND_AFTER": "24h"}
    env.pop("ESS_DATABASE_URL", None)
    env.pop("ESS_REDIS_URL", None)
    if pg_url:
        env.update(ESS_DATABASE_URL=pg_url, ESS_REDIS_URL=redis_url)
    command = [sys.executable, "-m", "bot.cli", "serve"]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "bot.cli", "serve"]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    await wait_http(f"http://127.0.0.1:{port}/healthz")
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(2)  # SIGINT: a clean stop (a cProfile run writes its file)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def ess_stored(pg_url: str, data_dir: str) -> int:
    if pg_url:
        import asyncpg

        conn = await asyncpg.connect(pg_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM incidents"))
        finally:
            await conn.close()
    import sqlite3

    with contextlib.closing(sqlite3.connect(Path(data_dir) / "ess.db")) as conn:
        return int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])


async def trip_counters(pg_url: str, redis_url: str, line: LineStandIn) -> dict[str, int]:
    """Server-side counters, read before and after a round: PostgreSQL transactions of the
    bench's database (every hot-path statement is its own), Redis commands (those a script
    runs included) and script calls, and LINE API calls."""
    counts = {"LINE": line.calls}
    if pg_url:
        import asyncpg
        import redis.asyncio as aioredis

        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            counts["PG xacts"] = int(await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"))
        finally:
            await conn.close()
        client = aioredis.from_url(redis_url)
        try:
            stats = await client.info("commandstats")
            counts["Redis cmds"] = sum(int(v["calls"]) for v in stats.values())
            counts["Redis scripts"] = sum(int(v["calls"]) for k, v in stats.items()
                                          if k in ("cmdstat_evalsha", "cmdstat_eval"))
        finally:
            await client.aclose()
    return counts


async def counted(pg_url: str, redis_url: str, line: LineStandIn, tally: Tally,
                  run: Awaitable[Tally]) -> Tally:
    before = await trip_counters(pg_url, redis_url, line)
    result = await run
    # PostgreSQL publishes its counters within a second of the transactions.
    await asyncio.sleep(1.1 if pg_url else 0.0)
    after = await trip_counters(pg_url, redis_url, line)
    for name, value in after.items():
        tally.trips[name] += value - before[name]
    return result


async def bare_stored(session: ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/stored") as response:
        return int((await response.json())["stored"])


# -- one backend ------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    from tests.servers import free_port as pick

    return pick()


async def backend_run(backend: str, processes: int, args: argparse.Namespace,
                      pg: Any, rd: Any) -> dict[str, Tally]:
    line = LineStandIn()
    runner = web.AppRunner(line.app(), access_log=None)
    await runner.setup()
    line_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", line_port).start()
    line_url = f"http://127.0.0.1:{line_port}"
    pg_url = pg.new_database() if backend == "pg" else ""
    redis_url = rd.new_url() if backend == "pg" else ""
    tmp = tempfile.mkdtemp(prefix="ess-bench-")
    data_dir = os.path.join(tmp, "data")
    os.mkdir(data_dir)
    ess: list[asyncio.subprocess.Process] = []
    bare: asyncio.subprocess.Process | None = None
    connector = TCPConnector(limit=0)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=STEP_TIMEOUT),
                             trust_env=False) as session:
        try:
            ports = [free_port() for _ in range(processes)]
            for index, port in enumerate(ports):
                profile = f"{args.profile}.{backend}.{index}" if args.profile else ""
                ess.append(await start_ess(port, data_dir, line_url, pg_url, redis_url,
                                           profile))
            bare_port = free_port()
            bare = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.closed_loop", "--bare-server", str(bare_port),
                line_url, pg_url or "-", redis_url or "-",
                str(Path(tmp) / "bare.db") if backend == "sqlite" else "-",
                cwd=ROOT, stdout=subprocess.DEVNULL)
            await wait_http(f"http://127.0.0.1:{bare_port}/stored")
            servers = {"PostgreSQL": pg.proc.pid, "Redis": rd.proc.pid} \
                if backend == "pg" else {}
            reporters = Reporters(line, session, servers)
            ess_urls = [f"http://127.0.0.1:{p}/webhooks/line" for p in ports]
            bare_urls = [f"http://127.0.0.1:{bare_port}/webhooks/line"]
            ess_pids = {f"ess{i}": p.pid for i, p in enumerate(ess)}
            bare_pids = {"bare": bare.pid}
            # Warm both up (imports, pools, caches), then count from here.
            await reporters.round(ess_urls, args.users, 2.0, True, ess_pids)
            await reporters.round(bare_urls, args.users, 1.0, False, bare_pids)
            await asyncio.sleep(1.0)  # the warm-up's outbox drains
            ess_base = await ess_stored(pg_url, data_dir)
            bare_base = await bare_stored(session, bare_port)
            totals = {"ess": Tally(), "bare": Tally()}
            rounds: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                b = await counted(pg_url, redis_url, line, totals["bare"], reporters.round(
                    bare_urls, args.users, args.seconds, False, bare_pids))
                e = await counted(pg_url, redis_url, line, totals["ess"], reporters.round(
                    ess_urls, args.users, args.seconds, True, ess_pids))
                totals["bare"].add(b)
                totals["ess"].add(e)
                rounds.append((e.completed / e.wall, b.completed / b.wall))
            await asyncio.sleep(1.0)
            totals["ess"].stored = await ess_stored(pg_url, data_dir) - ess_base
            totals["bare"].stored = await bare_stored(session, bare_port) - bare_base
            totals["ess"].rounds = rounds
            totals["ess"].unmatched = line.unmatched
            return totals
        finally:
            for process in ess:
                await stop(process)
            if bare is not None:
                await stop(bare)
            await runner.cleanup()


def print_table(backend: str, processes: int, users: int, totals: dict[str, Tally]) -> None:
    e, b = totals["ess"], totals["bare"]
    label = {"pg": "PostgreSQL + Redis", "sqlite": "SQLite"}[backend]
    print(f"\n== {label}, {processes} ess serve process(es), {users} reporters, closed loop ==")
    print(f"{'':8}{'reports/s':>10}{'steps/s':>9}{'CPU ms/report':>15}{'errors':>8}"
          f"{'completed':>11}{'stored':>8}")
    for name, t in (("ess", e), ("bare", b)):
        rate = t.completed / t.wall if t.wall else 0.0
        cpu = sum(t.cpu.values()) * 1000 / max(1, t.completed)
        per = " + ".join(f"{s * 1000 / max(1, t.completed):.1f}" for s in t.cpu.values()) \
            if len(t.cpu) > 1 else ""
        print(f"{name:8}{rate:>10.1f}{rate * len(STEPS):>9.0f}{cpu:>15.2f}{t.errors:>8}"
              f"{t.completed:>11}{t.stored:>8}" + (f"   ({per})" if per else ""))
    print(f"{'step':14}{'ess p50':>9}{'p99':>9}{'bare p50':>10}{'p99':>9}{'p50 x':>8}"
          f"{'p99 x':>8}")
    for name in (*STEPS, "submit-reply"):
        el, bl = e.latencies.get(name, []), b.latencies.get(
            "submit" if name == "submit-reply" else name, [])
        if not el:
            continue
        print(f"{name:14}{pct(el, .5):>9.1f}{pct(el, .99):>9.1f}{pct(bl, .5):>10.1f}"
              f"{pct(bl, .99):>9.1f}{pct(el, .5) / pct(bl, .5):>8.2f}"
              f"{pct(el, .99) / pct(bl, .99):>8.2f}")
    ratios = [r[0] / r[1] for r in e.rounds if r[1]]
    if ratios:
        spread = (f", per round {min(ratios):.2f}–{max(ratios):.2f}"
                  f" (sd {statistics.pstdev(ratios):.2f})")
        rate_e, rate_b = e.completed / e.wall, b.completed / b.wall
        print(f"reports/s ess/bare: {rate_e / rate_b:.2f}{spread}; "
              f"later pushes to reporters (progress) {e.unmatched}")
    for name, t in (("ess", e), ("bare", b)):
        if t.trips:
            print(f"round trips per report, {name}: " + ", ".join(
                f"{k} {v / max(1, t.completed):.1f}" for k, v in t.trips.items()))
    for name, t in (("ess", e), ("bare", b)):
        if t.servers:
            print(f"servers' CPU ms per report, {name}: " + ", ".join(
                f"{k} {v * 1000 / max(1, t.completed):.2f}" for k, v in t.servers.items()))
    if e.stored != e.completed or b.stored != b.completed:
        print("!! reports stored differ from reports completed")


async def main(args: argparse.Namespace) -> None:
    from tests.servers import PostgresServer, RedisServer

    pg = rd = None
    backends = args.backends.split(",")
    if "pg" in backends:
        pg, rd = PostgresServer(), RedisServer()
        pg.start()
        rd.start()
    try:
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"on {os.cpu_count()} cores")
        for backend in backends:
            for processes in (int(p) for p in args.processes.split(",")):
                if backend == "sqlite" and processes > 1:
                    continue  # one SQLite file, one process
                totals = await backend_run(backend, processes, args, pg, rd)
                print_table(backend, processes, args.users, totals)
        load = os.getloadavg()
        print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if rd is not None:
            rd.close()
        if pg is not None:
            pg.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="per round and side")
    parser.add_argument("--backends", default="pg,sqlite")
    parser.add_argument("--processes", default="1")
    parser.add_argument("--profile", default="",
                        help="run ess serve under cProfile, writing PROFILE.<backend>.<n>")
    parser.add_argument("--bare-server", nargs=5, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.bare_server:
        port, line_url, pg_url, redis_url, sqlite_path = cli.bare_server
        run_bare(int(port), line_url, "" if pg_url == "-" else pg_url,
                 "" if redis_url == "-" else redis_url,
                 "" if sqlite_path == "-" else sqlite_path)
    else:
        cli.users, cli.rounds = max(1, cli.users), max(1, cli.rounds)
        asyncio.run(main(cli))
