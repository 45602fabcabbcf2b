"""Servers lost and back during a run: requests fail cleanly, readiness follows, and the
service recovers by itself; every report whose reporter was told "received" is kept.

These tests own their servers (restarting the shared ones would disturb other tests).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.services import Services
from bot.types import Inbound, utcnow
from bot.wiring import open_services
from config.settings import Settings
from tests.helpers import choice, pin, start, text
from tests.servers import PostgresServer, RedisServer

GUARD = 60  # seconds: a hang fails the test instead of blocking the suite; not a timing check


@pytest.fixture
async def services(tmp_path: Path, own_servers: tuple[PostgresServer, RedisServer]
                   ) -> AsyncIterator[Services]:
    pg, rd = own_servers
    settings = Settings(data_dir=str(tmp_path), log_format="console", store_timeout=1,
                        database_url=pg.new_database(), redis_url=rd.new_url(),
                        lock_ttl=2)
    svc = await open_services(settings)
    try:
        yield svc
    finally:
        await svc.close()


def report(who: str) -> list[Inbound]:
    return [start(who), choice(who, "threat"), pin(who), text(who, "081-234-5678"),
            choice(who, "send")]


async def handle(services: Services, inbound: Inbound) -> list[str]:
    replies = await asyncio.wait_for(services.engine.handle(inbound), GUARD)
    return [r.text.key for r in replies]


async def test_redis_restart(services: Services,
                             own_servers: tuple[PostgresServer, RedisServer]) -> None:
    _, rd = own_servers
    a, b = report("a"), report("b")
    for msg in a[:3]:
        assert "common.unavailable" not in await handle(services, msg)
    rd.stop()
    assert await handle(services, a[3]) == ["common.unavailable"]  # failed cleanly
    assert not await services.storage.ping()
    rd.start()
    # The channel's retry delivers the same event again; the flow continues where it was.
    assert await handle(services, a[3]) == ["report.confirm.prompt"]
    assert await services.storage.ping()
    assert (await handle(services, a[4]))[0] == "report.after.role"  # receipt: outbox
    for msg in b:
        await handle(services, msg)
    assert len(await services.storage.incidents.recent()) == 2


async def test_postgres_restart(services: Services,
                                own_servers: tuple[PostgresServer, RedisServer]) -> None:
    pg, _ = own_servers
    a, b = report("a"), report("b")
    for msg in a[:4]:
        await handle(services, msg)
    assert (await handle(services, a[4]))[0] == "report.after.role"  # receipt: outbox
    for msg in b[:4]:
        await handle(services, msg)
    pg.stop()
    # Steps that need only Redis go on; the submit cannot be stored and says so plainly.
    assert not await services.storage.ping()
    assert (await handle(services, b[4]))[0] == "report.not_received"
    pg.start()
    assert await services.storage.ping()
    received = []
    for msg in report("c"):
        received = await handle(services, msg)
    assert received[0] == "report.after.role"
    incidents = await services.storage.incidents.recent()
    assert {i.reporter for i in incidents} == {"test:a", "test:c"}  # the accepted ones only
    # ... each with its notifications queued in the same transaction (invariant 1).
    rows = await services.storage.outbox.claim("check", 100, 60, utcnow())
    assert {n.incident_id for n in rows} == {i.id for i in incidents}


async def test_a_hung_redis_times_out(services: Services,
                                      own_servers: tuple[PostgresServer, RedisServer]) -> None:
    _, rd = own_servers
    await handle(services, start("a"))
    assert rd.proc is not None
    rd.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        assert await handle(services, choice("a", "threat")) == ["common.unavailable"]
        assert not await services.storage.ping()
    finally:
        rd.proc.send_signal(signal.SIGCONT)
    assert await services.storage.ping()


async def test_readyz_follows_the_servers(tmp_path: Path,
                                          own_servers: tuple[PostgresServer, RedisServer]
                                          ) -> None:
    import aiohttp
    from aiohttp import web

    from bot.app import create_app
    from tests.servers import free_port

    pg, rd = own_servers
    settings = Settings(data_dir=str(tmp_path), log_format="console", store_timeout=1,
                        database_url=pg.new_database(), redis_url=rd.new_url())
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        async with aiohttp.ClientSession() as http:
            async def status() -> int:
                async with http.get(url) as resp:
                    return resp.status

            assert await status() == 200
            for server in (rd, pg):
                server.stop()
                assert await status() == 503
                server.start()
                assert await status() == 200  # the same process, recovered
    finally:
        await runner.cleanup()
