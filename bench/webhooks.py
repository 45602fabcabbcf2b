"""Load generator: signed LINE webhooks (whole report flows, many users) against `ess serve`.

Run on demand, never in CI:

    .venv/bin/python -m bench.webhooks [--users 300] [--concurrency 50]

It starts, on free loopback ports: a LINE API stand-in (answers every reply/push with 200),
`ess serve` with a temporary data folder pointed at that stand-in, and a bare aiohttp server
whose handler only verifies the same signature. The same request bodies go to both, and the
figures are printed as ratios to the bare handler measured in the same run. A second figure
is end to end: until every reply reached the LINE stand-in (the webhook answers before the
engine runs). Every loop is bounded; nothing leaves the machine.

Open loop: its users send their five steps without waiting for replies, and it counts the
dispatcher's pushes as replies. For what a reporter feels, use `bench.closed_loop`.
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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

SECRET = "bench-channel-secret"
TOKEN = "bench-access-token"
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


# -- the bare baseline: verify the signature, nothing else ---------------------------------

async def bare_handler(request: web.Request) -> web.Response:
    body = await request.read()
    if not hmac.compare_digest(sign(body).encode(),
                               request.headers.get("X-Line-Signature", "").encode()):
        return web.Response(status=401)
    return web.json_response({})


def run_bare(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhooks/line", bare_handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# -- a cheap LINE API stand-in that counts replies ---------------------------------------------

class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.target = -1
        self.reached = asyncio.Event()

    def expect(self, total: int) -> None:
        self.target = total
        if self.messages >= total:
            self.reached.set()

    async def handle(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.messages += 1
        if self.messages == self.target:
            self.reached.set()
        return web.json_response({"sentMessages": [
            {"id": str(i), "quoteToken": "q"} for i, _ in enumerate(data.get("messages", []))]})


# -- the flows ----------------------------------------------------------------------------

def event(user: str, n: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "mode": "active", "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user}, "replyToken": f"rt-{user}-{n}",
            "webhookEventId": f"01BENCH{user[-12:]}{n:04d}",
            "deliveryContext": {"isRedelivery": False}, **extra}


def report_flow(index: int) -> list[bytes]:
    """The five webhooks of one whole report by one user."""
    user = f"U{index:032x}"
    steps = [
        event(user, 0, "follow", follow={"isUnblocked": False}),
        event(user, 1, "postback", postback={"data": "threat"}),
        event(user, 2, "message", message={"id": f"{index}2", "type": "location",
                                           "latitude": 16.82, "longitude": 100.26}),
        event(user, 3, "message", message={"id": f"{index}3", "type": "text",
                                           "quoteToken": "q", "text": "081-234-5678"}),
        event(user, 4, "postback", postback={"data": "send"}),
    ]
    return [json.dumps({"destination": "U" + "0" * 32, "events": [s]}).encode()
            for s in steps]


async def drive(url: str, flows: list[list[bytes]], concurrency: int
                ) -> tuple[float, list[float], int]:
    """Each user's steps in order, `concurrency` users at a time; latencies in ms."""
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for flow in flows:
        queue.put_nowait(flow)

    async def worker(session: ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            flow = queue.get_nowait()
            for body in flow:
                began = time.perf_counter()
                async with session.post(url, data=body, headers={
                        "X-Line-Signature": sign(body),
                        "Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append((time.perf_counter() - began) * 1000)

    connector = TCPConnector(limit=concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=30)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return elapsed, latencies, failures


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


async def settle(counter: Counter, total: int) -> None:
    """Until the LINE stand-in got `total` replies in all (or the drain timeout)."""
    counter.expect(total)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(counter.reached.wait(), DRAIN_TIMEOUT)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(users: int, concurrency: int) -> None:
    counter = Counter()
    line_app = web.Application()
    line_app.router.add_post("/v2/bot/message/reply", counter.handle)
    line_app.router.add_post("/v2/bot/message/push", counter.handle)
    runner = web.AppRunner(line_app)
    await runner.setup()
    line_port, ess_port, bare_port = free_port(), free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", line_port).start()

    data_dir = tempfile.mkdtemp(prefix="ess-bench-")
    env = {**os.environ, "ESS_DATA_DIR": data_dir, "ESS_PORT": str(ess_port),
           "ESS_HOST": "127.0.0.1", "ESS_LOG_LEVEL": "warning",
           "ESS_LINE_CHANNEL_SECRET": SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
           "ESS_LINE_API_URL": f"http://127.0.0.1:{line_port}"}
    ess = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "serve", env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL)
    bare = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bare-server", str(bare_port), cwd=ROOT,
        stdout=subprocess.DEVNULL)
    try:
        await wait_http(f"http://127.0.0.1:{ess_port}/healthz")
        await wait_http(f"http://127.0.0.1:{bare_port}/")
        flows = [report_flow(i) for i in range(users)]
        # Warm both up with flows of their own (new users) so imports and caches are paid.
        warm = [report_flow(10_000_000 + i) for i in range(min(20, users))]
        await drive(f"http://127.0.0.1:{bare_port}/webhooks/line", warm, concurrency)
        await drive(f"http://127.0.0.1:{ess_port}/webhooks/line", warm, concurrency)
        await settle(counter, len(warm) * 5)
        counter.reached.clear()
        expected = len(warm) * 5 + users * 5

        bare_time, bare_lat, bare_fail = await drive(
            f"http://127.0.0.1:{bare_port}/webhooks/line", flows, concurrency)
        began = time.perf_counter()
        ess_time, ess_lat, ess_fail = await drive(
            f"http://127.0.0.1:{ess_port}/webhooks/line", flows, concurrency)
        await settle(counter, expected)
        end_to_end = time.perf_counter() - began
    finally:
        for process in (ess, bare):
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
        await runner.cleanup()

    requests = users * 5
    bare_rps, ess_rps = requests / bare_time, requests / ess_time
    print(f"{users} users x 5 webhooks = {requests} requests, concurrency {concurrency}, "
          f"loopback, one process each")
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    print(f"{'bare signature check':24}{bare_rps:>10.0f}{pct(bare_lat, .5):>10.2f}"
          f"{pct(bare_lat, .99):>10.2f}{bare_fail:>8}")
    print(f"{'ess serve (LINE)':24}{ess_rps:>10.0f}{pct(ess_lat, .5):>10.2f}"
          f"{pct(ess_lat, .99):>10.2f}{ess_fail:>8}")
    print(f"ratios ess/bare: throughput {ess_rps / bare_rps:.2f}x, "
          f"p50 {pct(ess_lat, .5) / pct(bare_lat, .5):.2f}x, "
          f"p99 {pct(ess_lat, .99) / pct(bare_lat, .99):.2f}x")
    delivered = counter.messages - (expected - requests)
    print(f"end to end (until every reply reached the LINE stand-in): "
          f"{requests / end_to_end:.0f} events/s = {(requests / end_to_end) / bare_rps:.2f}x "
          f"the bare handler's rate; replies delivered {delivered}/{requests}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare(args.bare_server)
    else:
        asyncio.run(main(max(1, args.users), max(1, args.concurrency)))
