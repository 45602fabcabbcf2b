"""The aiohttp application factory: `create_app(settings)`.

Services open in a cleanup context (so they close on shutdown, in reverse order), the sweep
runs as a task the application owns. Channels come from the registry (`channels.registry`):
their routes are mounted here, before the application starts, and they are started once the
services are open and stopped (their background work drained) before the services close.
`hooks` run after the channels start (tests mount extra routes there). This module, the
wiring and the command line are the composition root: the only code that puts concrete parts
together (and even they find the channels through entry points, never by name).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import generate_latest

from bot.histograms import WEBHOOK_ANSWER
from bot.services import Services
from bot.waits import cancel_and_wait
from bot.wiring import open_services
from channels.registry import DRAIN_SECONDS, ChannelRegistry
from config.settings import Settings
from routing.sender import ChannelSender, ConsoleSender, RoutingSender

log = structlog.get_logger(__name__)

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
CHANNELS = web.AppKey("channels", ChannelRegistry)

ServicesHook = Callable[[web.Application, Services], Awaitable[None]]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: counters since start, and the outbox backlog read now."""
    services = request.app.get(SERVICES)
    if services is None:
        return web.Response(status=503, text="starting\n")
    try:
        backlog: list[tuple[str, str, float]] = [
            ("ess_outbox_pending", "Notifications waiting to be handed to a channel",
             float(await services.storage.outbox.pending())),
            ("ess_journal_pending", "Inbound events answered and still in the journal "
             "(waiting, in hand, or handled since their owner's last claim)",
             float(await services.storage.journal.pending()))]
    except Exception:
        backlog = []
    ready = 1.0 if await services.storage.ping() else 0.0
    text = services.engine.metrics.render(
        [*backlog, ("ess_ready", "1 when the stores answer", ready)])
    # The histograms and gauges of prometheus_client (bot.histograms, the board's).
    text += generate_latest().decode()
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


@web.middleware
async def time_webhooks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """How long a messaging system waits for our answer to its webhook."""
    if not request.path.startswith("/webhooks/"):
        return await handler(request)
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        channel = request.path.split("/")[2] or "unknown"
        WEBHOOK_ANSWER.labels(channel[:20]).observe(time.perf_counter() - started)


async def readyz(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES)
    ready = services is not None and await services.storage.ping()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


def create_app(settings: Settings, hooks: list[ServicesHook] | None = None,
               channels: ChannelRegistry | None = None) -> web.Application:
    """The whole service as one aiohttp application.

    `channels` defaults to every configured `ess.channels` entry point.
    """
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[time_webhooks])
    app[SETTINGS] = settings
    registry = channels if channels is not None else ChannelRegistry.discover(settings)
    app[CHANNELS] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    registry.mount(app)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        services = await open_services(settings)
        app[SERVICES] = services
        try:
            await registry.start(services)
        except BaseException:
            await services.close()
            raise
        # Outbox rows leave through the channels (console addresses print); what comes back
        # goes through `services.inbound`, which the channels call themselves.
        services.dispatcher.sender = RoutingSender({"console": ConsoleSender(services.catalogs)},
                                                   default=ChannelSender(registry.send))
        for hook in hooks or []:
            await hook(app, services)
        # Verified events wait in the journal; each channel handles its own from there.
        services.inbox.handlers = {name: channel.arrived
                                   for name, channel in registry.channels.items()}
        inbox = asyncio.create_task(services.inbox.run(), name="ess-inbox")
        sweep = asyncio.create_task(services.sweeper.run(), name="ess-sweeper")
        # Drains the outbox and fires escalation/reminder timers (rows, not in-process timers).
        dispatch = asyncio.create_task(services.dispatcher.run(), name="ess-dispatcher")
        log.info("service.started", flows=sorted(services.flows),
                 channels=sorted(registry.channels), stations=len(services.directory.stations))
        try:
            yield
        finally:
            try:
                await cancel_and_wait(dispatch, sweep)
                # Not cancelled: the drainer ends between claims and what it claimed is
                # handled; it has ended by now (this only reads how).
                await services.inbox.stop(DRAIN_SECONDS)
                await cancel_and_wait(inbox)
                await registry.stop()
            finally:
                await services.close()  # whatever failed above, the stores close
            log.info("service.stopped")

    app.cleanup_ctx.append(lifetime)
    return app
