"""Response-time percentiles per area, from stored milestones, and `ess stats`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli import main
from bot.wiring import open_services
from config.settings import Settings
from routing.responders import Actor
from routing.stats import ALL, percentile, response_stats
from storage.ports import Milestone
from tests.dispatch_kit import report, reset_logging, settle


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def m(incident: str, area: str, kind: str | None, seconds: float | None) -> Milestone:
    return Milestone(incident, T0, (area, area + "01") if area else (), kind,
                     None if seconds is None else T0 + timedelta(seconds=seconds))


def test_nearest_rank_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 90) == 90
    assert percentile([5.0], 99) == 5.0


def test_per_area_figures() -> None:
    rows = [
        m("a", "65", "dispatched", 2), m("a", "65", "acknowledged", 60),
        m("a", "65", "on_scene", 660),
        m("b", "65", "dispatched", 4), m("b", "65", "delivered", 3),
        m("c", "10", None, None),
    ]
    stats = response_stats(rows, T0 + timedelta(hours=2))
    s65 = stats["65"]
    assert s65.reports == 2
    assert sorted(s65.to_delivered) == [2, 3]
    assert s65.to_ack == [60] and s65.ack_to_scene == [600]
    assert s65.never_acked_share == 0.5
    assert stats["10"].never_acked_share == 1.0 and stats[ALL].reports == 3
    # Too young to judge: not yet "never acknowledged".
    assert response_stats(rows, T0 + timedelta(minutes=5))["10"].never_acked_share is None


def test_ess_stats_over_a_real_store(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    async def prepare() -> None:
        services = await open_services(settings)
        try:
            incident = await report(services, "u1")
            await settle(services)
            station = Actor("console:st6501")
            await services.responders.act(incident.reference, "ack", station, "t")
            await services.responders.act(incident.reference, "on_scene", station, "t")
            rows = await services.storage.incidents.milestones(
                T0, ["dispatched", "acknowledged"])
            assert {r.kind for r in rows} == {"dispatched", "acknowledged"}
        finally:
            await services.close()

    asyncio.run(prepare())
    capsys.readouterr()
    monkeypatch.setenv("ESS_DATA_DIR", settings.data_dir)
    # One real report: `ess stats` shows where it is, never how many or how fast.
    assert main(["stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["rows"]
    assert row["province"] == "65" and row["reports"] == "<5"
    assert row["acknowledged_p50_s"] is None and data["synthetic_included"] is False
    assert main(["stats", "--min-count", "2"]) == 0
    assert "65        Phitsanulok" in capsys.readouterr().out
