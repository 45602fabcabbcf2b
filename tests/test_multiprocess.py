"""Two `ess serve` processes on one PostgreSQL and one Redis share the work.

Conversations send each message to a random process; a process's outbox dispatcher POSTs each
notification to a recorder here (see tests/serve_for_tests.py). One run is clean; one kills a
process with SIGKILL half-way: the channel retries on the survivor with the same event id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from storage.crypto import Sealer, parse_keys
from tests.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
CONVERSATIONS = 200
TYPES = ["threat", "confinement", "sexual_risk", "deranged", "gathering"]
EXPECTED = [["common.greeting", "report.type.prompt"], ["report.location.prompt"],
            ["report.phone.prompt"], ["report.confirm.prompt"],
            ["report.after.role"]]  # the receipt is an outbox row (bot.reports)
# A submit while PostgreSQL is down says "not received"; one stored while Redis is down (the
# session not saved) says nothing: the outbox tells the reporter.
FINAL_WHEN_DOWN = (["report.not_received"], [])
KEY = base64.urlsafe_b64encode(b"m" * 32).decode()
LEASE = 2.0


def script(i: int) -> list[dict[str, Any]]:
    sender = f"c{i}"
    return [{"sender": sender, "kind": k, "payload": p, "event_id": f"{sender}-{n}"}
            for n, (k, p) in enumerate([("start", None), ("choice", TYPES[i % 5]),
                                        ("location", [6.0 + i / 100, 100.0]),
                                        ("text", f"08{i:08d}"), ("choice", "send")])]


@dataclass
class Process:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    processes: list[Process]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0


async def _wait_ready(http: aiohttp.ClientSession, process: Process) -> None:
    for _ in range(600):  # bounded: 600 × 50 ms
        if not process.alive:
            raise RuntimeError(f"ess serve exited with {process.proc.returncode}")
        try:
            async with http.get(f"{process.url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("ess serve never became ready")


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ess serve` with the test routes (tests/serve_for_tests.py); output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.serve_for_tests"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, pg_url, redis_url) as running:
        yield running


@contextlib.asynccontextmanager
async def running_cluster(tmp_path: Path, pg_url: str, redis_url: str
                          ) -> AsyncIterator[Cluster]:
    deliveries: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        deliveries.append(await request.json())
        return web.json_response({})

    sink = web.Application()
    sink.router.add_post("/sink", record)
    runner = web.AppRunner(sink)
    await runner.setup()
    sink_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    processes = []
    for n in range(2):
        port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(tmp_path / f"p{n}"),
               "ESS_PORT": str(port), "ESS_LOG_FORMAT": "json", "ESS_LOG_LEVEL": "warning",
               "ESS_DATABASE_URL": pg_url, "ESS_REDIS_URL": redis_url,
               "ESS_SECRET_KEYS": KEY, "ESS_LOCK_TTL": "2", "ESS_STORE_TIMEOUT": "5",
               "ESS_TEST_SINK": f"http://127.0.0.1:{sink_port}/sink",
               "ESS_TEST_LEASE": str(LEASE)}
        processes.append(Process(port, spawn(env, tmp_path / f"p{n}.log")))
    try:
        async with aiohttp.ClientSession() as http:
            for p in processes:
                await _wait_ready(http, p)
        yield Cluster(processes, deliveries)
    finally:
        for p in processes:
            if p.alive:
                p.proc.terminate()
        for p in processes:
            try:
                p.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
        await runner.cleanup()


async def converse(http: aiohttp.ClientSession, cluster: Cluster, rng: random.Random,
                   messages: list[dict[str, Any]]) -> list[list[str] | None]:
    """Each message to a random live process; a failed request is retried on another.

    Returns the reply keys per message; None where a retry found the event already handled
    (the process that handled it died before answering: the reply was lost, not the work).
    """
    answers: list[list[str] | None] = []
    for message in messages:
        for attempt in range(400):  # bounded retries, as a channel's redelivery would be
            alive = [p for p in cluster.processes if p.alive]
            target = rng.choice(alive)
            try:
                async with http.post(f"{target.url}/_test/inbound", json=message) as resp:
                    resp.raise_for_status()
                    body = await resp.json()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.05)
                continue
            keys = [r["key"] for r in body["replies"]]
            if keys == ["common.unavailable"]:
                await asyncio.sleep(0.05)
                continue
            answers.append(keys if keys or attempt == 0 else None)
            cluster.answered += 1
            break
        else:
            raise AssertionError(f"message {message['event_id']} was never handled")
    return answers


async def drive(cluster: Cluster, seed: int) -> dict[int, list[list[str] | None]]:
    rng = random.Random(seed)
    sem = asyncio.Semaphore(40)
    results: dict[int, list[list[str] | None]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one(i: int) -> None:
            async with sem:
                results[i] = await converse(http, cluster, rng, script(i))

        await asyncio.gather(*(one(i) for i in range(CONVERSATIONS)))
    return results


async def drained(pg_url: str) -> list[asyncpg.Record]:
    """Wait (bounded) until the dispatchers sent every outbox row; the rows."""
    conn = await asyncpg.connect(pg_url)
    try:
        for _ in range(1200):  # 1200 × 50 ms: well past a lease
            if not await conn.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'"):
                break
            await asyncio.sleep(0.05)
        return list(await conn.fetch("SELECT id, idempotency_key, sent_at FROM outbox"))
    finally:
        await conn.close()


async def incidents_by_conversation(pg_url: str) -> Counter[str]:
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT i.reporter, k.wrapped FROM incidents i "
                                "JOIN vault.data_keys k ON k.record = i.id")
    finally:
        await conn.close()
    # The reporter is sealed with the record's own key (storage/vault.py), itself wrapped by
    # the service key: "test:c<i>" for conversation c<i>.
    sealer = Sealer(parse_keys(KEY))
    return Counter(sealer.with_data_key(sealer.open(w)).open(r).decode().split(":", 1)[1]
                   for r, w in rows)


async def test_two_processes_share_the_work(cluster: Cluster, pg_url: str) -> None:
    results = await drive(cluster, seed=3)
    for i in range(CONVERSATIONS):
        assert results[i] == EXPECTED, f"conversation {i} out of order: {results[i]}"
    per_conversation = await incidents_by_conversation(pg_url)
    assert len(per_conversation) == CONVERSATIONS and set(per_conversation.values()) == {1}
    rows = await drained(pg_url)
    assert len(rows) >= CONVERSATIONS and all(r["sent_at"] for r in rows)
    delivered = Counter(d["id"] for d in cluster.deliveries)
    assert set(delivered) == {r["id"] for r in rows}
    assert set(delivered.values()) == {1}, "a notification was delivered twice"
    # Both processes took part, in handling and in dispatching.
    assert len({d["owner"] for d in cluster.deliveries}) == 2


async def test_kill_9_one_process_mid_run(cluster: Cluster, pg_url: str) -> None:
    victim = cluster.processes[1]

    async def killer() -> None:
        for _ in range(100_000):  # bounded; ends as soon as half the messages are answered
            if cluster.answered >= CONVERSATIONS * len(EXPECTED) // 2:
                break
            await asyncio.sleep(0.005)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()

    results, _ = await asyncio.gather(drive(cluster, seed=9), killer())
    assert not victim.alive
    told_received = set()
    for i in range(CONVERSATIONS):
        answers = results[i]
        for k, got in enumerate(answers):
            # A reply lost with the dead process is None; every other reply is in order.
            assert got is None or got == EXPECTED[k], f"conversation {i}: {answers}"
        if answers[-1] == EXPECTED[-1]:
            told_received.add(f"c{i}")
    # Every conversation went on to the end on the survivor, and every report exists once.
    per_conversation = await incidents_by_conversation(pg_url)
    assert told_received <= set(per_conversation)
    assert len(per_conversation) == CONVERSATIONS and set(per_conversation.values()) == {1}
    rows = await drained(pg_url)
    assert len(rows) >= CONVERSATIONS and all(r["sent_at"] for r in rows)
    delivered = Counter(d["id"] for d in cluster.deliveries)
    assert set(delivered) == {r["id"] for r in rows}  # none lost
    # Delivered more than once only if the dead process had sent it but not recorded it; the
    # repeat carries the same idempotency key (LINE's X-Line-Retry-Key), so it has no effect.
    dead_owner = f"proc-{victim.proc.pid}"
    for row_id, times in delivered.items():
        if times > 1:
            owners = [d["owner"] for d in cluster.deliveries if d["id"] == row_id]
            assert owners[0] == dead_owner and dead_owner not in owners[1:], owners
            assert len({d["key"] for d in cluster.deliveries if d["id"] == row_id}) == 1


async def test_restarts_during_a_two_process_run(
        tmp_path: Path, own_servers: tuple[PostgresServer, RedisServer]) -> None:
    pg, rd = own_servers
    pg_url = pg.new_database()
    async with running_cluster(tmp_path, pg_url, rd.new_url()) as cluster:
        total = CONVERSATIONS * len(EXPECTED)

        async def restarter() -> None:
            for fraction, server in ((1 / 3, rd), (2 / 3, pg)):
                for _ in range(100_000):  # bounded; ends when the run gets that far
                    if cluster.answered >= total * fraction:
                        break
                    await asyncio.sleep(0.005)
                await asyncio.to_thread(server.restart)

        results, _ = await asyncio.gather(drive(cluster, seed=5), restarter())
        assert all(p.alive for p in cluster.processes)  # recovered without a restart
        told_received = set()
        for i in range(CONVERSATIONS):
            answers = results[i]
            for k, got in enumerate(answers):
                # None: handled, but the reply was lost with the server. A submit while
                # PostgreSQL is down says "not received" (call 191/1300); one stored while
                # Redis is down (the session not saved) leaves the receipt to the outbox.
                assert got is None or got == EXPECTED[k] or (
                    k == len(EXPECTED) - 1 and got in FINAL_WHEN_DOWN), answers
            if answers[-1] in (EXPECTED[-1], []):
                told_received.add(f"c{i}")
        per_conversation = await incidents_by_conversation(pg_url)
        assert told_received <= set(per_conversation)  # nothing accepted is lost
        assert set(per_conversation.values()) == {1}
        rows = await drained(pg_url)
        assert all(r["sent_at"] for r in rows)
        delivered: dict[str, set[str]] = {}
        for d in cluster.deliveries:
            delivered.setdefault(d["id"], set()).add(d["key"])
        assert set(delivered) == {r["id"] for r in rows}
        assert all(len(keys) == 1 for keys in delivered.values())  # repeats are idempotent
