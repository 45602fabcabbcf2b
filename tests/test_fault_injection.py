"""Kill -9 at random instants, and a store that goes away: nothing answered 200 is lost.

A real `ess serve` subprocess (tests/serve_for_tests.py) with the LINE and SMS channels on,
pointed at the LINE stand-in and a Twilio stand-in in this process. Each round a small burst
of whole reports (LINE and SMS, each conversation's webhooks in order, as the platforms
send them) starts, and the process is killed with SIGKILL at a random instant (fixed seed);
what was not answered is sent again after the restart, as the platforms retry. Web-chat
reporters take part in the same bursts as their page does: each frame is sent, its answer and
ack awaited, and a frame not acked when the socket dies is sent again (same id) on the next
socket. At the end: every event answered 200 was handled, the journal is empty, every reporter
has exactly one incident, exactly one receipt reached them (counted at the stand-ins and in
each page's whole transcript), and every web-chat step was answered.
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
from typing import Any
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
LINE_PER_ROUND, SMS_PER_ROUND, WEB_PER_ROUND = 2, 1, 1
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


# What a page sends, in order; a choice takes the first offered in the last question.
WEB_STEPS: list[dict[str, Any]] = [
    {"type": "start", "flow": "report"}, {"type": "choice"},
    {"type": "location", "lat": 16.8211, "lon": 100.2659, "source": "device"},
    {"type": "text", "text": "0812345678"}, {"type": "choice"}]
PAGE_DIED = (aiohttp.ClientError, ConnectionError, TimeoutError, TypeError)


@dataclass
class WebReporter:
    """A web-chat page (channels/webchat protocol): its token, what it has seen, the frame
    it sent and has not seen acked, and the steps whose answer never came."""

    n: int
    token: str | None = None
    seq: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0  # frames acked
    pending: dict[str, Any] | None = None
    sent_at_seq: int = 0  # the page's last message when `pending` was first sent
    unanswered: list[int] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.answered == len(WEB_STEPS)

    @property
    def who(self) -> str:
        assert self.token is not None
        return self.token.partition(".")[0]

    def next_frame(self) -> dict[str, Any]:
        if self.pending is None:
            frame = dict(WEB_STEPS[self.answered], id=f"w{self.n}-{self.answered}")
            if frame["type"] == "choice":
                asked = [m for m in self.messages if m.get("choices")]
                assert asked, f"page {self.n} was never asked to choose: {self.messages}"
                frame["value"] = asked[-1]["choices"][0]["value"]
            self.pending, self.sent_at_seq = frame, self.seq
        return self.pending

    async def frame(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        got: dict[str, Any] = await ws.receive_json(timeout=20)
        if got["type"] == "message":
            assert got["seq"] == self.seq + 1, "a message was skipped or repeated"
            self.seq = got["seq"]
            self.messages.append(got)
        return got

    async def run(self, http: aiohttp.ClientSession, serve: Serve) -> None:
        """Until done or the process dies; the page's state survives for the next socket."""
        try:
            async with http.ws_connect(f"{serve.url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": self.token, "after": self.seq,
                                    "lang": "th"})
                welcome = await self.frame(ws)
                assert welcome["type"] == "welcome", welcome
                assert self.token in (None, welcome["token"]), "the conversation was lost"
                self.token = welcome["token"]
                while not self.done:
                    frame = self.next_frame()
                    await ws.send_json(frame)
                    while (got := await self.frame(ws))["type"] != "ack":
                        assert got["type"] == "message", got
                    assert got["id"] == frame["id"]
                    if self.seq == self.sent_at_seq:
                        self.unanswered.append(self.answered)
                    self.pending = None
                    self.answered += 1
        except PAGE_DIED:
            return  # the process died: the page reconnects after the restart

    async def transcript(self, http: aiohttp.ClientSession, serve: Serve
                         ) -> list[dict[str, Any]]:
        """Every message of the conversation, replayed from the start on a new socket."""
        seen = WebReporter(self.n)
        async with http.ws_connect(f"{serve.url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": self.token, "after": 0,
                                "lang": "th"})
            assert (await seen.frame(ws))["type"] == "welcome"
            with contextlib.suppress(TimeoutError):
                while True:  # until a second passes with nothing more
                    got: dict[str, Any] = await ws.receive_json(timeout=1)
                    if got["type"] == "message":
                        seen.messages.append(got)
        return seen.messages


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
           "ESS_LINE_API_URL": line.url, "ESS_WEBCHAT_SECRET": "w" * 32,
           # Every page of the test comes from one address: not what the limits are for.
           "ESS_LIMIT_WEB_SOCKETS": "100000", "ESS_LIMIT_WEB_FRAMES": "100000",
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
                   conversations: list[Conversation],
                   pages: list[WebReporter] | None = None) -> None:
    """Each conversation's next steps in order until one is not answered 200 (each page's
    until its socket dies); the `answered` counts grow as the answers come."""

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

    await asyncio.gather(*(one(c) for c in conversations),
                         *(p.run(http, serve) for p in pages or []))


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


async def check(r: Rig, conversations: list[Conversation],
                pages: list[WebReporter] | None = None) -> None:
    pages = pages or []
    assert all(c.done for c in conversations) and all(p.done for p in pages)
    # Each step of each page was answered, before its ack, even across a kill.
    assert [p.unanswered for p in pages if p.unanswered] == []
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
    assert incidents == Counter({f"{c.channel}:{c.who}": 1 for c in conversations}) + \
        Counter({f"web:{p.who}": 1 for p in pages})
    line_receipts = Counter(call.raw["to"] for call in r.line.ok("push")
                            if any(RECEIPT in m.get("text", "") for m in call.raw["messages"]))
    sms_receipts = Counter(m["To"] for m in r.twilio.sent if RECEIPT in m["Body"])
    assert line_receipts == Counter({c.who: 1 for c in conversations if c.channel == "line"})
    assert sms_receipts == Counter({c.who: 1 for c in conversations if c.channel == "sms"})
    assert r.line.invalid == []


def progress(conversations: list[Conversation], pages: list[WebReporter]) -> int:
    return sum(c.answered for c in conversations) + sum(p.answered for p in pages)


async def kill_rounds(r: Rig) -> None:
    rng = random.Random(SEED)
    url = f"{r.serve.url}/webhooks/sms/twilio"
    conversations: list[Conversation] = []
    pages: list[WebReporter] = []
    interrupted = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for round_ in range(ROUNDS):
            await r.serve.start()
            base = round_ * 10
            conversations += [line_conversation(base + k) for k in range(LINE_PER_ROUND)]
            conversations += [sms_conversation(base + k, url) for k in range(SMS_PER_ROUND)]
            pages += [WebReporter(base + k) for k in range(WEB_PER_ROUND)]
            before = progress(conversations, pages)
            waiting = sum(len(c.steps) for c in conversations) + len(WEB_STEPS) * len(pages) \
                - before
            # Killed once a random part of the burst has been answered, requests in flight.
            target = before + rng.randint(1, waiting - 1)
            burst = asyncio.ensure_future(send_all(http, r.serve, conversations, pages))
            for _ in range(10_000):  # bounded: 10,000 × 1 ms
                if burst.done() or progress(conversations, pages) >= target:
                    break
                await asyncio.sleep(0.001)
            r.serve.kill()
            await burst
            interrupted += not all(c.done for c in conversations)
        # The kills did land mid-burst (the fixed seed makes this the same every run).
        assert interrupted >= ROUNDS // 2, interrupted
        await r.serve.start()
        await send_all(http, r.serve, conversations, pages)
        await settled(r.settings, r.serve)
        # Exactly one receipt in each page's whole transcript (the outbox's, once).
        receipts = {p.who: sum(RECEIPT in m.get("text", "") for m in
                               await p.transcript(http, r.serve)) for p in pages}
        assert receipts == {p.who: 1 for p in pages}
        r.serve.stop()
    await check(r, conversations, pages)


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

