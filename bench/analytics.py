"""Benchmark every analytics view (on demand, not in CI): PostgreSQL at 200,000 and
1,000,000 synthetic incidents, SQLite at 100,000, p50/p99 per view over a year, beside a bare
`SELECT province, count(*) FROM incidents GROUP BY province` on the same table in the same
round; then the report flow's rate with and without an analyst refreshing `/board/analytics`.

    .venv/bin/python -m bench.analytics [--pg-rows 200000,1000000] [--sqlite-rows 100000]
        [--runs 5] [--rounds 3] [--flow-rows 200000] [--users 16] [--seconds 8] [--pin]
        [--analysts 1] [--pause 5]

Rows are written straight into the table by SQL (the seeder's path through create/update
is far too slow for a million), with the same columns the stores fill: every one synthetic,
areas drawn from the shipped directory, milestones at plausible delays; the rollups are
then filled by the own backfills of migrations 0175, 0195 and 0196. It starts its own
PostgreSQL and Redis (tests/servers.py) on loopback ports. The machine may be shared: the
ratios to the baseline of the same round are what to compare, and each figure is given over
`--rounds` rounds.

**The report flow under an analyst** (`--flow-rows`, 0 to skip): one `ess serve` on
PostgreSQL + Redis holding `--flow-rows` incidents, closed-loop LINE reports from
bench/closed_loop.py for `--seconds`, alternately alone and while an analyst (a signed-in
board account with its second factor) reloads `/board/analytics?days=365` in a loop; printed
per round: reports/s of each, their ratio, and the analyst's page loads.
The analyst is a browser in its own process (`bench.analytics_flow --analyst`), as it would
be on another machine: once reloading without pause (the harshest case), once every
`--pause` seconds (a person; the page does not refresh itself). CPU ms per report of
`ess serve`, the bench (reporters and LINE stand-in), PostgreSQL (its backends), Redis and
the analyst's process are printed for each side. `--pin` puts `ess serve`, PostgreSQL and
Redis on every core but the last and the clients (reporters, LINE stand-in, the analyst's
browser) on the last, as clients elsewhere would be.
`ess serve` keeps the analytics guards it ships with (ESS_ANALYTICS_FRESH, ESS_ANALYTICS_PACE;
channels/board/analytics_share.py) unless the environment sets them:
`ESS_ANALYTICS_FRESH=0 ESS_ANALYTICS_PACE=0` measures the page computed at every load.
`--analysts N` has N analysts reload at once: the national one, then one per province, so no
two of them share figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import aiosqlite  # noqa: E402
import asyncpg  # noqa: E402
import h3  # noqa: E402

from bot.stats_cli import STATS_BY  # noqa: E402
from config.settings import Settings  # noqa: E402
from routing.analytics import CLI_VIEWER, Period, Places, load, scope  # noqa: E402
from routing.directory import load_directory  # noqa: E402
from routing.gazetteer import Gazetteer  # noqa: E402
from storage import count_rollups  # noqa: E402
from storage.crypto import Sealer  # noqa: E402
from storage.factory import open_storage  # noqa: E402
from storage.ports import Storage  # noqa: E402
from storage.rollups import DISTRICT_TABLE, TABLE, backfill_sql  # noqa: E402
from tests.analytics_history import precompute_sql  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402

TYPES = ["threat", "confinement", "sexual_risk", "deranged", "gathering"]
CHANNELS = ["line", "line", "line", "web", "sms"]
STATUSES = ["resolved", "resolved", "referred", "unfounded", "duplicate", "acknowledged"]
AGENCIES = ["police", "police", "welfare", "shelter"]
DIRECTORY = load_directory(ROOT / "config" / "directory")
PLACES = Places(Gazetteer.load(), DIRECTORY)
STATIONS = [(s.province_code, s.district_code, s.id,
             str(h3.latlng_to_cell(s.lat, s.lon, 7))) for s in DIRECTORY.stations]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def fill_postgres(url: str, rows: int, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        # One INSERT … SELECT per batch; random() per row through a LATERAL that names g.
        batch = 200_000
        for start in range(0, rows, batch):
            await conn.execute(
                """
INSERT INTO incidents (id, reference, type, status, channel, reporter, lang, silent,
    do_not_call, drill, location, location_source, area_codes, details, version, created_at,
    updated_at, synthetic, province, district, station, cell, delivered_at, acked_at,
    en_route_at, on_scene_at, closed_at, help_level, help_agency, eta_minutes, escalations)
SELECT 'b' || g, 'B-' || g, ($1::text[])[1 + (g % 5)], ($2::text[])[1 + (g % 6)],
    ($3::text[])[1 + (g % 5)], '\\x00'::bytea, 'th', g % 7 = 0, g % 7 = 0, false,
    '\\x00'::bytea, 'reporter_pin', '[]'::jsonb, '{}'::jsonb, 1, x.c, x.c, true,
    ($4::text[])[x.s], ($5::text[])[x.s], ($6::text[])[x.s], ($7::text[])[x.s],
    x.c + make_interval(secs => 2 + x.r * 10),
    CASE WHEN x.r < 0.95 THEN x.c + make_interval(secs => 30 + x.r * 900) END,
    CASE WHEN x.r < 0.8 THEN x.c + make_interval(secs => 90 + x.r * 900) END,
    CASE WHEN x.r < 0.8 THEN x.c + make_interval(secs => 700 + x.r * 1800) END,
    CASE WHEN x.r < 0.75 THEN x.c + make_interval(secs => 3000 + x.r * 6000) END,
    CASE WHEN x.r < 0.95 THEN (g % 3 = 0)::int END,
    CASE WHEN x.r < 0.95 THEN ($8::text[])[1 + (g % 4)] END,
    CASE WHEN x.r < 0.8 THEN 10 + (g % 3) * 5 END, (g % 5 = 0)::int
FROM generate_series($9::int, $10::int) g,
    LATERAL (SELECT $11::timestamptz - make_interval(secs => random() * 365 * 86400) AS c,
                    1 + floor(random() * $12::int)::int AS s, random() AS r
             WHERE g = g) x
""", TYPES, STATUSES, CHANNELS, [s[0] for s in STATIONS], [s[1] for s in STATIONS],
                [s[2] for s in STATIONS], [s[3] for s in STATIONS], AGENCIES, start + 1,
                min(rows, start + batch), now, len(STATIONS))
        # What the stores compute per row at write time (local day and hour, durations),
        # filled by the migration's own backfill: the bench reads the same stored columns.
        await conn.execute(precompute_sql("postgres"))
        await conn.execute(backfill_sql("postgres"))  # migration 0175's own backfill
        await conn.execute(backfill_sql("postgres", district=True))  # 0196's
        await conn.execute(count_rollups.backfill_sql("postgres"))  # 0195's
        await conn.execute("VACUUM ANALYZE incidents")
        for table in (TABLE, DISTRICT_TABLE, count_rollups.TABLE):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


async def fill_sqlite(path: Path, rows: int, now: datetime) -> None:
    rng = random.Random(1)
    end = now.timestamp()
    async with aiosqlite.connect(path) as db:
        data = []
        for g in range(rows):
            c = end - rng.random() * 365 * 86400
            r = rng.random()
            p, d, st, cell = STATIONS[rng.randrange(len(STATIONS))]
            data.append((
                f"b{g}", f"B-{g}", TYPES[g % 5], STATUSES[g % 6], CHANNELS[g % 5], b"\x00",
                "th", g % 7 == 0, g % 7 == 0, 0, b"\x00", "reporter_pin", "[]", "{}", 1, c, c,
                1, p, d, st, cell, c + 2 + r * 10, c + 30 + r * 900 if r < .95 else None,
                c + 90 + r * 900 if r < .8 else None, c + 700 + r * 1800 if r < .8 else None,
                c + 3000 + r * 6000 if r < .75 else None, int(g % 3 == 0) if r < .95 else None,
                AGENCIES[g % 4] if r < .95 else None, 10 + (g % 3) * 5 if r < .8 else None,
                int(g % 5 == 0)))
        await db.executemany(
            "INSERT INTO incidents (id, reference, type, status, channel, reporter, lang, "
            "silent, do_not_call, drill, location, location_source, area_codes, details, "
            "version, created_at, updated_at, synthetic, province, district, station, cell, "
            "delivered_at, acked_at, en_route_at, on_scene_at, closed_at, help_level, "
            "help_agency, eta_minutes, escalations) VALUES "
            f"({', '.join('?' * 31)})", data)
        await db.execute(precompute_sql("sqlite"))
        await db.executescript(backfill_sql("sqlite"))
        await db.executescript(backfill_sql("sqlite", district=True))
        await db.executescript(count_rollups.backfill_sql("sqlite"))
        await db.commit()
        await db.execute("ANALYZE")


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    await call()  # warm the caches once
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        out.append(time.perf_counter() - start)
    return out


def views() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for by in STATS_BY:
        out.append((by, None))
        if by in ("area", "response"):
            out.append((by, "65"))
    return out


async def measure(name: str, storage: Storage, baseline: Callable[[], Awaitable[object]],
                  runs: int, rounds: int, now: datetime) -> None:
    """Each view `runs` times per round beside the baseline; p50/p99 over all rounds, and
    the ratio of medians to the baseline's per round (the figure to compare)."""
    period = Period.last(365, now + timedelta(seconds=1))
    base: list[float] = []
    lat: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    for _ in range(rounds):
        this_base = await timed(runs, baseline)
        base += this_base
        for by, area in views():
            q = scope(CLI_VIEWER, period, PLACES, area=area)
            this = await timed(runs, lambda q=q, by=by: load(  # type: ignore[misc]
                storage.incidents, by, q, period, 5, PLACES, now=now))
            label = by + (f" --area {area}" if area else "")
            lat.setdefault(label, []).extend(this)
            ratios.setdefault(label, []).append(
                statistics.median(this) / statistics.median(this_base))
    print(f"{name:<22}{'baseline count(*)':<24}{pct(base, .5):>9.1f}{pct(base, .99):>9.1f}")
    for label, values in lat.items():
        r = ratios[label]
        print(f"{'':<22}{label:<24}{pct(values, .5):>9.1f}{pct(values, .99):>9.1f}"
              f"{statistics.median(r):>8.1f}   ({min(r):.1f}–{max(r):.1f})")


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs × {args.rounds} rounds")
    print(f"{'backend, rows':<22}{'view':<24}{'p50 ms':>9}{'p99 ms':>9}{'x base':>8}"
          "   (per round)")
    if args.sqlite_rows:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=tmp, log_format="console")
            storage = await open_storage(settings, Sealer([b"b" * 32]))
            try:
                await fill_sqlite(settings.sqlite_path, args.sqlite_rows, now)
                async with aiosqlite.connect(settings.sqlite_path) as db:
                    async def base() -> object:
                        return await db.execute_fetchall(
                            "SELECT province, count(*) FROM incidents GROUP BY province")
                    await measure(f"sqlite {args.sqlite_rows:,}", storage, base, args.runs,
                                  args.rounds, now)
            finally:
                await storage.close()
    sizes = [int(n) for n in args.pg_rows.split(",") if n.strip() and int(n)]
    if sizes:
        pg = PostgresServer()
        pg.start()
        try:
            for rows in sizes:
                await measure_postgres(pg, rows, args, now)
        finally:
            pg.close()
    if args.flow_rows:
        from bench.analytics_flow import flow

        await flow(args.flow_rows, args.users, args.seconds, args.rounds, now, args.spy,
                   args.pause, args.pin, args.analysts)
    print(f"load average {os.getloadavg()[0]:.2f}")


async def measure_postgres(pg: PostgresServer, rows: int, args: argparse.Namespace,
                           now: datetime) -> None:
    url = pg.new_database()
    # A generous statement timeout: a loaded shared machine must not end the run.
    settings = Settings(data_dir=tempfile.mkdtemp(), log_format="console", database_url=url,
                        store_timeout=60.0)
    storage = await open_storage(settings, Sealer([b"b" * 32]))
    try:
        t = time.perf_counter()
        await fill_postgres(url, rows, now)
        print(f"(postgres: {rows:,} rows written in {time.perf_counter() - t:.0f} s)")
        conn = await asyncpg.connect(url)
        try:
            async def base() -> object:
                return await conn.fetch(
                    "SELECT province, count(*) FROM incidents GROUP BY province")
            await measure(f"postgres {rows:,}", storage, base, args.runs, args.rounds, now)
        finally:
            await conn.close()
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-rows", default="200000,1000000",
                        help="comma-separated table sizes on PostgreSQL (0: none)")
    parser.add_argument("--sqlite-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="per view and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flow-rows", type=int, default=200_000,
                        help="incidents behind the report flow under an analyst (0: skip)")
    parser.add_argument("--users", type=int, default=16, help="closed-loop reporters")
    parser.add_argument("--seconds", type=float, default=8.0, help="per side and round")
    parser.add_argument("--pause", type=float, default=5.0,
                        help="seconds between the paced analyst's reloads")
    parser.add_argument("--analysts", type=int, default=1,
                        help="analysts reloading at once: the national one, then one per "
                             "province (no two share figures)")
    parser.add_argument("--pin", action="store_true",
                        help="the flow's servers on all cores but the last, its clients there")
    parser.add_argument("--spy", default="",
                        help="py-spy record ess serve while the analyst reloads flat out, "
                             "writing SPY.<round> (collapsed stacks; py-spy in the venv)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
