"""The aiohttp application factory: `create_app(settings)`.

Services open in a cleanup context (so they close on shutdown, in reverse order), the sweep
runs as a task the application owns, and channels mount their routes through `on_services`
hooks (the channel registry comes with the channels).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from bot.wiring import Services, open_services
from config.settings import Settings

log = structlog.get_logger(__name__)

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)

ServicesHook = Callable[[web.Application, Services], Awaitable[None]]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES)
    ready = services is not None and await services.storage.ping()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


def create_app(settings: Settings, hooks: list[ServicesHook] | None = None) -> web.Application:
    """The whole service as one aiohttp application."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        services = await open_services(settings)
        app[SERVICES] = services
        for hook in hooks or []:
            await hook(app, services)
        sweep = asyncio.create_task(services.sweeper.run(), name="ess-sweeper")
        # Drains the outbox and fires escalation/reminder timers (rows, not in-process timers).
        dispatch = asyncio.create_task(services.dispatcher.run(), name="ess-dispatcher")
        log.info("service.started", flows=sorted(services.flows),
                 stations=len(services.directory.stations))
        try:
            yield
        finally:
            for task in (dispatch, sweep):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.close()
            log.info("service.stopped")

    app.cleanup_ctx.append(lifetime)
    return app
