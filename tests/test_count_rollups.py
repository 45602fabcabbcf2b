"""Rollups of the count and time views (storage/count_rollups.py): the migration held to its
generator, backfill equal to the write path, and the same counts from the rollups as from
the incident rows, on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiosqlite
import asyncpg
import pytest

from config.settings import Settings
from storage import count_rollups
from storage.analytics import Query
from storage.ports import Storage
from storage.rollups import whole_days
from storage.sqlite import ts
from tests.analytics_history import MIGRATIONS, SINCE, T0, UNTIL, write_history
from tests.test_storage_contract import backend_settings, store  # noqa: F401

DIMS = ("type", "channel", "silent", "status", "hour_of_week", "cell", "district",
        "province", "day", "week", "month")


@pytest.fixture
async def history(store: Storage) -> Storage:  # noqa: F811
    await write_history(store)
    return store


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_the_shipped_migration_is_the_generators(backend: str) -> None:
    shipped = (MIGRATIONS / backend / "0195_analytics_counts.sql").read_text()
    assert shipped == count_rollups.migration_sql(backend)


Run = Callable[[str, list[Any]], Awaitable[list[tuple[Any, ...]]]]


async def _with(settings: Settings, work: Callable[[Run, str], Awaitable[Any]]) -> Any:
    """`work(run, backend)` on a plain connection to the store's database."""
    if settings.database_url:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async def run_pg(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                return [tuple(int(v) if isinstance(v, bool) else v for v in r)
                        for r in await conn.fetch(sql, *params)]
            return await work(run_pg, "postgres")
        finally:
            await conn.close()
    async with aiosqlite.connect(settings.sqlite_path) as db:
        async def run_sqlite(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
            rows = [tuple(r) for r in await db.execute_fetchall(sql, params)]
            await db.commit()
            return rows
        return await work(run_sqlite, "sqlite")


async def _table(settings: Settings, wipe: bool = False) -> list[tuple[Any, ...]]:
    async def work(run: Run, backend: str) -> list[tuple[Any, ...]]:
        if wipe:
            await run(f"DELETE FROM {count_rollups.TABLE}", [])
            for statement in count_rollups.backfill_sql(backend).split(";\n")[:-1]:
                await run(statement, [])
        return await run(f"SELECT * FROM {count_rollups.TABLE} WHERE n <> 0 "
                         f"ORDER BY {', '.join(count_rollups.KEYS)}", [])
    return list(await _with(settings, work))


async def _from_rows(settings: Settings, query: Query, dim: str) -> dict[tuple[str, ...],
                                                                          tuple[int, int]]:
    """The counts as the views read them before the rollups: one GROUP BY over the rows."""
    async def work(run: Run, backend: str) -> dict[tuple[str, ...], tuple[int, int]]:
        sql, params = count_rollups.rows_sql(backend, query, [dim], (
            lambda d: d) if backend == "postgres" else ts)
        return {tuple(str(v) for v in r[:-2]): (int(r[-2]), int(r[-1]))
                for r in await run(sql, params) if r[-2]}
    return dict(await _with(settings, work))


async def test_backfill_equals_what_the_stores_write(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    written = await _table(backend_settings)
    # 39 incidents: each counts once per dimension and grain of each family.
    for dim in count_rollups.PROVINCE_DIMS:
        for grain in (10, 7):
            assert sum(r[-1] for r in written if r[0] == dim and len(r[1]) == grain
                       and r[2] != count_rollups.NATIONAL) == 39, (dim, grain)
    for dim in count_rollups.NATIONAL_DIMS:
        assert sum(r[-1] for r in written if r[0] == dim and len(r[1]) == 10
                   and r[2] == count_rollups.NATIONAL) == 39
    # The statuses moved with every update: no report is still counted as "reported".
    assert {r[3] for r in written if r[0] == "status"} >= {"resolved", "referred"}
    assert await _table(backend_settings, wipe=True) == written


async def test_rollups_and_rows_give_the_same_counts(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    whole = Query(SINCE, UNTIL)
    edge = Query(T0 - timedelta(minutes=1), UNTIL)  # T0's day from the rows
    queries = [whole, edge, replace(whole, area="65"), replace(whole, areas=("65", "10")),
               replace(whole, include_drills=True), replace(whole, include_synthetic=False),
               replace(whole, since=T0 - timedelta(days=10))]  # the six of the week before
    for query in queries:
        assert whole_days(query.since, query.until)
        for dim in DIMS:
            assert count_rollups.source(query, dim) is not None, dim
            got = {r.keys: (r.count, r.synthetic)
                   for r in await history.incidents.counts(query, [dim])}
            assert got == await _from_rows(backend_settings, query, dim), (query, dim)
            assert got, (query, dim)
    # ... and they were read from the rollups: without them whole days count nothing.
    await _with(backend_settings, lambda run, _: run(
        f"DELETE FROM {count_rollups.TABLE}", []))
    assert sum(r.count for r in await history.incidents.counts(whole, ["type"])) == 0
    assert sum(r.count for r in await history.incidents.counts(edge, ["type"])) == 20


def test_what_no_family_holds_is_read_from_the_rows() -> None:
    query = Query(SINCE, UNTIL)
    for q, dim in ((replace(query, type="threat"), "province"),
                   (replace(query, channel="sms"), "type"),
                   (replace(query, area="6501"), "station"),
                   (replace(query, areas=("6501",)), "type"), (query, "station")):
        assert count_rollups.source(q, dim) is None
    assert count_rollups.source(query, "hour_of_week") == (count_rollups.NATIONAL,
                                                           "hour_of_week")
    assert count_rollups.source(replace(query, area="65"), "day") == ("province", "silent")


async def test_a_status_change_moves_its_rows_and_a_stale_one_nothing(
        history: Storage, backend_settings: Settings) -> None:  # noqa: F811
    from bot.incident import TimelineEvent
    from storage.ports import StaleSession

    before = await _table(backend_settings)
    incident = (await history.incidents.recent(1))[0]
    stale = replace(incident, version=incident.version - 1, status="unfounded")
    with pytest.raises(StaleSession):
        await history.incidents.update(stale, TimelineEvent(
            "unfounded", "test", "system", incident.created_at + timedelta(minutes=3)))
    assert await _table(backend_settings) == before
    was = incident.status
    incident.status = "unfounded"
    await history.incidents.update(incident, TimelineEvent(
        "unfounded", "test", "system", incident.created_at + timedelta(minutes=4)))
    after = await _table(backend_settings)
    assert after != before

    def status(rows: list[tuple[Any, ...]], value: str | None = None) -> int:
        return sum(r[-1] for r in rows if r[0] == "status" and len(r[1]) == 10
                   and r[2] != count_rollups.NATIONAL and value in (None, r[3]))
    assert status(after) == status(before)
    assert status(after, "unfounded") == status(before, "unfounded") + (was != "unfounded")
    assert status(after, was) == status(before, was) - (was != "unfounded")
    assert await _table(backend_settings, wipe=True) == after
