"""Rollups of the count and time views (docs/analytics.md "Speed"): incidents counted per
Thai local day or month and key, kept with the incident writes like `storage.rollups`.

A year of a million reports grouped by type, hour of the week or day is a scan of a million
rows; it reads instead `analytics_counts`, one row per (dimension, period, province, value,
synthetic, drill) holding how many incidents have that value. Two families:

- the *province* family (`province` a code, or `-` for none), one row per value of each of
  PROVINCE_DIMS: it answers national views (summed over provinces), viewers whose areas are
  provinces, and the drill-down into one province (districts: the `district` dimension);
- the *national* family (`province = '*'`) for NATIONAL_DIMS only, where a sum over 77
  provinces would read too many rows (168 hours of the week; the day series).

Every incident has exactly one value of each dimension, so the `silent` rows of a family
also count every incident: the area (per province) and the day/week/month series are
sums of them. Whole local days of a period come from day rows (whole months from month
rows, `period` then `YYYY-MM`), the partial days at its ends from the incident rows,
through the same keys, so a figure is the same whichever way it is read. What no family
holds (a `--type` or `--channel` filter, a drill-down or viewer below a province, the
stations) is read from the incident rows.

Only `status` changes after the report; a write that changes it moves its rows (−1 for
the old status, +1 for the new) in the same statement (PostgreSQL) or transaction (SQLite).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from bot.incident import Incident
from storage.analytics import (
    POSTGRES_DIMENSIONS,
    SQLITE_DIMENSIONS,
    CountRow,
    Query,
    area_columns,
    cell_of,
    check_dimensions,
    local_columns,
    where,
)
from storage.rollups import calendar, local_midnight, whole_days

TABLE = "analytics_counts"
KEYS = ("dim", "period", "province", "value", "synthetic", "drill")  # also the lock order
PROVINCE_DIMS = ("type", "channel", "silent", "status", "hour_of_week", "cell", "district")
NATIONAL_DIMS = ("silent", "hour_of_week")
NATIONAL = "*"
NONE = "-"
EVERY = "silent"  # the dimension whose rows count every incident once
Key = tuple[str, str, str, str]  # dim, period, province, value


def _value_sql(dim: str, pg: bool) -> str:
    return (POSTGRES_DIMENSIONS if pg else SQLITE_DIMENSIONS)[dim].replace(
        "hour_of_week", "hour_of_week::text" if pg else "CAST(hour_of_week AS TEXT)")


def keys_of(day: str, province: str | None, values: dict[str, str | None]) -> list[Key]:
    """The rollup rows (both grains, both families) one incident counts in, in lock order;
    `values` holds its value of every PROVINCE_DIMS dimension (None: `-`)."""
    out: list[Key] = []
    for period in (day, day[:7]):
        for dim in PROVINCE_DIMS:
            value = values[dim]
            out.append((dim, period, province or NONE, NONE if value is None else value))
        for dim in NATIONAL_DIMS:
            value = values[dim]
            out.append((dim, period, NATIONAL, NONE if value is None else value))
    return sorted(out)


def incident_values(type_: str, channel: str, silent: bool, status: str, hour_of_week: int,
                    cell: str | None, district: str | None) -> dict[str, str | None]:
    """An incident's values of PROVINCE_DIMS, as the rows path groups them."""
    return {"type": type_, "channel": channel, "silent": "silent" if silent else "open",
            "status": status, "hour_of_week": str(hour_of_week), "cell": cell,
            "district": district}


def incident_keys(incident: Incident) -> list[Key]:
    """keys_of a new incident, from what the stores write in its statistics columns."""
    province, district, _ = area_columns(incident)
    day, _, _, hour = local_columns(incident.created_at)
    return keys_of(day, province, incident_values(
        incident.type, incident.channel, incident.silent, incident.status, hour,
        cell_of(incident), district))


def status_keys(day: str, province: str | None, old: str, new: str) -> list[tuple[Key, int]]:
    """What a status change adds: −1 to the old status's rows, +1 to the new one's."""
    if old == new:
        return []
    return sorted(((("status", period, province or NONE, status), sign)
                   for period in (day, day[:7]) for status, sign in ((old, -1), (new, 1))))


def upsert_sql(backend: str) -> str:
    """One rollup row added to: (KEYS…, n)."""
    marks = ", ".join(f"${k}" for k in range(1, len(KEYS) + 2)) if backend == "postgres" \
        else ", ".join("?" * (len(KEYS) + 1))
    return (f"INSERT INTO {TABLE} ({', '.join(KEYS)}, n) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET n = {TABLE}.n + excluded.n")


def create_cte(first: int, synthetic: str, drill: str, source: str, after: str) -> str:
    """PostgreSQL: the CTE body adding one incident created by `source` (a CTE) to the rows
    given as four text arrays from parameter `first` on (keys_of, in order), after the
    CTE `after` has taken its locks (one order of locks for every writer)."""
    arrays = ", ".join(f"${first + k}::text[]" for k in range(4))
    return (f"INSERT INTO {TABLE} ({', '.join(KEYS)}, n) SELECT v.dim, v.period, v.province, "
            f"v.value, {synthetic}, {drill}, 1 FROM {source}, (SELECT count(*) FROM {after}) z, "
            f"unnest({arrays}) WITH ORDINALITY AS v(dim, period, province, value, o) "
            f"ORDER BY v.o ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET n = {TABLE}.n + 1")


def status_cte(old: str, new: str, written: str, after: str | None) -> str:
    """PostgreSQL: the CTE body moving the status rows of the row `old` (a CTE of its
    local_day, province, status, synthetic, drill before the write) to the status `new`
    (an expression) when `written` (the UPDATE's CTE) wrote it."""
    wait = f", (SELECT count(*) FROM {after}) z" if after else ""
    return (f"INSERT INTO {TABLE} ({', '.join(KEYS)}, n) SELECT 'status', p.period, "
            f"coalesce(o.province, '{NONE}'), s.value, o.synthetic, o.drill, s.n "
            f"FROM {old} o, {written}{wait}, "
            "LATERAL (VALUES (o.local_day), (substr(o.local_day, 1, 7))) AS p(period), "
            f"LATERAL (VALUES (o.status, -1), ({new}, 1)) AS s(value, n) "
            f"WHERE o.status <> {new} AND o.local_day IS NOT NULL "
            # One incident: province, synthetic and drill are the same on every row.
            'ORDER BY p.period COLLATE "C", s.value COLLATE "C" '
            f"ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET n = {TABLE}.n + excluded.n")


# -- reading -------------------------------------------------------------------------------

def source(query: Query, dim: str) -> tuple[str, str] | None:
    """Which family and rollup dimension answer counts per `dim` under `query`, or None
    (the incident rows)."""
    if query.type is not None or query.channel is not None:
        return None
    if query.area is not None and not _province(query.area):
        return None
    if "TH" not in query.areas and not all(_province(a) for a in query.areas):
        return None
    national = "TH" in query.areas and query.area is None
    stored = EVERY if dim in ("province", "day", "week", "month") else dim
    if stored not in PROVINCE_DIMS:
        return None
    if national and stored in NATIONAL_DIMS and dim != "province":
        return NATIONAL, stored
    return "province", stored


def _province(code: str) -> bool:
    return len(code) == 2 and code.isdigit()


def read_sql(backend: str, query: Query, dim: str, family: str, stored: str,
             days: tuple[date, date]) -> tuple[str, list[Any]]:
    """Sum the rollup rows of the local days [first, end): whole months from month rows
    (except for the day and week series), the other days from day rows."""
    mark = "$" if backend == "postgres" else "?"
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"{mark}{len(params)}"

    months, spans = ([], [days]) if dim in ("day", "week") else calendar(*days)
    periods = [f"period IN ({', '.join(p(m) for m in months)})"] if months else []
    periods += [f"(period >= {p(a.isoformat())} AND period < {p(b.isoformat())} "
                "AND length(period) = 10)" for a, b in spans]
    clauses = [f"dim = {p(stored)}", f"({' OR '.join(periods)})"]
    if family == NATIONAL:
        clauses.append(f"province = '{NATIONAL}'")
    else:
        clauses.append(f"province <> '{NATIONAL}'")
        for codes in ((*([] if "TH" in query.areas else [query.areas]),
                       *([] if query.area is None else [(query.area,)]))):
            clauses.append(f"province IN ({', '.join(p(c) for c in codes)})")
    if not query.include_drills:
        clauses.append("NOT drill")
    if not query.include_synthetic:
        clauses.append("NOT synthetic")
    group = {"province": "province", "day": "period", "week": "period",
             "month": "substr(period, 1, 7)"}.get(dim, "value")
    return (f"SELECT {group}, sum(n), sum(CASE WHEN synthetic THEN n ELSE 0 END) "
            f"FROM {TABLE} WHERE {' AND '.join(clauses)} GROUP BY {group}", params)


def rows_sql(backend: str, query: Query, dims: Sequence[str],
             moment: Callable[[datetime], Any]) -> tuple[str, list[Any]]:
    """Counts per `dims` from the incident rows."""
    pg = backend == "postgres"
    keys = [(POSTGRES_DIMENSIONS if pg else SQLITE_DIMENSIONS)[d] for d in dims]
    clause, params = where(query, "$" if pg else "?", moment)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return (f"SELECT {''.join(k + ', ' for k in keys)}count(*), "
            "sum(CASE WHEN synthetic THEN 1 ELSE 0 END) "
            f"FROM incidents WHERE {clause}{group}", params)


def _monday(day: str) -> str:
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


Fetch = Callable[[str, list[Any]], Awaitable[Sequence[Sequence[Any]]]]


async def counts(backend: str, fetch: Fetch, query: Query, dims: Sequence[str],
                 moment: Callable[[datetime], Any]) -> list[CountRow]:
    """Incidents per value of `dims`: whole local days from the rollups where a family holds
    them, the partial days at the ends (or everything) from the incident rows."""
    check_dimensions(dims)
    found = source(query, dims[0]) if len(dims) == 1 else None
    span = whole_days(query.since, query.until) if found else None
    parts: tuple[Query, ...] = (query,)
    totals: dict[tuple[str, ...], list[int]] = {}
    if found and span:
        start, end = local_midnight(span[0]), local_midnight(span[1])
        parts = tuple(replace(query, since=a, until=b)
                      for a, b in ((query.since, start), (end, query.until)) if a < b)
        sql, params = read_sql(backend, query, dims[0], *found, span)
        for key, n, synthetic in await fetch(sql, params):
            label = _monday(key) if dims[0] == "week" else str(key)
            total = totals.setdefault((label,), [0, 0])
            total[0] += int(n or 0)
            total[1] += int(synthetic or 0)
    for part in parts:
        sql, params = rows_sql(backend, part, dims, moment)
        for r in await fetch(sql, params):
            total = totals.setdefault(tuple(str(v) for v in r[:-2]), [0, 0])
            total[0] += int(r[-2] or 0)
            total[1] += int(r[-1] or 0)
    return [CountRow(k, n, s) for k, (n, s) in totals.items() if n]


# -- the backfill (migration 0195) ----------------------------------------------------------

def backfill_sql(backend: str) -> str:
    """The rollup rows of every incident already stored: one INSERT … SELECT per family,
    dimension and grain, grouped as the write path keys them."""
    pg = backend == "postgres"
    out = []
    for period in ("local_day", "substr(local_day, 1, 7)"):
        for family, dims in (("coalesce(province, '-')", PROVINCE_DIMS),
                             (f"'{NATIONAL}'", NATIONAL_DIMS)):
            for dim in dims:
                out.append(
                    f"INSERT INTO {TABLE} ({', '.join(KEYS)}, n)\nSELECT '{dim}', {period}, "
                    f"{family}, {_value_sql(dim, pg)}, synthetic, drill, count(*)\n"
                    "FROM incidents WHERE local_day IS NOT NULL\n"
                    "GROUP BY 2, 3, 4, 5, 6;\n")
    return "".join(out)


def migration_sql(backend: str) -> str:
    """The text of migration 0195 (a test holds the shipped file to it)."""
    boolean = "boolean" if backend == "postgres" else "INTEGER"
    return (
        "-- Rollups of the count and time views (storage/count_rollups.py, docs/analytics.md\n"
        "-- \"Speed\"): incidents per dimension, Thai local day or month, province and value,\n"
        "-- kept with the incident writes; backfilled here from the incidents already\n"
        "-- stored. Generated by storage.count_rollups.migration_sql (a test holds this\n"
        "-- file to it).\n"
        f"CREATE TABLE {TABLE} (\n    dim text NOT NULL, period text NOT NULL, "
        "province text NOT NULL, value text NOT NULL,\n"
        f"    synthetic {boolean} NOT NULL, drill {boolean} NOT NULL, "
        "n integer NOT NULL DEFAULT 0,\n"
        f"    PRIMARY KEY ({', '.join(KEYS)})\n);\n" + backfill_sql(backend))
