"""Prevention analytics: where, when and what happens, and how fast help arrives.

Pure functions turn the aggregate rows a store returns (`storage.analytics`) into `View`s,
and suppression happens here, once, before anything leaves: a count below the threshold is
the text "<5", a percentile or share over fewer incidents than the threshold is not shown.
Every view, its JSON, its CSV and its chart are made from the same suppressed cells, so no
export can show what the page hides. A `Viewer` (areas + roles) bounds what is queried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from routing.directory import NATIONAL, Directory
from routing.gazetteer import Gazetteer
from storage.analytics import STAGES, CountRow, Query, ResponseRow
from storage.ports import IncidentStore

MIN_THRESHOLD = 2
MAX_DAYS = 731  # two years: a ten-year scan is a mistake, not a question
ANALYTICS_ROLES = frozenset({"analyst", "supervisor", "admin"})
BY = ("type", "area", "hour", "channel", "silent", "day", "week", "month", "outcome", "hex")
CLOSED = ("resolved", "referred", "unfounded", "duplicate")
Cell = int | float | str | None
# HXL hashtags (https://hxlstandard.org) for the columns exports carry.
HXL = {"type": "#event+type", "province": "#adm1+code", "district": "#adm2+code",
       "station": "#loc+code", "name": "#adm+name", "count": "#affected+num",
       "previous": "#affected+num+previous", "trend": "#indicator+trend+pct",
       "channel": "#meta+channel", "silent": "#meta+silent", "day": "#date",
       "week": "#date+week", "month": "#date+month", "hour_of_week": "#date+hour_of_week",
       "weekday": "#date+weekday", "hour": "#date+hour", "share": "#indicator+share+pct",
       "outcome": "#status", "agency": "#org+type", "cell": "#geo+h3", "level": "#indicator+level",
       "lat": "#geo+lat", "lon": "#geo+lon"}


class AnalyticsError(ValueError):
    """A question that cannot be answered as asked (bad filter, unknown area, out of scope)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks: the area codes they may see (`TH` for all) and their roles. The board's
    staff session (issue 11) is adapted to this; the CLI is a national analyst."""

    areas: tuple[str, ...]
    roles: frozenset[str]
    actor: str = "cli"

    def may_view(self) -> bool:
        return bool(self.areas) and bool(self.roles & ANALYTICS_ROLES)


CLI_VIEWER = Viewer((NATIONAL,), frozenset({"analyst"}))


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime

    @property
    def previous(self) -> Period:
        return Period(self.since - (self.until - self.since), self.since)

    @classmethod
    def last(cls, days: float, now: datetime) -> Period:
        if not 0 < days <= MAX_DAYS:
            raise AnalyticsError(f"--days must be more than 0 and at most {MAX_DAYS} "
                                 f"(got {days:g})")
        return cls(now - timedelta(days=days), now)


@dataclass(frozen=True, slots=True)
class View:
    """One table: what a chart draws and an export writes (already suppressed)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    total: Cell
    synthetic: int  # synthetic incidents counted: a banner must say so when > 0
    threshold: int
    period: Period
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {"view": self.name, "since": self.period.since.isoformat(),
                "until": self.period.until.isoformat(), "threshold": self.threshold,
                "synthetic_included": self.synthetic > 0,
                "synthetic": suppress(self.synthetic, self.threshold) if self.synthetic else 0,
                "total": self.total, "columns": list(self.columns),
                "rows": [dict(zip(self.columns, r, strict=True)) for r in self.rows]}

    def hxl(self) -> tuple[str, ...]:
        return tuple(HXL.get(c, f"#indicator+{c.replace('_', '+')}") for c in self.columns)


def check_threshold(value: int) -> int:
    if value < MIN_THRESHOLD:
        raise AnalyticsError(f"a suppression threshold below {MIN_THRESHOLD} would publish "
                             f"single incidents (got {value})")
    return value


WITHHELD = "x"  # a count at or above the threshold, withheld to protect a smaller one


def suppress(n: int, threshold: int) -> Cell:
    """A count as shown: "<5" for 1 … threshold-1 (0 and absences are not identifying)."""
    return f"<{threshold}" if 0 < n < threshold else n


def withhold(counts: Sequence[int], threshold: int) -> list[Cell]:
    """Counts as shown, with complementary suppression. A total is published (this view's,
    or another view's of the same incidents), so the cells it shows would give away the sum
    of those it hides: when the hidden ones are fewer than two, or add up to less than the
    threshold, the smallest shown counts are withheld as well (WITHHELD) until they are not."""
    shown: list[Cell] = [suppress(n, threshold) for n in counts]
    small = [k for k, n in enumerate(counts) if 0 < n < threshold]
    if not small:
        return shown
    hidden, cells = sum(counts[k] for k in small), len(small)
    for k in sorted((k for k, n in enumerate(counts) if n >= threshold),
                    key=lambda k: (counts[k], k)):
        if hidden >= threshold and cells >= 2:
            break
        shown[k] = WITHHELD
        hidden, cells = hidden + counts[k], cells + 1
    return shown


def _share(part: int, whole: int, threshold: int) -> Cell:
    # A share of a small group reveals the group: both sides must clear the threshold.
    if whole < threshold or 0 < part < threshold:
        return None
    return round(100 * part / whole, 1)


def _trend(now: int, before: int, threshold: int) -> Cell:
    if now < threshold or before < threshold:
        return None
    return round(100 * (now - before) / before, 1)


@dataclass(frozen=True, slots=True)
class Places:
    """Names of area codes, for the tables (a code is what exports key on)."""

    gazetteer: Gazetteer
    directory: Directory

    def name(self, code: str, lang: str = "en") -> str:
        place = self.gazetteer.province(code) if len(code) == 2 else \
            self.gazetteer.district(code) if len(code) == 4 else None
        if place is not None:
            return place.name_th if lang == "th" else place.name_en
        station = self.directory.station(code)
        if station is not None:
            return station.name_th if lang == "th" else station.name_en
        return code

    def known(self, code: str) -> bool:
        return code == NATIONAL or any(code in s.areas for s in self.directory.stations)


def drill(area: str | None) -> str:
    """The dimension one level below `area`: province → district → station."""
    if area is None or area == NATIONAL:
        return "province"
    if len(area) == 2 and area.isdigit():
        return "district"
    return "station"


def scope(viewer: Viewer, period: Period, places: Places, *, area: str | None = None,
          type: str | None = None, channel: str | None = None, include_drills: bool = False,
          include_synthetic: bool = True) -> Query:
    """The store query for what `viewer` asked; AnalyticsError when it cannot be asked."""
    if not viewer.may_view():
        raise AnalyticsError("this account may not view analytics")
    if area is not None:
        area = area.strip()
        if not places.known(area):
            raise AnalyticsError(f"--area {area!r} is not an area of the directory: use a "
                                 "province code (65), a district code (6501) or a station id")
        if NATIONAL not in viewer.areas and not _within(area, viewer.areas, places):
            raise AnalyticsError(f"area {area} is outside the areas of this account")
    return Query(period.since, period.until, viewer.areas, area, type, channel,
                 include_drills, include_synthetic)


def _within(area: str, areas: Sequence[str], places: Places) -> bool:
    for station in places.directory.stations:
        if area in station.areas and any(a in station.areas for a in areas):
            # `area` is the viewer's own area or lies inside it (a coarser one is not).
            return area in areas or station.areas.index(area) < min(
                station.areas.index(a) for a in areas if a in station.areas)
    return False


def _keyed(rows: Sequence[CountRow]) -> dict[tuple[str, ...], CountRow]:
    return {r.keys: r for r in rows}


def count_view(name: str, dim: str, now: Sequence[CountRow], before: Sequence[CountRow],
               period: Period, threshold: int,
               label: Callable[[str], str] | None = None) -> View:
    """Counts per value of one dimension, with the previous period and the trend."""
    previous = _keyed(before)
    total = sum(r.count for r in now)
    columns = (dim, *(("name",) if label else ()), "count", "share", "previous", "trend")
    rows = []
    ordered = sorted(now, key=lambda r: (-r.count, r.keys))
    before_counts = [previous[r.keys].count if r.keys in previous else 0 for r in ordered]
    counts = withhold([r.count for r in ordered], threshold)
    befores = withhold(before_counts, threshold)
    for r, was, shown, shown_before in zip(ordered, before_counts, counts, befores,
                                           strict=True):
        key = r.keys[0]
        # A withheld count has no share or trend either: each would give the count back.
        open_ = shown != WITHHELD and shown_before != WITHHELD
        rows.append((key, *((label(key),) if label else ()), shown,
                     _share(r.count, total, threshold) if shown != WITHHELD else None,
                     shown_before, _trend(r.count, was, threshold) if open_ else None))
    return View(name, columns, tuple(rows), suppress(total, threshold),
                sum(r.synthetic for r in now), threshold, period)


def series_view(dim: str, rows: Sequence[CountRow], period: Period, threshold: int) -> View:
    """Counts per day, week or month, in time order."""
    ordered = sorted(rows, key=lambda r: r.keys)
    shown = withhold([r.count for r in ordered], threshold)
    return View(dim, (dim, "count"), tuple((r.keys[0], c)
                                           for r, c in zip(ordered, shown, strict=True)),
                suppress(sum(r.count for r in rows), threshold),
                sum(r.synthetic for r in rows), threshold, period)


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_grid(rows: Sequence[CountRow], period: Period, threshold: int) -> View:
    """The hour-of-week heat grid: one row per weekday (Monday first), 24 hour columns."""
    counts = {int(r.keys[0]): r.count for r in rows}
    shown = withhold([counts.get(k, 0) for k in range(7 * 24)], threshold)
    grid = tuple((day, *shown[d * 24:(d + 1) * 24]) for d, day in enumerate(WEEKDAYS))
    return View("hour", ("weekday", *(f"{h:02d}" for h in range(24))), grid,
                suppress(sum(counts.values()), threshold), sum(r.synthetic for r in rows),
                threshold, period)


def _seconds(value: float | None, n: int, threshold: int) -> Cell:
    # One incident's delay is that incident: percentiles need as many as counts do.
    if value is None or n < threshold:
        return None
    return round(value)


def response_view(dim: str, rows: Sequence[ResponseRow], period: Period, threshold: int,
                  label: Callable[[str], str] | None = None) -> View:
    """Stage percentiles (report → delivered → acknowledged → on scene → resolved), never
    acknowledged, escalation, promised ETA against arrival, per value of `dim`."""
    columns: list[str] = [dim] if dim else ["scope"]
    if label:
        columns.append("name")
    columns.append("reports")
    for stage in STAGES:
        columns += [f"{stage}_n", f"{stage}_p50_s", f"{stage}_p90_s"]
    columns += ["never_acknowledged_pct", "escalated_pct", "eta_n", "eta_late_pct",
                "eta_over_p50_s"]
    out = []
    ordered = sorted(rows, key=lambda r: (-r.reports, r.keys))
    # Every count column adds up to a total another view publishes: each is withheld apart.
    reports = withhold([r.reports for r in ordered], threshold)
    stage_n = {stage: withhold([r.stages[stage].n for r in ordered], threshold)
               for stage in STAGES}
    eta_n = withhold([r.eta_n for r in ordered], threshold)
    for k, (r, shown) in enumerate(zip(ordered, reports, strict=True)):
        key = r.keys[0] if r.keys else "all"
        cells: list[Cell] = [key]
        if label:
            cells.append(label(key))
        cells.append(shown)
        for stage in STAGES:
            f = r.stages[stage]
            cells += [stage_n[stage][k], _seconds(f.p50, f.n, threshold),
                      _seconds(f.p90, f.n, threshold)]
        cells += [_share(r.never_acked, r.settled, threshold),
                  _share(r.escalated, r.reports, threshold), eta_n[k],
                  _share(r.eta_late, r.eta_n, threshold),
                  _seconds(r.eta_over_p50, r.eta_n, threshold)]
        out.append(tuple(cells))
    return View("response" if not dim else f"response_{dim}", tuple(columns), tuple(out),
                suppress(sum(r.reports for r in rows), threshold),
                sum(r.synthetic for r in rows), threshold, period)


async def load(store: IncidentStore, by: str, query: Query, period: Period, threshold: int,
               places: Places | None = None, lang: str = "en",
               now: datetime | None = None) -> View:
    """Query the store for one view and build it (the only I/O in this module)."""
    check_threshold(threshold)
    if by not in (*BY, "response", "agency", "level"):
        raise AnalyticsError(f"--by {by!r}: expected one of {', '.join(BY)}, response")
    previous = Query(period.previous.since, period.previous.until, query.areas, query.area,
                     query.type, query.channel, query.include_drills, query.include_synthetic)
    dim = {"area": drill(query.area), "hour": "hour_of_week", "outcome": "status"}.get(by, by)
    label = (lambda code: places.name(code, lang)) if places and by == "area" else None
    if by in ("day", "week", "month"):
        return series_view(dim, await store.counts(query, [dim]), period, threshold)
    if by == "hour":
        return hour_grid(await store.counts(query, [dim]), period, threshold)
    if by == "hex":
        from routing.hexbins import hex_view  # it builds on this module

        return hex_view(await store.counts(query, ["cell"]), period, threshold)
    if by in ("response", "agency", "level"):
        group = {"response": drill(query.area), "agency": "agency", "level": "level"}[by]
        rlabel = (lambda code: places.name(code, lang)) if places and by == "response" \
            else None
        return response_view(group, await store.responses(query, [group], now or period.until),
                             period, threshold, rlabel)
    rows = await store.counts(query, [dim])
    before = await store.counts(previous, [dim])
    if by == "outcome":
        rows = [r for r in rows if r.keys[0] in CLOSED]
        before = [r for r in before if r.keys[0] in CLOSED]
    return count_view(by, dim, rows, before, period, threshold, label)
