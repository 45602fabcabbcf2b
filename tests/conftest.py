"""Fixtures every test module may use: settings in a temp folder, the assembled services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import bot.logs
from bot.app import create_app
from bot.services import Services
from bot.wiring import open_services
from channels.registry import ChannelRegistry
from config.settings import Settings
from tests import line_events as ev
from tests.line_standin import TOKEN, LineStandIn

pytest_plugins = ["tests.stores_plugin"]

# structlog's capture_logs must reach module loggers that were already used (production
# caches them; tests/test_logs.py checks that it does).
bot.logs.CACHE_LOGGERS = False


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "var"), log_format="console")


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    svc = await open_services(settings)
    try:
        yield svc
    finally:
        await svc.close()


# -- the LINE stand-in (tests/line_standin.py) and an application wired to it ---------------

@pytest.fixture
async def line_api() -> AsyncIterator[LineStandIn]:
    standin = await LineStandIn().start()
    try:
        yield standin
    finally:
        await standin.close()


@pytest.fixture
def line_settings(tmp_path: Path, line_api: LineStandIn) -> Settings:
    return Settings(data_dir=str(tmp_path / "var"), log_format="console", extra={
        "ESS_LINE_CHANNEL_SECRET": ev.SECRET, "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "ESS_LINE_API_URL": line_api.url, "ESS_LINE_DATA_API_URL": line_api.url})


@pytest.fixture
async def line_client(line_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole application with only the LINE channel on, pointed at the stand-in."""
    app = create_app(line_settings,
                     channels=ChannelRegistry.discover(line_settings, only=["line"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client
