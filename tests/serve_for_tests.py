"""`ess serve` plus test-only routes, for the multi-process tests: never shipped.

    python -m tests.serve_for_tests      (same settings, same start-up as `ess serve`)

It runs `bot.cli.serve` with one extra hook, so the production command has no test route at
all (nothing to forget to switch off). The hook adds:

- `POST /_test/inbound`: one channel-neutral event into the engine; answers the reply keys.
  The web and LINE channels are built on other branches; this is their stand-in here.
- `POST /_test/send`: `{"address", "key"}` sends a status update through the channels, as
  the dispatcher would; answers the outcome (e.g. refused after an SMS STOP).
- the real dispatcher of routing/ sends through a sender that POSTs each notification to
  `ESS_TEST_SINK` (a recorder in the test process), under this process's owner id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import CHANNELS, SERVICES
from bot.cli import serve
from bot.incident import Notification
from bot.outbound import SendResult
from bot.services import Services
from bot.types import Inbound, Kind, Location, LocationSource, Reply, Text
from config.settings import load_settings
from routing.dispatcher import DispatchPolicy

OWNER = f"proc-{os.getpid()}"


async def inbound(request: web.Request) -> web.Response:
    body = await request.json()
    payload: Any = body.get("payload")
    if body["kind"] == "location":
        payload = Location(payload[0], payload[1], LocationSource.REPORTER_PIN)
    event = Inbound(body.get("channel", "test"), body["sender"], Kind(body["kind"]),
                    body["event_id"], payload)
    replies = await request.app[SERVICES].engine.handle(event)
    return web.json_response({"owner": OWNER, "replies": [
        {"key": r.text.key, "reference": str(r.text.params.get("reference", ""))}
        for r in replies]})


async def send(request: web.Request) -> web.Response:
    body = await request.json()
    update = Reply(Text("report.received_short", {"reference": "ESS-7K3F9"}), "en")
    result = await request.app[CHANNELS].send(body["address"], update, key=body["key"])
    return web.json_response({"owner": OWNER, "outcome": result.outcome.value,
                              "error": result.error})


class SinkSender:
    """Every notification goes to the test's recorder (with its idempotency key)."""

    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http = http
        self.url = url

    async def send(self, notification: Notification) -> SendResult:
        try:
            async with self.http.post(self.url, json={"id": notification.id,
                                                      "key": notification.key,
                                                      "owner": OWNER}) as resp:
                resp.raise_for_status()
        except aiohttp.ClientError as exc:
            return SendResult.retry(0, type(exc).__name__)
        return SendResult.sent()


def main() -> int:
    settings = load_settings()
    sink = os.environ.get("ESS_TEST_SINK", "")
    lease = float(os.environ.get("ESS_TEST_LEASE", "3"))

    async def hook(app: web.Application, services: Services) -> None:
        # `kill -USR1` prints every task's stack: what a hung test's server is waiting for.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        app.router.add_post("/_test/inbound", inbound)
        app.router.add_post("/_test/send", send)
        # The real dispatcher (it starts after the hooks), with a short lease so a crashed
        # process's rows come back within the test.
        services.dispatcher.owner = OWNER
        services.dispatcher.policy = DispatchPolicy(lease_seconds=lease, interval=0.05)
        if not sink:
            return  # it delivers through the channels (the tests' LINE and SMS stand-ins)
        # ...delivering to the recorder.
        http = aiohttp.ClientSession()
        services.dispatcher.sender = SinkSender(http, sink)

        async def stop(app: web.Application) -> None:
            await http.close()

        app.on_cleanup.append(stop)

    return serve(settings, hooks=[hook])


def dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
