"""Daily rollups of the response figures (storage/rollups.py): buckets and their error, the
migration held to its generator, backfill equal to the write path, and the same figures
whether a view reads the rollups or the incident rows, on every backend."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from config.settings import Settings
from routing.analytics import Period, Viewer, load, scope
from storage import rollups
from storage.analytics import Query, nearest_rank
from storage.ports import Storage
from tests.analytics_history import MIGRATIONS, SINCE, T0, UNTIL, write_history
from tests.test_analytics import PLACES
from tests.test_storage_contract import backend_settings, store  # noqa: F401


@pytest.fixture
async def history(store: Storage) -> Storage:  # noqa: F811
    await write_history(store)
    return store


def test_buckets_and_their_documented_error() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        x = rng.uniform(1, 10 ** 6)
        shown = rollups.middle(rollups.bucket(x))
        assert abs(shown / x - 1) <= rollups.ERROR + 1e-12
    assert rollups.middle(rollups.bucket(0.4)) == 0 and rollups.bucket(-3) == 0
    assert rollups.middle(rollups.bucket(10 ** 8)) == rollups.BOUNDS[-1]  # "at least"
    for x in (-5000.0, -30.0, -0.5, 0.0, 0.5, 42.0, 7200.0):
        shown = rollups.eta_middle(rollups.eta_bucket(x))
        assert abs(shown - x) <= rollups.ERROR * abs(x) + 1
    assert sorted(range(-600, 600, 7), key=rollups.eta_bucket) == list(range(-600, 600, 7))


def test_percentile_from_the_histogram_is_the_bucket_of_the_nearest_rank() -> None:
    rng = random.Random(3)
    for n in (1, 2, 5, 17, 300):
        values = [rng.expovariate(1 / 600) for _ in range(n)]
        histogram = [0] * rollups.BUCKETS
        for v in values:
            histogram[rollups.bucket(v)] += 1
        for p in (50, 90):
            exact = nearest_rank(values, p)
            assert exact is not None
            assert rollups.ranked(histogram, p) == rollups.middle(rollups.bucket(exact))
    assert rollups.ranked([0] * rollups.BUCKETS, 50) is None


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_the_shipped_migration_is_the_generators(backend: str) -> None:
    shipped = (MIGRATIONS / backend / "0175_analytics_rollups.sql").read_text()
    assert shipped == rollups.migration_sql(backend)
    shipped = (MIGRATIONS / backend / "0196_analytics_district_rollups.sql").read_text()
    assert shipped == rollups.district_migration_sql(backend)


def test_whole_days_and_the_plan() -> None:
    # Thai midnight is 17:00 UTC the day before.
    since = datetime(2026, 3, 1, 20, tzinfo=UTC)  # 03:00 local on the 2nd
    until = datetime(2026, 3, 5, 12, tzinfo=UTC)  # 19:00 local on the 5th
    first, end = rollups.whole_days(since, until) or (None, None)
    assert (str(first), str(end)) == ("2026-03-03", "2026-03-05")
    query = Query(since, until)
    split = rollups.plan(query, ["province"], until, timedelta(hours=1))
    assert split.family == "area" and [(q.since, q.until) for q in split.raw] == [
        (since, datetime(2026, 3, 2, 17, tzinfo=UTC)), (datetime(2026, 3, 4, 17, tzinfo=UTC),
                                                        until)]
    # What no family holds is read from the rows.
    for q, dims in ((replace(query, type="threat"), ["province"]),
                    (replace(query, area="6501"), ["station"]),
                    (replace(query, area="65", type="threat"), ["district"]),
                    (replace(query, areas=("6501",)), ["province"]),
                    (replace(query, areas=("65",)), ["agency"])):
        assert rollups.plan(q, dims, until, timedelta(hours=1)).raw == (q,)
    assert rollups.plan(replace(query, areas=("65",)), ["province"], until,
                        timedelta(hours=1)).family == "area"
    # The drill-down into a province: its districts, from the district family.
    assert rollups.plan(replace(query, area="65"), ["district"], until,
                        timedelta(hours=1)).family == "district"
    # A day not yet an hour old is not settled: it comes from the rows.
    late = rollups.plan(query, ["province"], datetime(2026, 3, 4, 17, 30, tzinfo=UTC),
                        timedelta(hours=1))
    assert late.days is not None and str(late.days[1]) == "2026-03-04"


async def _table(settings: Settings, wipe: bool, district: bool = False,
                 ) -> list[tuple[Any, ...]]:
    table, keys = (rollups.DISTRICT_TABLE, rollups.DISTRICT_KEYS) if district else (
        rollups.TABLE, rollups.KEYS)
    select = f"SELECT * FROM {table} ORDER BY {', '.join(keys)}"
    if settings.database_url:
        conn = await asyncpg.connect(settings.database_url)
        try:
            if wipe:
                await conn.execute(f"DELETE FROM {table}")
                await conn.execute(rollups.backfill_sql("postgres", district))
            return [tuple(int(v) if isinstance(v, bool) else v for v in r)
                    for r in await conn.fetch(select)]
        finally:
            await conn.close()
    async with aiosqlite.connect(settings.sqlite_path) as db:
        if wipe:
            await db.execute(f"DELETE FROM {table}")
            await db.executescript(rollups.backfill_sql("sqlite", district))
        return [tuple(r) for r in await db.execute_fetchall(select)]


async def test_backfill_equals_what_the_stores_write(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    written = await _table(backend_settings, wipe=False)
    # 39 incidents on three days; both families hold every one of them.
    reports = len(rollups.KEYS)  # the first column after the keys
    for grain in (10, 7):  # day rows and month rows
        rows = [r for r in written if len(r[0]) == grain]
        assert sum(r[reports] for r in rows if r[2] == rollups.ALL) == 39
        assert sum(r[reports] for r in rows if r[1] == rollups.ALL) == 39
        assert any(r[1] == rollups.ALL and r[2] == "police" for r in rows)
    assert await _table(backend_settings, wipe=True) == written
    # The district family: every incident once per grain, the same after a backfill.
    districts = await _table(backend_settings, wipe=False, district=True)
    for grain in (10, 7):
        rows = [r for r in districts if len(r[0]) == grain]
        assert sum(r[len(rollups.DISTRICT_KEYS)] for r in rows) == 39
        assert {(r[1], r[2]) for r in rows} == {("65", "6501"), ("10", "1001"), ("63", "6301")}
    assert await _table(backend_settings, wipe=True, district=True) == districts


NATIONAL = Viewer(("TH",), frozenset({"analyst"}))
THREE = Viewer(("65", "10", "63"), frozenset({"analyst"}))


async def _rows(storage: Storage, by: str, period: Period, viewer: Viewer = NATIONAL,
                **kw: Any) -> list[tuple[object, ...]]:
    query = scope(viewer, period, PLACES, **kw)
    view = await load(storage.incidents, by, query, period, 2, PLACES, now=UNTIL)
    return sorted(view.rows, key=str)  # type: ignore[attr-defined]


async def test_rollups_and_rows_give_the_same_figures(history: Storage) -> None:
    whole = Period(SINCE, UNTIL)
    # T0's day read from the incident rows (it starts inside the period's first day).
    edge = Period(T0 - timedelta(minutes=1), UNTIL)
    assert rollups.plan(scope(NATIONAL, edge, PLACES), ["province"], UNTIL,
                        rollups.SETTLE).raw[0].until > T0
    by_area = await _rows(history, "response", whole)
    assert by_area == await _rows(history, "response", edge)
    # Phitsanulok's districts (the district family) against its line of the national view
    # (the area family), and against the same districts read from the rows.
    r65 = next(r for r in by_area if r[0] == "65")
    (district,) = await _rows(history, "response", whole, area="65")
    assert district[2:] == r65[2:]
    assert rollups.plan(scope(NATIONAL, whole, PLACES, area="65"), ["district"], UNTIL,
                        rollups.SETTLE).family == "district"
    assert await _rows(history, "response", edge, area="65") == [district]
    # The help family serves a national viewer only; three provinces read the rows.
    for by in ("agency", "level"):
        assert await _rows(history, by, whole) == await _rows(history, by, whole, THREE)


async def test_whole_months_from_month_rows_give_the_figures_of_their_days(
        history: Storage) -> None:
    from datetime import date

    local = (T0 + timedelta(hours=7)).date()
    start = rollups.local_midnight(date(local.year, local.month, 1))
    after = rollups.local_midnight(rollups._next_month(date(local.year, local.month, 1)))
    now = after + timedelta(days=2)
    whole = Period(start, after + timedelta(days=1))  # the month of T0, and a day
    split = rollups.plan(scope(NATIONAL, whole, PLACES), ["province"], now, rollups.SETTLE)
    assert split.days and rollups.calendar(*split.days)[0] == [f"{local:%Y-%m}"]
    # A minute later the month is no longer whole: its days are read instead.
    days = Period(start + timedelta(minutes=1), whole.until)
    assert not rollups.calendar(*rollups.plan(scope(NATIONAL, days, PLACES), ["province"],
                                              now, rollups.SETTLE).days or (local, local))[0]
    for by in ("response", "agency", "level"):
        view = [await load(history.incidents, by, scope(NATIONAL, p, PLACES), p, 2, PLACES,
                           now=now) for p in (whole, days)]
        assert view[0].rows == view[1].rows and view[0].rows, by  # type: ignore[attr-defined]


def test_calendar_splits_months_and_days() -> None:
    from datetime import date

    assert rollups.calendar(date(2026, 1, 15), date(2026, 4, 3)) == (
        ["2026-02", "2026-03"], [(date(2026, 1, 15), date(2026, 2, 1)),
                                 (date(2026, 4, 1), date(2026, 4, 3))])
    assert rollups.calendar(date(2026, 12, 1), date(2027, 1, 1)) == (["2026-12"], [])
    assert rollups.calendar(date(2026, 1, 5), date(2026, 1, 20)) == (
        [], [(date(2026, 1, 5), date(2026, 1, 20))])


async def test_a_stale_update_changes_no_rollup(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    from bot.incident import TimelineEvent
    from storage.ports import StaleSession

    before = await _table(backend_settings, wipe=False)
    incident = (await history.incidents.recent(1))[0]
    incident.version -= 1
    with pytest.raises(StaleSession):
        await history.incidents.update(incident, TimelineEvent(
            "acknowledged", "test", "system", incident.created_at + timedelta(minutes=3)))
    assert await _table(backend_settings, wipe=False) == before


def test_the_rollup_columns_stay_within_sqlite_limits() -> None:
    # SQLite refuses more than 2000 columns and, before 3.32, 999 variables a statement.
    assert len(rollups.KEYS) + len(rollups.COLUMNS) < 999
    assert Path(MIGRATIONS / "sqlite" / "0175_analytics_rollups.sql").exists()


def test_an_update_sums_and_adds_only_the_columns_its_facts_can_move() -> None:
    delivered = rollups.moved_columns({"delivered_at", "delivered_s", "agencies"})
    assert delivered == ("delivered_n", *(f"delivered_{b}" for b in range(rollups.BUCKETS)))
    # Acknowledged sets the agency and level: keys of the help family, so every column.
    assert rollups.moved_columns({"acked_at", "acked_s", "help_agency", "help_level"}) \
        == rollups.COLUMNS
    assert rollups.moved_columns({"en_route_at", "eta_minutes"}) == ()  # no fact: none
    scene = rollups.moved_columns({"on_scene_at", "on_scene_s", "eta_over_s"})
    assert scene[:1] + scene[-1:] == ("on_scene_n", f"eta_{rollups.ETA_BUCKETS - 1}")
    assert {"eta_n", "eta_late", "on_scene_0"} <= set(scene) and "reports" not in scene
    assert rollups.moved_columns({"escalations"}) == ("escalated",)
    # The statement names only those columns.
    ctes = rollups.moved_ctes("c", delivered)
    assert "delivered_63 = t.delivered_63" in ctes and "on_scene_0" not in ctes
    assert "acked = t.acked" not in ctes


def test_each_fact_moves_only_the_columns_mapped_to_it() -> None:
    # Against the Python side of the same figures (Facts.counts, what SQLite writes): an
    # incident row that differs in one fact alone differs in no count outside its columns.
    base = {"local_day": "2026-03-02", "province": "65", "help_agency": "police",
            "help_level": 1, "synthetic": False, "drill": False, "acked_at": None,
            "escalations": 0, "delivered_s": None, "acked_s": None, "on_scene_s": None,
            "closed_s": None, "eta_over_s": None, "district": "6501"}
    assert tuple(base) == rollups.FACTS
    values: dict[str, list[Any]] = {
        "acked_at": [None, T0], "escalations": [0, 1, 2],
        **{f: [None, 0.4, 75.0, 3000.0, 2e6] for f in
           ("delivered_s", "acked_s", "on_scene_s", "closed_s")},
        "eta_over_s": [None, -600.0, -1.0, 0.0, 30.0, 5000.0]}
    for fact, options in values.items():
        moved = set(rollups.moved_columns({fact}))
        assert moved, fact
        for before in options:
            for after in options:
                old = rollups.Facts.of(tuple({**base, fact: before}.values())).counts()
                new = rollups.Facts.of(tuple({**base, fact: after}.values())).counts()
                differ = {c for c in old.keys() | new.keys() if old.get(c) != new.get(c)}
                assert differ <= moved, (fact, before, after, differ - moved)
    # The key facts are not in the map: changing one moves every column.
    for key in ("local_day", "province", "help_agency", "help_level", "synthetic", "drill",
                "district"):
        assert rollups.moved_columns({key}) == rollups.COLUMNS
    with pytest.raises(ValueError):
        rollups.moved_ctes("c", ())
