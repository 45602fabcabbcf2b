"""Daily rollups of the response figures, with duration histograms (docs/analytics.md "Speed").

A response view over a year of a million incidents would sort five columns of a million
rows; it reads instead one row per (Thai local day, key) of `analytics_daily`, kept in the
same transaction as the incident writes that change it, and ranks percentiles from fixed
log-spaced histograms. Two key families share the table, because every further dimension
multiplies the rows until there are as many as incidents:

- the *area* family, one row per (day, province, synthetic, drill), `agency = level = '*'`;
- the *help* family, one row per (day, agency, level, synthetic, drill), `province = '*'`;

each also per month (`local_day` is then `YYYY-MM`), so a year is read from twelve month
rows per key and the days at its ends, not from 365 day rows. A third family has its own
table, `analytics_district_daily` (migration 0196): one row per (day or month, province,
district, synthetic, drill), for the drill-down into a province (its districts); the
province of a row is the district's (the incident's own province column).

A query that filters or groups by anything else (a station, a type, a channel)
is answered from the incident rows, ranked through the same histograms so that every view
gives the same figure for the same incidents.

**Bucket error.** Bucket 0 holds [0, 1 s); bucket k (1 … 62) holds [1.25^(k−1), 1.25^k) s;
bucket 63 holds 1.25^62 s (about 12 days) and more. A percentile is reported as the
geometric middle of the bucket holding the nearest-rank value, so for 1 s ≤ x < 12 days it
is within ±11.8 % of the exact value (√1.25 = 1.118); below 1 s it reads 0; beyond 12 days
it reads 12 days (at least). The ETA's signed lateness uses the same buckets on each side.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from storage.analytics import (
    ETA_OVER,
    LOCAL_OFFSET,
    POSTGRES_DIMENSIONS,
    SECONDS,
    SETTLE,
    SQLITE_DIMENSIONS,
    STAGES,
    Query,
    ResponseRow,
    StageFigure,
    check_dimensions,
    where,
)

RATIO = 1.25
BUCKETS = 64
BOUNDS: tuple[float, ...] = tuple(RATIO ** k for k in range(BUCKETS - 1))  # lower bounds
ERROR = math.sqrt(RATIO) - 1  # the documented relative error of a percentile
ALL = "*"  # the key column a family does not use
NONE = "-"  # no agency / level (never acknowledged)
KEYS = ("local_day", "province", "agency", "level", "synthetic", "drill")
# Per incident: the stored columns a contribution is made of (storage.analytics SECONDS).
FACTS = ("local_day", "province", "help_agency", "help_level", "synthetic", "drill",
         "acked_at", "escalations", "delivered_s", "acked_s", "on_scene_s",
         "closed_s", "eta_over_s", "district")
ETA_BUCKETS = 2 * BUCKETS  # lateness: 0 … 63 early (mirrored), 64 … 127 on time or late
COUNTS = ("reports", "acked", "escalated", *(f"{s}_n" for s in STAGES), "eta_n", "eta_late")
COLUMNS: tuple[str, ...] = (
    *COUNTS, *(f"{s}_{b}" for s in STAGES for b in range(BUCKETS)),
    *(f"eta_{b}" for b in range(ETA_BUCKETS)))
_AT = {c: i for i, c in enumerate(COLUMNS)}
_STAGE_AT = tuple((s, _AT[f"{s}_0"]) for s in STAGES)
_ETA_AT = _AT["eta_0"]
TABLE = "analytics_daily"
DISTRICT_TABLE = "analytics_district_daily"
DISTRICT_KEYS = ("local_day", "province", "district", "synthetic", "drill")
Change = tuple[tuple[Any, ...], dict[str, int]]  # a rollup row's key, what to add to it


def bucket(seconds: float) -> int:
    """The histogram bucket of a non-negative duration (negative ones count as 0)."""
    return bisect.bisect_right(BOUNDS, seconds)


def eta_bucket(seconds: float) -> int:
    if seconds >= 0:
        return BUCKETS + bucket(seconds)
    return BUCKETS - 1 - bucket(-seconds)


def middle(b: int) -> float:
    """What a percentile falling in bucket `b` reads (its geometric middle; module doc)."""
    if b == 0:
        return 0.0
    if b >= BUCKETS - 1:
        return BOUNDS[-1]
    return BOUNDS[b - 1] * math.sqrt(RATIO)


def eta_middle(b: int) -> float:
    return middle(b - BUCKETS) if b >= BUCKETS else -middle(BUCKETS - 1 - b)


def ranked(histogram: Sequence[int], p: float, read: Callable[[int], float] = middle,
           ) -> float | None:
    """Nearest-rank percentile from a histogram: the bucket where the rank falls."""
    n = sum(histogram)
    if not n:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    seen = 0
    for b, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return read(b)
    raise AssertionError("unreachable: the rank is at most n")


@dataclass(frozen=True, slots=True)
class Facts:
    """What one incident row adds to the rollups (the FACTS columns, in order)."""

    day: str
    province: str | None
    agency: str | None
    level: int | None
    synthetic: bool
    drill: bool
    acked: bool = False
    escalations: int = 0
    seconds: tuple[float | None, ...] = (None,) * len(STAGES)
    eta_over: float | None = None
    district: str | None = None

    @classmethod
    def of(cls, row: Sequence[Any]) -> Facts:
        return cls(str(row[0]), row[1], row[2], None if row[3] is None else int(row[3]),
                   bool(row[4]), bool(row[5]), row[6] is not None, int(row[7] or 0),
                   tuple(row[8:8 + len(STAGES)]), row[8 + len(STAGES)],
                   row[9 + len(STAGES)])

    def rollup_keys(self) -> list[tuple[Any, ...]]:
        """Both families, each for the day and for its month (`YYYY-MM`)."""
        level = NONE if self.level is None else str(self.level)
        return [k for period in (self.day, self.day[:7]) for k in (
            (period, self.province or NONE, ALL, ALL, self.synthetic, self.drill),
            (period, ALL, self.agency or NONE, level, self.synthetic, self.drill))]

    def district_keys(self) -> list[tuple[Any, ...]]:
        """The district family (DISTRICT_KEYS), for the day and for its month."""
        return [(period, self.province or NONE, self.district or NONE, self.synthetic,
                 self.drill) for period in (self.day, self.day[:7])]

    def counts(self) -> dict[str, int]:
        out = {"reports": 1, "acked": int(self.acked), "escalated": int(self.escalations > 0)}
        for stage, value in zip(STAGES, self.seconds, strict=True):
            if value is not None:
                out[f"{stage}_n"] = 1
                out[f"{stage}_{bucket(value)}"] = 1
        if self.eta_over is not None:
            out.update(eta_n=1, eta_late=int(self.eta_over > 0))
            out[f"eta_{eta_bucket(self.eta_over)}"] = 1
        return out


def delta(before: Facts | None, after: Facts | None,
          keys: Callable[[Facts], list[tuple[Any, ...]]] = Facts.rollup_keys) -> list[Change]:
    """What to add to which rollup rows (of the family `keys` gives: `Facts.rollup_keys`
    for TABLE, `Facts.district_keys` for DISTRICT_TABLE) when an incident row goes from
    `before` to `after` (None: absent), in key order so that concurrent writers lock rows
    alike."""
    out: dict[tuple[Any, ...], dict[str, int]] = {}
    for facts, sign in ((before, -1), (after, 1)):
        if facts is None:
            continue
        counts = facts.counts()
        for key in keys(facts):
            row = out.setdefault(key, {})
            for column, n in counts.items():
                row[column] = row.get(column, 0) + sign * n
    return sorted(((k, {c: n for c, n in v.items() if n}) for k, v in out.items()
                   if any(v.values())), key=lambda change: change[0])


def upsert_sql(backend: str, table: str = TABLE, keys: Sequence[str] = KEYS) -> str:
    """One rollup row added to (every column; zeros where nothing changes)."""
    names = (*keys, *COLUMNS)
    marks = ", ".join(f"${k}" for k in range(1, len(names) + 1)) if backend == "postgres" \
        else ", ".join("?" * len(names))
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COLUMNS)
    return (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}")


def upsert_rows(changes: Sequence[Change],
                boolean: Callable[[bool], Any] = bool) -> list[tuple[Any, ...]]:
    """Parameters of upsert_sql: the key (its last two: synthetic, drill), then COLUMNS."""
    return [(*key[:-2], boolean(key[-2]), boolean(key[-1]),
             *(values.get(c, 0) for c in COLUMNS)) for key, values in changes]


# -- reading -------------------------------------------------------------------------------

def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC) - LOCAL_OFFSET


def whole_days(since: datetime, until: datetime) -> tuple[date, date] | None:
    """The local days [first, end) lying wholly in [since, until), or None."""
    first = (since + LOCAL_OFFSET).date()
    if local_midnight(first) < since:
        first += timedelta(days=1)
    end = (until + LOCAL_OFFSET).date()
    return (first, end) if first < end else None


def calendar(first: date, end: date) -> tuple[list[str], list[tuple[date, date]]]:
    """The months (`YYYY-MM`) lying wholly in the days [first, end), and the spans of days
    before and after them (all of it days when no whole month fits)."""
    start = first if first.day == 1 else _next_month(first)
    months = []
    while _next_month(start) <= end:
        months.append(f"{start:%Y-%m}")
        start = _next_month(start)
    if not months:
        return [], [(first, end)]
    head = date.fromisoformat(f"{months[0]}-01")
    return months, [(a, b) for a, b in ((first, head), (start, end)) if a < b]


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def family(query: Query, dims: Sequence[str]) -> str | None:
    """Which key family answers `dims` under `query`, or None (the incident rows)."""
    if query.type is not None or query.channel is not None:
        return None
    provinces = all(len(a) == 2 and a.isdigit() for a in query.areas)
    if query.area is not None:
        # The drill-down into a province: its districts.
        area = query.area
        return "district" if list(dims) == ["district"] and len(area) == 2 and \
            area.isdigit() and ("TH" in query.areas or provinces) else None
    national = "TH" in query.areas
    if set(dims) <= {"province"} and (national or provinces):
        return "area"
    if set(dims) <= {"agency", "level"} and len(dims) <= 1 and national:
        return "help"
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """A response query split: whole settled days from the rollups, the rest from rows."""

    family: str | None
    days: tuple[date, date] | None
    raw: tuple[Query, ...]


def plan(query: Query, dims: Sequence[str], now: datetime, settle: timedelta) -> Plan:
    found = family(query, dims)
    # A day is read from the rollups only once all of it is old enough to judge "never
    # acknowledged" (settle): before that, each incident's own age decides.
    span = whole_days(query.since, min(query.until, now - settle)) if found else None
    if span is None:
        return Plan(None, None, (query,))
    start, end = local_midnight(span[0]), local_midnight(span[1])
    raw = tuple(replace(query, since=a, until=b)
                for a, b in ((query.since, start), (end, query.until)) if a < b)
    return Plan(found, span, raw)


def read_sql(backend: str, query: Query, dims: Sequence[str], kind: str,
             days: tuple[date, date]) -> tuple[str, list[Any]]:
    """Sum the rollup rows of the local days [first, end) for `dims` of family `kind`: the
    months lying wholly inside from the month rows, the days around them from day rows."""
    mark = "$" if backend == "postgres" else "?"
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"{mark}{len(params)}"

    column = {"province": "province", "agency": "agency", "level": "level",
              "district": "district"}
    keys = [column[d] for d in dims]
    months, spans = calendar(*days)
    periods = [f"local_day IN ({', '.join(p(m) for m in months)})"] if months else []
    periods += [f"(local_day >= {p(a.isoformat())} AND local_day < {p(b.isoformat())} "
                "AND length(local_day) = 10)" for a, b in spans]
    clauses = [f"({' OR '.join(periods)})"]
    if kind != "district":
        clauses.append("agency = '*'" if kind == "area" else "province = '*'")
    else:
        clauses.append(f"province = {p(query.area)}")
    if not query.include_drills:
        clauses.append("NOT drill")
    if not query.include_synthetic:
        clauses.append("NOT synthetic")
    if kind in ("area", "district") and "TH" not in query.areas:
        clauses.append(f"province IN ({', '.join(p(a) for a in query.areas)})")
    synthetic = "CASE WHEN synthetic THEN reports ELSE 0 END"
    sums = ", ".join(f"sum({c})" for c in COLUMNS)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return (f"SELECT {''.join(k + ', ' for k in keys)}sum({synthetic}), {sums} "
            f"FROM {DISTRICT_TABLE if kind == 'district' else TABLE} "
            f"WHERE {' AND '.join(clauses)}{group}", params)


@dataclass(slots=True)
class Tally:
    """A response row being summed: from rollup sums and from incident rows alike."""

    reports: int = 0
    synthetic: int = 0
    settled: int = 0
    never_acked: int = 0
    escalated: int = 0
    stages: dict[str, list[int]] = field(
        default_factory=lambda: {s: [0] * BUCKETS for s in STAGES})
    eta: list[int] = field(default_factory=lambda: [0] * ETA_BUCKETS)
    eta_late: int = 0

    def add_sums(self, synthetic: int, sums: Sequence[int]) -> None:
        """One row of read_sql (after the keys): whole settled days."""
        if len(sums) != len(COLUMNS):
            raise ValueError(f"{len(sums)} sums for the {len(COLUMNS)} rollup columns")
        # By position, not by name: a response view adds hundreds of these 400-wide rows.
        values = [int(v or 0) for v in sums]
        reports = values[_AT["reports"]]
        self.reports += reports
        self.synthetic += int(synthetic or 0)
        self.settled += reports
        self.never_acked += reports - values[_AT["acked"]]
        self.escalated += values[_AT["escalated"]]
        for stage, at in _STAGE_AT:
            histogram = self.stages[stage]
            histogram[:] = map(operator.add, histogram, values[at:at + BUCKETS])
        self.eta[:] = map(operator.add, self.eta, values[_ETA_AT:_ETA_AT + ETA_BUCKETS])
        self.eta_late += values[_AT["eta_late"]]

    def add_row(self, row: Sequence[Any], settled: bool) -> None:
        """One incident row: synthetic, acked (bool), the stage durations, eta_over_s,
        escalations; `settled`: acknowledged or old enough to judge."""
        n = len(STAGES)
        self.reports += 1
        self.synthetic += int(bool(row[0]))
        if settled:
            self.settled += 1
            self.never_acked += int(not row[1])
        for stage, value in zip(STAGES, row[2:2 + n], strict=True):
            if value is not None:
                self.stages[stage][bucket(value)] += 1
        over = row[2 + n]
        if over is not None:
            self.eta[eta_bucket(over)] += 1
            self.eta_late += int(over > 0)
        self.escalated += int(bool(row[3 + n]))

    def result(self, keys: tuple[str, ...]) -> ResponseRow:
        stages = {s: StageFigure(sum(h), ranked(h, 50), ranked(h, 90))
                  for s, h in self.stages.items()}
        return ResponseRow(keys, self.reports, self.synthetic, self.settled, self.never_acked,
                           self.escalated, stages, sum(self.eta), self.eta_late,
                           ranked(self.eta, 50, eta_middle))


def results(tallies: Mapping[tuple[str, ...], Tally]) -> list[ResponseRow]:
    return [t.result(k) for k, t in tallies.items() if t.reports]


def tally_rows(tallies: dict[tuple[str, ...], Tally], rows: Iterable[Sequence[Any]], width: int,
               is_settled: Callable[[Any], bool]) -> None:
    """Incident rows (keys…, synthetic, created_at, acked_at, durations…, eta_over_s,
    escalations) into `tallies`."""
    for row in rows:
        keys = tuple(str(v) for v in row[:width])
        rest = row[width:]
        acked = rest[2] is not None
        tallies.setdefault(keys, Tally()).add_row(
            (rest[0], acked, *rest[3:]), acked or is_settled(rest[1]))


Fetch = Callable[[str, list[Any]], Awaitable[Sequence[Sequence[Any]]]]


async def responses(backend: str, fetch: Fetch, query: Query, dims: Sequence[str],
                    now: datetime, moment: Callable[[datetime], Any]) -> list[ResponseRow]:
    """The response rows of `query` per `dims`: whole settled days from the rollups, the
    rest (or everything, for what no family holds) from the incident rows, all ranked
    through the same histograms. `fetch` runs SQL on the store; `moment` converts a time."""
    check_dimensions(dims)
    pg = backend == "postgres"
    split = plan(query, dims, now, SETTLE)
    tallies: dict[tuple[str, ...], Tally] = {}
    width = len(dims)
    if split.family and split.days:
        sql, params = read_sql(backend, query, dims, split.family, split.days)
        for r in await fetch(sql, params):
            if r[width + 1]:
                tallies.setdefault(tuple(str(v) for v in r[:width]), Tally()).add_sums(
                    r[width], r[width + 1:])
    columns = POSTGRES_DIMENSIONS if pg else SQLITE_DIMENSIONS
    keys = [columns[d] for d in dims]
    settled_before = moment(now - SETTLE)
    for part in split.raw:
        clause, params = where(part, "$" if pg else "?", moment)
        rows = await fetch(
            f"SELECT {''.join(k + ', ' for k in keys)}synthetic, created_at, acked_at, "
            f"{', '.join(SECONDS.values())}, {ETA_OVER}, escalations "
            f"FROM incidents WHERE {clause}", params)
        tally_rows(tallies, rows, width, lambda created: bool(created <= settled_before))
    return results(tallies)


# -- the same contributions in SQL: the migration's backfill and PostgreSQL's writes ----------

def _bucket_sql(expr: str, pg: bool) -> str:
    bounds = ", ".join(repr(b) for b in BOUNDS)  # repr: the very floats of BOUNDS
    if pg:
        return f"width_bucket({expr}, ARRAY[{bounds}]::float8[])"
    whens = " ".join(f"WHEN {expr} < {b!r} THEN {k}" for k, b in enumerate(BOUNDS))
    return f"(CASE WHEN {expr} IS NULL THEN NULL {whens} ELSE {len(BOUNDS)} END)"


AREA_HELP = ("province, '*', '*', synthetic, drill", "'*', agency, level, synthetic, drill")
DISTRICT = ("province, district, synthetic, drill",)


def contributions_sql(source: str, weight: str, pg: bool,
                      families: Sequence[str] = AREA_HELP) -> list[str]:
    """One SELECT per key family and grain (day, month): the rollup rows (KEYS, COLUMNS) that
    the incident rows of
    `source` (FACTS columns) add, each row counting `weight` (1, or −1 for a row's old
    values). As `Facts.counts` and `delta` do in Python."""
    inner, sums = _parts(weight, pg, families == DISTRICT)
    select = ",\n    ".join(sums)
    rows = ",\n        ".join(inner)
    out = []
    month = "substr(local_day, 1, 7)"
    for keys in (f"{period}, {family}" for period in ("local_day", month)
                 for family in families):
        group = ", ".join(k for k in keys.split(", ") if k != "'*'")
        # OFFSET 0 keeps the subquery whole: each bucket is computed once per row, not
        # copied into every sum that reads it (which made planning take a third of a second).
        out.append(f"SELECT {keys},\n    {select}\nFROM (SELECT {rows}\n    FROM {source} "
                   f"{'OFFSET 0' if pg else 'LIMIT -1 OFFSET 0'}) r\nGROUP BY {group}")
    return out


def _parts(weight: str, pg: bool, district: bool) -> tuple[list[str], list[str]]:
    """The per-row columns of a contribution (keys, weight `w`, buckets) and the sums of
    COLUMNS over them."""
    seconds = dict(zip(STAGES, FACTS[8:8 + len(STAGES)], strict=True))
    level = "help_level::text" if pg else "CAST(help_level AS TEXT)"
    inner = [
        "local_day", "coalesce(province, '-') AS province",
        "coalesce(help_agency, '-') AS agency", f"coalesce({level}, '-') AS level",
        "synthetic", "drill", f"{weight} AS w", "(acked_at IS NOT NULL) AS acked",
        "(escalations > 0) AS escalated",
        *(f"{_bucket_sql(c, pg)} AS {s}_b" for s, c in seconds.items()),
        f"(CASE WHEN eta_over_s >= 0 THEN {BUCKETS} + {_bucket_sql('eta_over_s', pg)} "
        f"ELSE {BUCKETS - 1} - {_bucket_sql('-eta_over_s', pg)} END) AS eta_b",
        "(eta_over_s > 0) AS late"]
    if district:
        inner.insert(2, "coalesce(district, '-') AS district")

    def when(condition: str) -> str:
        return f"sum(CASE WHEN {condition} THEN w ELSE 0 END)"

    sums = ["sum(w)", when("acked"), when("escalated"),
            *(when(f"{s}_b IS NOT NULL") for s in STAGES), when("eta_b IS NOT NULL"),
            when("late"), *(when(f"{s}_b = {b}") for s in STAGES for b in range(BUCKETS)),
            *(when(f"eta_b = {b}") for b in range(ETA_BUCKETS))]
    return inner, sums


def backfill_sql(backend: str, district: bool = False) -> str:
    """The rollup rows of every incident already stored (the tail of migration 0175, and
    with `district` of 0196; the benchmark fills its tables with them too)."""
    names = ", ".join((*(DISTRICT_KEYS if district else KEYS), *COLUMNS))
    return "".join(
        f"INSERT INTO {DISTRICT_TABLE if district else TABLE} ({names})\n{select};\n"
        for select in contributions_sql("incidents WHERE local_day IS NOT NULL", "1",
                                        backend == "postgres",
                                        DISTRICT if district else AREA_HELP))


# The rollup columns each fact an update may change moves (storage.analytics
# milestone_marks). A key fact (the day, the area, the agency and level, synthetic, drill,
# the district) moves a contribution from one rollup row to another: every column.
_MOVES: dict[str, tuple[str, ...]] = {
    **{SECONDS[s]: (f"{s}_n", *(f"{s}_{b}" for b in range(BUCKETS))) for s in STAGES},
    "acked_at": ("acked",),
    "escalations": ("escalated",),
    ETA_OVER: ("eta_n", "eta_late", *(f"eta_{b}" for b in range(ETA_BUCKETS))),
}


def moved_columns(changed: Iterable[str]) -> tuple[str, ...]:
    """The rollup columns an update changing the incident columns `changed` can move, in
    COLUMNS order: every one when a key fact is among them, none when no fact is."""
    facts = set(changed) & set(FACTS)
    if facts - _MOVES.keys():
        return COLUMNS
    moved = {c for f in facts for c in _MOVES[f]}
    return tuple(c for c in COLUMNS if c in moved)


@functools.lru_cache(maxsize=32)
def moved_ctes(source: str, columns: tuple[str, ...] = COLUMNS) -> str:
    """PostgreSQL: CTEs adding to both rollup tables what the rows of `source` (a CTE of
    FACTS columns and a `sign`) contribute — in the statement that writes the incident, so
    the rollup rows are locked (in key order, TABLE before DISTRICT_TABLE) before the
    board's log lock (0060) that its timeline trigger takes, as by every other incident
    write. One pass of grouping sets computes every family and grain: a quarter of the
    text of one SELECT per family and grain, so the statement plans faster.

    Only `columns` are summed and added (`moved_columns`): an arming update moves 65 of
    the 393, and summing and adding all of them was most of PostgreSQL's CPU for it. The
    others are left as they are (a row inserted here takes their default, 0). That is right
    only when no key fact changed, which `moved_columns` makes sure of: the row's old and
    new contributions then fall in the same rollup rows and cancel in every column whose
    fact did not change."""
    chosen = set(columns)
    if not chosen or not chosen <= set(COLUMNS):
        raise ValueError(f"not a non-empty set of rollup columns: {sorted(chosen)[:5]}")
    inner, all_sums = _parts("sign", True, True)
    sums = [total for total, c in zip(all_sums, COLUMNS, strict=True) if c in chosen]
    columns = tuple(c for c in COLUMNS if c in chosen)
    month = "substr(local_day, 1, 7) AS month"
    keys = ("province", "agency", "level", "district")
    families = ("province", "agency, level", "province, district")
    sets = ", ".join(f"({period}, {family}, synthetic, drill)"
                     for period in ("local_day", "month") for family in families)
    shown = ["CASE WHEN GROUPING(local_day) = 0 THEN local_day ELSE month END AS period",
             *(f"CASE WHEN GROUPING({k}) = 0 THEN {k} ELSE '{ALL}' END AS {k}" for k in keys),
             "GROUPING(district) AS whole", "synthetic", "drill",
             *(f"{total} AS {c}" for total, c in zip(sums, columns, strict=True))]
    names = ", ".join(columns)

    def insert(table: str, key: Sequence[str], which: int, after: str | None) -> str:
        wait = f", (SELECT count(*) FROM {after}) z" if after else ""
        on = ", ".join(key)
        added = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in columns)
        return (f"INSERT INTO {table} AS t ({on}, {names}) SELECT "
                f"{', '.join('period' if k == 'local_day' else k for k in key)}, {names} "
                f"FROM g{wait} WHERE whole = {which} ORDER BY "
                f"{', '.join(str(k + 1) for k in range(len(key)))} "
                f"ON CONFLICT ({on}) DO UPDATE SET {added} RETURNING 1")

    # OFFSET 0 keeps the subquery whole: each bucket is computed once per row, not copied
    # into every sum that reads it (which made planning take a third of a second).
    return (f"g AS (SELECT {', '.join(shown)} FROM (SELECT {', '.join(inner)}, {month} "
            f"FROM {source} OFFSET 0) r GROUP BY GROUPING SETS ({sets})), "
            f"ru AS ({insert(TABLE, KEYS, 1, None)}), "
            f"rd AS ({insert(DISTRICT_TABLE, DISTRICT_KEYS, 0, 'ru')})")


def _create_sql(backend: str, table: str, keys: Sequence[str], key_columns: str) -> str:
    """CREATE TABLE of a rollup: its key columns (`{b}` for the boolean type), then COLUMNS."""
    boolean = "boolean" if backend == "postgres" else "INTEGER"
    columns = ",\n    ".join(f"{c} integer NOT NULL DEFAULT 0" for c in COLUMNS)
    return (f"CREATE TABLE {table} (\n    {key_columns.format(b=boolean)},\n    {columns},\n"
            f"    PRIMARY KEY ({', '.join(keys)})\n);\n")


def migration_sql(backend: str) -> str:
    """The text of migration 0175 (a test holds the shipped file to it)."""
    return (
        "-- Daily rollups of the response figures (storage/rollups.py, docs/analytics.md\n"
        "-- \"Speed\"): one row per Thai local day and key, duration histograms in fixed\n"
        "-- log-spaced buckets, kept in the transaction of the incident writes that change\n"
        "-- them; backfilled here from the incidents already stored. Generated by\n"
        "-- storage.rollups.migration_sql (a test holds this file to it).\n"
        + _create_sql(backend, TABLE, KEYS,
                      "local_day text NOT NULL, province text NOT NULL,\n"
                      "    agency text NOT NULL, level text NOT NULL, synthetic {b} NOT NULL,\n"
                      "    drill {b} NOT NULL")
        + backfill_sql(backend))


def district_migration_sql(backend: str) -> str:
    """The text of migration 0196 (a test holds the shipped file to it)."""
    return (
        "-- Daily rollups of the response figures per district (storage/rollups.py,\n"
        "-- docs/analytics.md \"Speed\"): the drill-down into a province without reading\n"
        "-- its incident rows; the same columns as analytics_daily (0175), kept alike.\n"
        "-- Generated by storage.rollups.district_migration_sql (a test holds this file\n"
        "-- to it).\n"
        + _create_sql(backend, DISTRICT_TABLE, DISTRICT_KEYS,
                      "local_day text NOT NULL, province text NOT NULL,\n"
                      "    district text NOT NULL, synthetic {b} NOT NULL, drill {b} NOT NULL")
        + backfill_sql(backend, district=True))
