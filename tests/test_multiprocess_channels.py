"""No per-process state: two `ess serve` processes behind a plain round-robin proxy.

Each new connection goes to the other process (tests/rr_proxy.py), as a load balancer
without sticky sessions would send it: a web-chat reporter whose socket lands on the other
process continues with the replay and finishes the report; STOP sent to one process holds on
the other; the rate limits count the frames of both. And STOP survives a restart of the
embedded (SQLite) service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from channels.sms import generic_signature
from tests.rr_proxy import RoundRobinProxy
from tests.servers import free_port
from tests.test_multiprocess import KEY, Process, _wait_ready, spawn

SMS_SECRET = "generic-secret"
ME = "+66812345678"
FRAMES_PER_ADDRESS = 30  # ESS_LIMIT_WEB_FRAMES in the limits test


def env_for(tmp_path: Path, n: int, port: int, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(tmp_path / f"p{n}"),
            "ESS_PORT": str(port), "ESS_LOG_FORMAT": "json", "ESS_LOG_LEVEL": "warning",
            "ESS_SECRET_KEYS": KEY, "ESS_WEBCHAT_SECRET": "w" * 32,
            "ESS_SMS_GENERIC_SECRET": SMS_SECRET, "ESS_SMS_PROVIDER": "log", **extra}


async def stop_all(processes: list[Process]) -> None:
    for p in processes:
        if p.alive:
            p.proc.terminate()
    for p in processes:
        try:
            await asyncio.to_thread(p.proc.wait, 30)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


@contextlib.asynccontextmanager
async def two_behind_a_proxy(tmp_path: Path, pg_url: str, redis_url: str, **extra: str
                             ) -> AsyncIterator[tuple[list[Process], RoundRobinProxy]]:
    processes = []
    for n in range(2):
        port = free_port()
        env = env_for(tmp_path, n, port, ESS_DATABASE_URL=pg_url, ESS_REDIS_URL=redis_url,
                      **extra)
        processes.append(Process(port, spawn(env, tmp_path / f"p{n}.log")))
    proxy = RoundRobinProxy([p.port for p in processes])
    try:
        async with aiohttp.ClientSession() as http:
            for p in processes:
                await _wait_ready(http, p)
        await proxy.start()
        yield processes, proxy
    finally:
        await proxy.close()
        await stop_all(processes)


class Page:
    """A web-chat page's side of the protocol: what it has seen, what is pending."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.seq = 0
        self.messages: list[dict[str, Any]] = []

    async def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = await self.ws.receive_json(timeout=30)  # a guard
        if frame["type"] == "message":
            assert frame["seq"] == self.seq + 1, "a message was skipped or repeated"
            self.seq = frame["seq"]
            self.messages.append(frame)
        return frame

    async def hello(self, token: str | None) -> str:
        await self.ws.send_json({"type": "hello", "token": token, "after": self.seq,
                                 "lang": "en"})
        welcome = await self.frame()
        assert welcome["type"] == "welcome"
        return str(welcome["token"])

    async def send(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        """Send, then the messages up to its ack."""
        start = len(self.messages)
        await self.ws.send_json(frame)
        while (got := await self.frame())["type"] != "ack":
            assert got["type"] == "message", got
        assert got["id"] == frame["id"]
        return self.messages[start:]


async def test_a_reporter_moved_to_the_other_process_finishes_the_report(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    async with two_behind_a_proxy(tmp_path, pg_url, redis_url) as (processes, proxy), \
            aiohttp.ClientSession() as http:
        page = Page(await http.ws_connect(f"{proxy.url}/chat/ws"))
        token = await page.hello(None)
        greeting = await page.send({"type": "start", "id": "s1", "flow": "report"})
        kind = greeting[-1]["choices"][0]["value"]
        assert (await page.send({"type": "choice", "id": "c1", "value": kind}))[-1]["ask"] \
            == "location"
        seen_before_drop = page.seq
        # The location is handled on the first process, and the connection drops before the
        # page sees the answer (the phone network went away).
        await page.ws.send_json({"type": "location", "id": "l1", "lat": 16.8211,
                                 "lon": 100.2659, "source": "device"})
        conversation = token.partition(".")[0]
        for _ in range(600):  # bounded: until the first process stored its answer
            if await transcript_length(pg_url, redis_url, conversation) > seen_before_drop:
                break
            await asyncio.sleep(0.05)
        await page.ws.close()
        page.seq, page.messages = seen_before_drop, page.messages[:seen_before_drop]

        page.ws = await http.ws_connect(f"{proxy.url}/chat/ws")
        assert proxy.choices == [0, 1]  # the reconnect landed on the other process
        assert await page.hello(token) == token
        replayed = await page.frame()  # replayed from the store by the second process
        assert replayed["type"] == "message" and replayed["ask"] == "phone"
        # The page resends what was never acked: handled once, acked now.
        assert await page.send({"type": "location", "id": "l1", "lat": 16.8211,
                                "lon": 100.2659, "source": "device"}) == []
        confirm = await page.send({"type": "text", "id": "p1", "text": "0812345678"})
        after_send = await page.send({"type": "choice", "id": "ok",
                                      "value": confirm[-1]["choices"][0]["value"]})
        # The receipt is the outbox's (bot.reports): it follows, from either process.
        while not any("ESS-" in m.get("text", "") for m in after_send):
            after_send.append(await page.frame())  # each read is bounded by its guard
        # A status update sent by the first process reaches the page on the second.
        async with http.post(f"{processes[0].url}/_test/send",
                             json={"address": f"web:{conversation}", "key": "u1"}) as resp:
            assert (await resp.json())["outcome"] == "sent"
        # (The real report's own status updates may come first: the dispatcher runs.)
        for _ in range(20):
            update = await page.frame()
            if "ESS-7K3F9" in update.get("text", ""):
                break
        assert update["type"] == "message" and update["notice"] and "ESS-7K3F9" in \
            update["text"]
        await page.ws.close()
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 1
    finally:
        await conn.close()


async def transcript_length(pg_url: str, redis_url: str, conversation: str) -> int:
    """How many messages the store holds for a web conversation (the Redis list)."""
    import redis.asyncio as aioredis

    from storage.crypto import Sealer, parse_keys

    digest = Sealer(parse_keys(KEY)).digest(f"web:{conversation}")
    client = aioredis.from_url(redis_url)
    try:
        return int(await client.llen(f"ess:w:{{{digest}}}"))
    finally:
        await client.aclose()


async def post_sms(http: aiohttp.ClientSession, process: Process, text: str,
                   message_id: str) -> int:
    body = json.dumps({"id": message_id, "from": ME, "text": text}).encode()
    async with http.post(f"{process.url}/webhooks/sms/generic", data=body, headers={
            "X-ESS-Signature": generic_signature(SMS_SECRET, body)}) as resp:
        return resp.status


async def outcome_on(http: aiohttp.ClientSession, process: Process, key: str) -> str:
    async with http.post(f"{process.url}/_test/send",
                         json={"address": f"sms:{ME}", "key": key}) as resp:
        return str((await resp.json())["outcome"])


async def until_outcome(http: aiohttp.ClientSession, process: Process, wanted: str) -> None:
    for i in range(400):  # bounded: the SMS is handled after its 200
        if await outcome_on(http, process, f"probe-{i}") == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the send never became {wanted!r}")


async def test_stop_on_one_process_holds_on_the_other(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    async with two_behind_a_proxy(tmp_path, pg_url, redis_url) as (processes, _), \
            aiohttp.ClientSession() as http:
        first, second = processes
        assert await outcome_on(http, second, "before") == "sent"
        assert await post_sms(http, first, "STOP", "m1") == 200
        await until_outcome(http, second, "failed")
        assert await outcome_on(http, first, "again") == "failed"
        assert await post_sms(http, second, "unstop", "m2") == 200  # carriers' word
        await until_outcome(http, first, "sent")


async def test_the_rate_limit_holds_across_both_processes(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """The issue's burst: 50 sockets of a burst of frames each, from one address."""
    async with two_behind_a_proxy(tmp_path, pg_url, redis_url,
                                  ESS_LIMIT_WEB_FRAMES=str(FRAMES_PER_ADDRESS),
                                  ESS_LIMIT_WEB_SOCKETS="1000") as (_, proxy), \
            aiohttp.ClientSession() as http:
        started = time.monotonic()
        outcomes: list[dict[str, Any]] = []

        async def one(n: int) -> None:
            ws = await http.ws_connect(f"{proxy.url}/chat/ws")
            page = Page(ws)
            await page.hello(None)
            frames = 19  # with the hello, what one socket may send in its window
            for i in range(frames):
                await ws.send_json({"type": "text", "id": f"{n}-{i}", "text": "help"})
            done = 0
            while done < frames:
                frame = await page.frame()
                if frame["type"] in ("ack", "error"):
                    outcomes.append(frame)
                    done += 1
            await ws.close()

        await asyncio.gather(*(one(n) for n in range(50)))
        elapsed = time.monotonic() - started
    assert set(proxy.choices) == {0, 1}  # both processes took sockets
    acked = [f for f in outcomes if f["type"] == "ack"]
    refused = [f for f in outcomes if f["type"] == "error"]
    assert len(outcomes) == 50 * 19
    # One bucket for both processes: its capacity, plus what refilled during the burst
    # (per process, twice as many would have passed).
    refill = FRAMES_PER_ADDRESS * elapsed / 60
    assert 0 < len(acked) <= FRAMES_PER_ADDRESS + refill + 1
    assert all(f["code"] == "slow_down" and f["id"] and f["retry_after"] >= 1
               for f in refused)


async def test_stop_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, 0, port)
    async with aiohttp.ClientSession() as http:
        for n, text in enumerate(["STOP", ""]):
            process = Process(port, spawn(env, tmp_path / f"run{n}.log"))
            try:
                await _wait_ready(http, process)
                if text:
                    assert await post_sms(http, process, text, "m1") == 200
                    await until_outcome(http, process, "failed")
                else:  # after the restart: still refused, without a new STOP
                    assert await outcome_on(http, process, "after-restart") == "failed"
            finally:
                await stop_all([process])
