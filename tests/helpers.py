"""Shared test helpers: building inbound events, and the rule for missing servers."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from aiohttp import web

from bot.types import Inbound, Kind, Location, LocationSource, Reply, utcnow
from routing.messages import KIND_RECEIPT, notification_reply
from storage.ports import Storage

_ids = itertools.count(1)


def require(available: bool, what: str) -> None:
    """Skip a test whose server is missing, except in CI, where that is a failure."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI (CI=true) but is not available")
    pytest.skip(f"{what} is not available")


def event(sender: str, kind: Kind, payload: object = None, channel: str = "test",
          event_id: str | None = None, **hints: str) -> Inbound:
    """An inbound event with a fresh id unless one is given."""
    return Inbound(channel, sender, kind, event_id or f"ev-{next(_ids)}",
                   payload,  # type: ignore[arg-type]
                   hints=hints)


def text(sender: str, value: str, **kw: object) -> Inbound:
    return event(sender, Kind.TEXT, value, **kw)  # type: ignore[arg-type]


def choice(sender: str, value: str, **kw: object) -> Inbound:
    return event(sender, Kind.CHOICE, value, **kw)  # type: ignore[arg-type]


def pin(sender: str, lat: float = 16.8211, lon: float = 100.2659, **kw: object) -> Inbound:
    return event(sender, Kind.LOCATION, Location(lat, lon, LocationSource.REPORTER_PIN),
                 **kw)  # type: ignore[arg-type]


def start(sender: str, flow: str | None = None, **hints: str) -> Inbound:
    return event(sender, Kind.START, flow, **hints)


async def receipts(storage: Storage, reporter: str) -> list[Reply]:
    """The receipts ("received, reference …") the outbox holds for `reporter`: the outbox
    owns them (bot.reports). Peeked: every row claimed is put back as it was."""
    owner = "test-peek"
    rows = await storage.outbox.claim(owner, 10_000, 60, utcnow())
    for row in rows:
        await storage.outbox.retry(row.id, owner, row.next_attempt_at, row.last_error or "")
    return [notification_reply(r) for r in rows
            if r.kind == KIND_RECEIPT and r.recipient == reporter]


async def receipt_keys(storage: Storage, reporter: str) -> list[str]:
    return [r.text.key for r in await receipts(storage, reporter)]


async def settle_app(app: web.Application, outbox_seconds: float = 2.0) -> None:
    """Until what the webhooks accepted is handled (the inbound journal is empty) and, for
    a bounded while, until the dispatcher sent the outbox (receipts come from there)."""
    from bot.app import CHANNELS, SERVICES

    services = app[SERVICES]
    await app[CHANNELS].tasks.join()
    await services.inbox.settle()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + outbox_seconds
    while await services.storage.outbox.pending() and loop.time() < deadline:
        services.dispatcher.poke()
        await asyncio.sleep(0.01)
    await app[CHANNELS].tasks.join()
