"""`ess demo seed`: synthetic, through the real lifecycle, never dispatched, never real."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.incident import dispatched_agencies
from bot.types import utcnow
from routing import lifecycle as lc
from routing.demo import SeedError, seed
from routing.directory import load_directory
from routing.router import DirectoryRouter
from routing.stats import KINDS
from storage import analytics
from storage.ports import Storage
from tests.test_storage_contract import backend_settings, store  # noqa: F401

DIRECTORY = load_directory(Path(__file__).resolve().parents[1] / "config" / "directory")


async def test_seeded_history_is_synthetic_and_never_dispatched(store: Storage) -> None:  # noqa: F811
    now = utcnow()
    result = await seed(store, DIRECTORY, 60, 14, now, random.Random(7))
    assert result.incidents == 60
    recent = await store.incidents.recent(100)
    assert len(recent) == 60 and all(i.synthetic for i in recent)
    # Never dispatched: no card in the outbox, no timer that could ever fire.
    assert await store.outbox.pending() == 0
    assert await store.timers.claim_due("t", now + timedelta(days=400), 10, 30) == []
    # Never counted as real: the response statistics of real reports do not see them.
    assert await store.incidents.milestones(now - timedelta(days=30), KINDS) == []
    # The analytics see them, and say so on every row.
    query = analytics.Query(now - timedelta(days=15), now + timedelta(seconds=1))
    rows = await store.incidents.counts(query, ["province"])
    assert sum(r.count for r in rows) == 60 and all(r.count == r.synthetic for r in rows)
    real = analytics.Query(query.since, query.until, include_synthetic=False)
    assert await store.incidents.counts(real, ["province"]) == []
    # They walked the real lifecycle: each state one the machine allows, most closed.
    assert {i.status for i in recent} <= set(lc.STATES)
    assert sum(i.status in lc.CLOSED for i in recent) > 40
    timeline = await store.incidents.timeline(recent[0].id)
    assert timeline[0].kind == "reported"
    (response,) = await store.incidents.responses(query, [], now)
    assert response.reports == 60 and response.stages["acknowledged"].n > 40


async def test_seed_refuses_nonsense(store: Storage) -> None:  # noqa: F811
    for incidents, days in ((0, 10), (-1, 10), (10, 0), (10, 99999)):
        with pytest.raises(SeedError):
            await seed(store, DIRECTORY, incidents, days, utcnow())


def test_cli_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ESS_DATA_DIR", str(tmp_path / "var"))
    assert main(["demo", "seed", "--incidents", "12", "--days", "3", "--seed", "1"]) == 0
    assert "12 synthetic incidents" in capsys.readouterr().out
    assert main(["demo", "seed", "--incidents", "0"]) == 2
    assert "--incidents must be" in capsys.readouterr().err
    assert main(["incidents", "list"]) == 0
    assert capsys.readouterr().out.count("synthetic") == 12


async def test_seeded_incidents_have_the_routers_dispatch_targets(store: Storage) -> None:  # noqa: F811
    # What the real router would dispatch a report of that place to, so staff with agencies
    # see the seeded incidents of their agencies (in the stores' scoped read, the board's).
    now = utcnow()
    await seed(store, DIRECTORY, 80, 14, now, random.Random(11))
    seeded = await store.incidents.recent(200)
    router = DirectoryRouter(DIRECTORY)
    for incident in seeded:
        first = {t.agency for t in (await router.route(incident, 0)).targets}
        assert first and first <= set(dispatched_agencies(incident.details))
        assert incident.synthetic
    province = Counter(i.area_codes[0] for i in seeded).most_common(1)[0][0]
    mine = {i.reference for i in seeded if i.area_codes[0] == province}

    async def seen(agencies: list[str]) -> set[str]:
        return {i.reference for i in await store.incidents.in_areas(
            [province], agencies=agencies, limit=500)}

    assert await seen(["welfare"]) == mine  # every report of the province goes to welfare
    assert await seen([]) == mine
    assert await seen(["education"]) == set()  # education opens cases, is never dispatched
    escalated = {i.reference for i in seeded if i.area_codes[0] == province
                 and i.details["dispatch"]["level"] >= 1}
    assert await seen(["191"]) == escalated  # the 191 centre is told at level 1
    other = next(i.area_codes[0] for i in seeded if i.area_codes[0] != province)
    assert not mine & {i.reference for i in await store.incidents.in_areas(
        [other], agencies=["welfare"], limit=500)}
