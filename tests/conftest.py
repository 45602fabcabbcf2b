"""Fixtures every test module may use: settings in a temp folder, the assembled services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.wiring import Services, open_services
from config.settings import Settings

pytest_plugins = ["tests.stores_plugin"]


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
