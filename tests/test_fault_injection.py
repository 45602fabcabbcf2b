"""Kill -9 at random instants, and a store that goes away: nothing answered 200 is lost.

A real `ess serve` subprocess (tests/serve_for_tests.py) with the LINE and SMS channels on,
pointed at the LINE stand-in and a Twilio stand-in in this process. Each round a small burst
of whole reports (LINE and SMS, each conversation's webhooks in order, as the platforms
send them) starts, and the process is killed with SIGKILL at a random instant (fixed seed);
what was not answered is sent again after the restart, as the platforms retry. At the end:
every event answered 200 was handled, the journal is empty, every reporter has exactly one
incident, and exactly one receipt reached them (counted at the stand-ins).
"""

from __future__ import annotations

import asyncio
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
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from channels.sms import twilio_signature
from config.settings import Settings
from storage.crypto import Sealer, parse_keys
from storage.factory import open_storage
from tests import line_events as ev
from tests.line_standin import TOKEN, LineStandIn
from tests.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg="  # 32 bytes, base64
SID = "AC" + "1" * 32
TWILIO_TOKEN = "fault-twilio-token"
ROUNDS = 20
LINE_PER_ROUND, SMS_PER_ROUND = 2, 1
SEED = 20261201
RECEIPT = "รับแจ้งเหตุแล้ว"  # report.received in Thai, the default language


@dataclass
class TwilioStandIn:
    """Twilio's Messages resource; a retried message (same Idempotency-Key) is sent once,
    as a gateway that honours the header does."""

    sent: list[dict[str, str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    async def messages(self, request: web.Request) -> web.Response:
        form = await request.post()
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self.keys:
            return web.json_response({"sid": "SM" + "2" * 32, "status": "queued"}, status=201)
        self.keys.add(key)
        self.sent.append({k: str(v) for k, v in form.items()})
        return web.json_response({"sid": "SM" + "1" * 32, "status": "queued"}, status=201)


@dataclass
class Conversation:
    """One reporter's whole report: signed request bodies, sent in order, each until 200."""

    channel: str
    who: str
    steps: list[tuple[bytes, dict[str, str]]]
    event_keys: list[str]
    answered: int = 0

    @property
    def done(self) -> bool:
        return self.answered == len(self.steps)


def line_conversation(n: int) -> Conversation:
    user_id = f"U{n:032x}"
    me = ev.user(user_id)
    events = [ev.follow(me), ev.postback(me, "threat"), ev.location(me),
              ev.text(me, "081-234-5678"), ev.postback(me, "send")]
    steps = []
    for e in events:
        raw = ev.body(e)
        steps.append((raw, {"X-Line-Signature": ev.sign(raw),
                            "Content-Type": "application/json"}))
    return Conversation("line", user_id, steps, [f"line:{e['webhookEventId']}" for e in events])


def sms_conversation(n: int, url: str) -> Conversation:
    number = f"+668{n:08d}"
    steps, keys = [], []
    for k, body in enumerate(["แจ้งเหตุ", "1", "หน้าโรงเรียนวัดใหญ่ ถนนพุทธบูชา", "#", "1"]):
        sid = f"SM{n:016d}{k:016d}"
        params = {"MessageSid": sid, "AccountSid": SID, "From": number, "To": "+6620000000",
                  "Body": body}
        steps.append((urlencode(params).encode(), {
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, params.items()),
            "Content-Type": "application/x-www-form-urlencoded"}))
        keys.append(f"sms:twilio:{sid}")
    return Conversation("sms", number, steps, keys)


@dataclass
class Serve:
    """`ess serve` (with the tests' hook) that the test kills and restarts."""

    env: dict[str, str]
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "tests.serve_for_tests"], cwd=ROOT,
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.proc = self.spawn()
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # bounded: 600 × 50 ms
                if self.proc.poll() is not None:
                    raise RuntimeError(f"ess serve exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError("ess serve never became ready")

    def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Rig:
    serve: Serve
    line: LineStandIn
    twilio: TwilioStandIn
    settings: Settings


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **stores: str) -> AsyncIterator[Rig]:
    line = await LineStandIn().start()
    twilio = TwilioStandIn()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", twilio.messages)
    twilio_server = TestServer(app, host="127.0.0.1")
    await twilio_server.start_server()
    port = free_port()
    data = tmp_path / "var"
    env = {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(data),
           "ESS_PORT": str(port), "ESS_LOG_FORMAT": "json", "ESS_LOG_LEVEL": "warning",
           "ESS_SECRET_KEYS": KEY, "ESS_LOCK_TTL": "2", "ESS_STORE_TIMEOUT": "2",
           "ESS_JOURNAL_LEASE": "1.5", "ESS_TEST_LEASE": "1.5",
           "ESS_LINE_CHANNEL_SECRET": ev.SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
           "ESS_LINE_API_URL": line.url, "ESS_WEBCHAT_ENABLED": "false",
           "ESS_SMS_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "ESS_SMS_TWILIO_ACCOUNT_SID": SID,
           "ESS_SMS_TWILIO_FROM": "+6620000000", "ESS_SMS_PROVIDER": "twilio",
           "ESS_SMS_TWILIO_API_URL": str(twilio_server.make_url("")).rstrip("/"),
           **{f"ESS_{k.upper()}": v for k, v in stores.items()}}
    serve = Serve(env, tmp_path / "serve.log", port)
    settings = Settings(data_dir=str(data), secret_keys=KEY, **stores)
    try:
        yield Rig(serve, line, twilio, settings)
    finally:
        serve.stop()
        await twilio_server.close()
        await line.close()


async def send_all(http: aiohttp.ClientSession, serve: Serve,
                   conversations: list[Conversation]) -> None:
    """Each conversation's next steps in order until one is not answered 200; the
    conversations' `answered` counts grow as the answers come."""

    async def one(c: Conversation) -> None:
        path = "/webhooks/line" if c.channel == "line" else "/webhooks/sms/twilio"
        while not c.done:
            body, headers = c.steps[c.answered]
            try:
                async with http.post(serve.url + path, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        return  # 5xx: the platform retries later
            except (aiohttp.ClientError, TimeoutError):
                return  # the process died: retried after the restart
            c.answered += 1

    await asyncio.gather(*(one(c) for c in conversations))


async def settled(settings: Settings, serve: Serve) -> None:
    """Until the journal is empty and the outbox sent (bounded), with `serve` running."""
    storage = await open_storage(settings, Sealer(parse_keys(KEY)))
    try:
        for _ in range(600):  # 600 × 50 ms
            if not spooled(settings) and not await storage.journal.pending() \
                    and not await storage.outbox.pending():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never settled: {serve.log.read_text()[-3000:]}")
    finally:
        await storage.close()


def spooled(settings: Settings) -> list[Path]:
    return list(settings.data_path.glob("inbound-spool*"))


async def check(r: Rig, conversations: list[Conversation]) -> None:
    assert all(c.done for c in conversations)
    assert spooled(r.settings) == []
    storage = await open_storage(r.settings, Sealer(parse_keys(KEY)))
    try:
        assert await storage.journal.pending() == 0
        for c in conversations:  # every event answered 200 was handled (dedupe record)
            conversation = f"{c.channel}:{c.who}"
            for key in c.event_keys:
                assert (await storage.sessions.load(conversation, key)).duplicate, (c, key)
        incidents = Counter(i.reporter for i in await storage.incidents.recent(10_000))
    finally:
        await storage.close()
    assert incidents == Counter({f"{c.channel}:{c.who}": 1 for c in conversations})
    line_receipts = Counter(call.raw["to"] for call in r.line.ok("push")
                            if any(RECEIPT in m.get("text", "") for m in call.raw["messages"]))
    sms_receipts = Counter(m["To"] for m in r.twilio.sent if RECEIPT in m["Body"])
    assert line_receipts == Counter({c.who: 1 for c in conversations if c.channel == "line"})
    assert sms_receipts == Counter({c.who: 1 for c in conversations if c.channel == "sms"})
    assert r.line.invalid == []


async def kill_rounds(r: Rig) -> None:
    rng = random.Random(SEED)
    url = f"{r.serve.url}/webhooks/sms/twilio"
    conversations: list[Conversation] = []
    interrupted = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for round_ in range(ROUNDS):
            await r.serve.start()
            base = round_ * 10
            conversations += [line_conversation(base + k) for k in range(LINE_PER_ROUND)]
            conversations += [sms_conversation(base + k, url) for k in range(SMS_PER_ROUND)]
            before = sum(c.answered for c in conversations)
            waiting = sum(len(c.steps) for c in conversations) - before
            # Killed once a random part of the burst has been answered, requests in flight.
            target = before + rng.randint(1, waiting - 1)
            burst = asyncio.ensure_future(send_all(http, r.serve, conversations))
            for _ in range(10_000):  # bounded: 10,000 × 1 ms
                if burst.done() or sum(c.answered for c in conversations) >= target:
                    break
                await asyncio.sleep(0.001)
            r.serve.kill()
            await burst
            interrupted += not all(c.done for c in conversations)
        # The kills did land mid-burst (the fixed seed makes this the same every run).
        assert interrupted >= ROUNDS // 2, interrupted
        await r.serve.start()
        await send_all(http, r.serve, conversations)
        await settled(r.settings, r.serve)
        r.serve.stop()
    await check(r, conversations)


async def test_kill_9_at_random_instants_on_sqlite(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await kill_rounds(r)


async def test_kill_9_at_random_instants_on_postgres_and_redis(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    async with rig(tmp_path, database_url=pg_url, redis_url=redis_url) as r:
        await kill_rounds(r)


async def test_postgres_stopped_mid_burst_loses_nothing_answered(
        tmp_path: Path, own_servers: tuple[PostgresServer, RedisServer]) -> None:
    pg, rd = own_servers
    async with rig(tmp_path, database_url=pg.new_database(), redis_url=rd.new_url()) as r:
        await r.serve.start()
        url = f"{r.serve.url}/webhooks/sms/twilio"
        conversations = [line_conversation(k) for k in range(6)] + \
            [sms_conversation(k, url) for k in range(3)]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            halves = [Conversation(c.channel, c.who, c.steps[:2], c.event_keys[:2])
                      for c in conversations]
            await send_all(http, r.serve, halves)
            await settled(r.settings, r.serve)
            pg.stop()
            for c in conversations:
                c.answered = 2
            await send_all(http, r.serve, conversations)
            # Every webhook was answered 200 with the database gone: they are in the spool.
            assert all(c.done for c in conversations)
            assert (Path(r.settings.data_dir) / "inbound-spool.log").exists()
            pg.start()
            await settled(r.settings, r.serve)
            r.serve.stop()
        await check(r, conversations)

