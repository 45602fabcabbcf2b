"""Prevention analytics against a hand-made history of 30 incidents, on every backend:
exact counts, percentiles, trends, suppression and scope."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from config.settings import Settings
from routing.analytics import (
    AnalyticsError,
    Period,
    Places,
    Viewer,
    check_threshold,
    load,
    scope,
    suppress,
    withhold,
)
from routing.directory import load_directory
from routing.gazetteer import Gazetteer
from storage import rollups
from storage.ports import Storage
from tests.analytics_history import (
    PRECOMPUTED,
    SINCE,
    T0,
    UNTIL,
    precompute_sql,
    write_history,
)
from tests.test_storage_contract import backend_settings, store  # noqa: F401

PLACES = Places(Gazetteer.load(),
                load_directory(Path(__file__).resolve().parents[1] / "config" / "directory"))
PERIOD = Period(SINCE, UNTIL)
NATIONAL = Viewer(("TH",), frozenset({"analyst"}))


def binned(exact: float) -> int:
    """What a view shows for an exact percentile: its bucket's middle, within ERROR."""
    shown = round(rollups.middle(rollups.bucket(exact)))
    assert abs(shown - exact) <= rollups.ERROR * exact + 0.5
    return shown


def rows(view: object) -> dict[object, tuple[object, ...]]:
    return {r[0]: r[1:] for r in view.rows}  # type: ignore[attr-defined]


@pytest.fixture
async def history(store: Storage) -> Storage:  # noqa: F811
    await write_history(store)
    return store


async def view(storage: Storage, by: str, threshold: int = 5, viewer: Viewer = NATIONAL,
               **kw: object) -> object:
    query = scope(viewer, PERIOD, PLACES, **kw)  # type: ignore[arg-type]
    return await load(storage.incidents, by, query, PERIOD, threshold, PLACES, now=UNTIL)


async def test_counts_by_type_with_trend_and_suppression(history: Storage) -> None:
    v = await view(history, "type")
    # count, share %, previous period, trend % (suppressed below 5 on both sides)
    # deranged's 7 is withheld too ("x", no share): the total of 30 less the shown counts
    # would otherwise give gathering's 3 away (complementary suppression).
    assert rows(v) == {"threat": (12, 40.0, 6, 100.0), "sexual_risk": (8, 26.7, 0, None),
                       "deranged": ("x", None, 0, None), "gathering": ("<5", None, 0, None)}
    assert v.total == 30 and v.synthetic == 2  # type: ignore[attr-defined]
    assert v.as_dict()["synthetic_included"] is True  # type: ignore[attr-defined]
    v2 = await view(history, "type", threshold=2)
    assert rows(v2)["gathering"] == (3, 10.0, 0, None)


async def test_area_drill_down_and_channels(history: Storage) -> None:
    v = await view(history, "area")
    assert {k: r[:2] for k, r in rows(v).items()} == {
        "65": ("Phitsanulok", 20), "10": ("Bangkok", "x"), "63": ("Tak", "<5")}
    assert {k: r[1] for k, r in rows(await view(history, "area", area="65")).items()} == \
        {"6501": 20}
    assert list(rows(await view(history, "area", area="6501"))) == ["st6501"]
    assert {k: r[0] for k, r in rows(await view(history, "channel")).items()} == \
        {"line": 16, "web": 8, "sms": 6}
    assert {k: r[0] for k, r in rows(await view(history, "silent")).items()} == \
        {"open": 24, "silent": 6}
    drills = await view(history, "area", include_drills=True)
    assert rows(drills)["65"][1] == 23
    real = await view(history, "type", include_synthetic=False)
    assert real.total == 28 and real.synthetic == 0  # type: ignore[attr-defined]


async def test_hour_of_week_and_days(history: Storage) -> None:
    grid = rows(await view(history, "hour"))
    assert grid["Mon"][10] == 20 and grid["Tue"][10] == "x" and grid["Wed"][22] == "<5"
    assert sum(c for r in grid.values() for c in r if isinstance(c, int)) == 20
    days = [f"{T0 + timedelta(days=d):%Y-%m-%d}" for d in range(3)]
    assert rows(await view(history, "day")) == {days[0]: (20,), days[1]: ("x",),
                                                days[2]: ("<5",)}
    assert rows(await view(history, "day", threshold=3))[days[1]] == (7,)


async def test_response_percentiles_per_stage(history: Storage) -> None:
    v = await view(history, "response", threshold=2)
    cols = v.columns  # type: ignore[attr-defined]
    r65 = dict(zip(cols, next(r for r in v.rows if r[0] == "65"), strict=True))  # type: ignore[attr-defined]
    assert r65["reports"] == 20
    # The exact nearest-rank values, as read from the histograms of storage/rollups.py: the
    # middle of the bucket each falls in, within the documented error.
    assert (r65["delivered_n"], r65["delivered_p50_s"], r65["delivered_p90_s"]) == (
        20, binned(19), binned(27))
    assert (r65["acknowledged_n"], r65["acknowledged_p50_s"],
            r65["acknowledged_p90_s"]) == (18, binned(540), binned(1020))
    assert (r65["on_scene_n"], r65["on_scene_p50_s"], r65["on_scene_p90_s"]) == (
        10, binned(900), binned(1140))
    assert (r65["resolved_p50_s"], r65["resolved_p90_s"]) == (binned(2100), binned(2340))
    assert r65["never_acknowledged_pct"] == 10.0 and r65["escalated_pct"] == 15.0
    assert (r65["eta_n"], r65["eta_late_pct"], r65["eta_over_p50_s"]) == (10, 50.0, 0)
    r10 = dict(zip(cols, next(r for r in v.rows if r[0] == "10"), strict=True))  # type: ignore[attr-defined]
    assert r10["never_acknowledged_pct"] == 100.0 and r10["acknowledged_p50_s"] is None
    # At 5, two never-acknowledged of twenty is too few to show, and Tak is "<5".
    v5 = await view(history, "response")
    r65 = dict(zip(cols, next(r for r in v5.rows if r[0] == "65"), strict=True))  # type: ignore[attr-defined]
    assert r65["never_acknowledged_pct"] is None and r65["escalated_pct"] is None
    r63 = dict(zip(cols, next(r for r in v5.rows if r[0] == "63"), strict=True))  # type: ignore[attr-defined]
    assert r63["reports"] == "<5" and r63["never_acknowledged_pct"] is None


async def test_agency_level_and_outcomes(history: Storage) -> None:
    agency = {r[0]: r[1] for r in (await view(history, "agency", threshold=2)).rows}  # type: ignore[attr-defined]
    assert agency == {"police": 14, "welfare": 4, "-": 12}
    # At 5, welfare's 4 is hidden, and the 12 with no agency withheld with it; so are the
    # small ones of each stage's count column (the two never acknowledged were delivered).
    agency5 = await view(history, "agency")
    cols = agency5.columns  # type: ignore[attr-defined]
    by = {r[0]: dict(zip(cols, r, strict=True)) for r in agency5.rows}  # type: ignore[attr-defined]
    assert {k: r["reports"] for k, r in by.items()} == {"police": 14, "-": "x", "welfare": "<5"}
    assert {k: r["delivered_n"] for k, r in by.items()} == {
        "police": 14, "-": "<5", "welfare": "<5"}
    level = {r[0]: r[1] for r in (await view(history, "level", threshold=2)).rows}  # type: ignore[attr-defined]
    assert level == {"0": 17, "1": "<2", "-": "x"}  # one is one too few; 12 would tell it
    outcomes = rows(await view(history, "outcome"))
    assert {k: r[0] for k, r in outcomes.items()} == {
        "resolved": "x", "referred": "<5", "unfounded": "<5", "duplicate": "<5"}


async def test_scope_follows_the_viewers_areas(history: Storage) -> None:
    tak = Viewer(("63",), frozenset({"analyst"}))
    v = await view(history, "area", threshold=2, viewer=tak)
    assert {k: r[1] for k, r in rows(v).items()} == {"63": 3}
    with pytest.raises(AnalyticsError, match="outside"):
        await view(history, "area", viewer=tak, area="65")
    station = Viewer(("st6501",), frozenset({"supervisor"}))
    assert rows(await view(history, "area", viewer=station, area="st6501"))
    with pytest.raises(AnalyticsError, match="may not"):
        await view(history, "type", viewer=Viewer(("TH",), frozenset({"responder"})))
    with pytest.raises(AnalyticsError, match="not an area"):
        await view(history, "type", area="99")


def test_threshold_and_suppression() -> None:
    for bad in (0, -1, 1):
        with pytest.raises(AnalyticsError):
            check_threshold(bad)
    assert [suppress(n, 5) for n in (0, 1, 4, 5)] == [0, "<5", "<5", 5]
    # Complementary: the hidden cells are at least two and add up to at least the threshold.
    assert withhold([12, 8, 7, 3], 5) == [12, 8, "x", "<5"]
    assert withhold([12, 8, 4, 3], 5) == [12, 8, "<5", "<5"]
    assert withhold([12, 6, 5, 1, 1], 5) == [12, 6, "x", "<5", "<5"]
    assert withhold([9, 9], 5) == [9, 9] and withhold([3, 1], 5) == ["<5", "<5"]
    with pytest.raises(AnalyticsError):
        Period.last(3650, UNTIL)


async def test_hexagons_merge_small_cells_upward(history: Storage) -> None:
    import h3

    v = await view(history, "hex")
    by_res = {(r[1], r[4]) for r in v.rows}  # type: ignore[attr-defined]
    # Bangkok's 7 is withheld: the total less 20 and 7 would give Tak's 3 away.
    assert by_res == {(7, 20), (7, "x"), (3, "<5")}
    assert [r[5] for r in v.rows] == ["yes", "no", "no"]  # type: ignore[attr-defined]
    tak = next(r for r in v.rows if r[1] == 3)  # type: ignore[attr-defined]
    assert h3.cell_to_parent(h3.latlng_to_cell(16.86968, 99.12898, 7), 3) == tak[0]
    assert {(r[1], r[4]) for r in (await view(history, "hex", threshold=2)).rows} == \
        {(7, 20), (7, 7), (7, 3)}  # type: ignore[attr-defined]


def test_merge_and_hot_spots() -> None:
    import h3

    from routing.hexbins import merge

    centre = h3.latlng_to_cell(16.8, 100.2, 7)
    ring = [c for c in h3.grid_disk(centre, 1) if c != centre]
    counts = {centre: 30, ring[0]: 6, ring[1]: 2, ring[2]: 1}
    bins = {b.cell: b for b in merge(counts, 5)}
    assert bins[centre].count == 30 and bins[centre].hot
    assert bins[ring[0]].count == 6 and not bins[ring[0]].hot  # beside a busier cell
    # The two small ones went up together; the total is kept.
    assert sum(b.count for b in bins.values()) == 39
    assert all(b.count >= 5 or b.resolution == 3 for b in bins.values())


async def test_migration_0151_backfills_what_the_stores_store_at_write_time(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    # A database from before 0151 gets, from its stored times, the very values the stores
    # now write with each row: local day, week, month, hour of week, stage durations.
    select = f"SELECT id, {', '.join(PRECOMPUTED)} FROM incidents ORDER BY id"
    wipe = f"UPDATE incidents SET {', '.join(c + ' = NULL' for c in PRECOMPUTED)}"

    def norm(rows: list[Any]) -> list[tuple[object, ...]]:
        return [tuple(round(v, 3) if isinstance(v, float) else v for v in r) for r in rows]

    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            written = norm(await conn.fetch(select))
            await conn.execute(wipe)
            await conn.execute(precompute_sql("postgres"))
            backfilled = norm(await conn.fetch(select))
        finally:
            await conn.close()
    else:
        async with aiosqlite.connect(backend_settings.sqlite_path) as db:
            written = norm(list(await db.execute_fetchall(select)))
            await db.execute(wipe)
            await db.execute(precompute_sql("sqlite"))
            backfilled = norm(list(await db.execute_fetchall(select)))
            await db.rollback()
    assert len(written) == 39 and any(r[9] is not None for r in written)  # eta_over_s
    # Mon 10:00, Tue 09:59 and 10:00 (the week before; Bangkok), Wed 22:00 (Tak), local time
    assert {r[4] for r in written} == {10, 33, 34, 70}
    assert backfilled == written
