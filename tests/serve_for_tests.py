"""`ess serve` plus test-only routes, for the multi-process tests: never shipped.

    python -m tests.serve_for_tests      (same settings, same start-up as `ess serve`)

It runs `bot.cli.serve` with one extra hook, so the production command has no test route at
all (nothing to forget to switch off). The hook adds:

- `POST /_test/inbound`: one channel-neutral event into the engine; answers the reply keys.
  The web and LINE channels are built on other branches; this is their stand-in here.
- a dispatcher loop: claims outbox rows with this process's owner id, POSTs each to
  `ESS_TEST_SINK` (a recorder in the test process) and completes it. The real dispatcher is
  built in routing/; this one exercises only the claim/lease/complete protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import SERVICES
from bot.cli import serve
from bot.types import Inbound, Kind, Location, LocationSource, utcnow
from bot.wiring import Services
from config.settings import load_settings

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


async def dispatch(services: Services, sink: str, lease: float) -> None:
    """Drain the outbox; a crash after the POST and before `complete` means a redelivery."""
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                rows = await services.storage.outbox.claim(OWNER, 20, lease, utcnow())
                for row in rows:
                    async with http.post(sink, json={"id": row.id, "key": row.key,
                                                     "owner": OWNER}) as resp:
                        resp.raise_for_status()
                    await services.storage.outbox.complete(row.id, OWNER, utcnow())
            except Exception as exc:  # a lost server: try again on the next round
                print(f"dispatch: {type(exc).__name__}", file=sys.stderr)
                rows = []
            if not rows:
                await asyncio.sleep(0.05)


def main() -> int:
    settings = load_settings()
    sink = os.environ.get("ESS_TEST_SINK", "")
    lease = float(os.environ.get("ESS_TEST_LEASE", "3"))

    async def hook(app: web.Application, services: Services) -> None:
        app.router.add_post("/_test/inbound", inbound)
        if not sink:
            return
        task = asyncio.create_task(dispatch(services, sink, lease))

        async def stop(app: web.Application) -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.on_shutdown.append(stop)

    return serve(settings, hooks=[hook])


if __name__ == "__main__":
    sys.exit(main())
