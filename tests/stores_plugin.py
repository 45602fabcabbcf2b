"""Fixtures for the production stores: the servers start once per test session, on demand.

`pg_url` and `redis_url` give each test its own database (a migrated clone) and its own
numbered Redis database, so tests never see each other's rows or keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.services import Services
from bot.wiring import open_services
from config.settings import Settings
from tests.helpers import require
from tests.servers import PostgresServer, RedisServer, have_postgres, have_redis


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    require(have_postgres(), "PostgreSQL (Debian package postgresql)")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    require(have_redis(), "Redis (Debian package redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.new_database()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.new_url()


@pytest.fixture
def own_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    """Servers of the test's own, for tests that stop and restart them."""
    require(have_postgres() and have_redis(), "PostgreSQL and Redis")
    pg, rd = PostgresServer(), RedisServer(appendonly=True)  # sessions survive a restart
    try:
        pg.start()
        rd.start()
        yield pg, rd
    finally:
        rd.close()
        pg.close()


@pytest.fixture(params=["sqlite", "postgres", "postgres+redis"])
async def services_on_every_backend(request: pytest.FixtureRequest,
                                    tmp_path: Path) -> AsyncIterator[Services]:
    """The whole assembly, once per backend (the test runs three times)."""
    extra = {}
    if request.param != "sqlite":
        extra["database_url"] = request.getfixturevalue("pg_url")
    if "redis" in request.param:
        extra["redis_url"] = request.getfixturevalue("redis_url")
    svc = await open_services(Settings(data_dir=str(tmp_path), log_format="console", **extra))
    try:
        yield svc
    finally:
        await svc.close()
