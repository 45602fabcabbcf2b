"""What the analytics queries ask a store and what it answers: typed, aggregated, anonymous.

The stores aggregate in SQL: whole local days from the rollups of `storage.rollups`
(response figures) and `storage.count_rollups` (counts), the rest with one scan of the
incident table over the clear columns of migrations 0150 and 0151. `routing.analytics`
turns the rows into views and applies suppression. Nothing here carries a reference, a
phone number, a pin or free text: only counts, area codes, coarse cells and durations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.incident import Incident, TimelineEvent

# Thailand keeps one offset all year (no daylight saving): days and hours are local ones.
LOCAL_OFFSET = timedelta(hours=7)
LOCAL_ZONE = "Asia/Bangkok"
SETTLE = timedelta(hours=1)  # younger than this and unacknowledged: not yet "never acked"
CELL_RESOLUTION = 7  # H3 resolution kept per incident (about 5 km² a hexagon)

DIMENSIONS = ("type", "province", "district", "station", "channel", "silent", "status",
              "agency", "level", "day", "week", "month", "hour_of_week", "cell")
# Stage → the column holding the first time it was reached (each measured from the report).
STAGES = {"delivered": "delivered_at", "acknowledged": "acked_at",
          "on_scene": "on_scene_at", "resolved": "closed_at"}
# Stage → the column holding its duration from the report in seconds, stored at write time.
SECONDS = {"delivered": "delivered_s", "acknowledged": "acked_s", "on_scene": "on_scene_s",
           "resolved": "closed_s"}
CLOSED_KINDS = ("resolved", "referred", "unfounded", "duplicate")
NO_VALUE = "-"


@dataclass(frozen=True, slots=True)
class Query:
    """Which incidents an aggregate covers. `areas` is the viewer's scope (province,
    district or station codes; "TH" is the whole country), `area` a drill-down filter."""

    since: datetime
    until: datetime
    areas: tuple[str, ...] = ("TH",)
    area: str | None = None
    type: str | None = None
    channel: str | None = None
    include_drills: bool = False
    include_synthetic: bool = True


@dataclass(frozen=True, slots=True)
class CountRow:
    keys: tuple[str, ...]
    count: int
    synthetic: int  # how many of `count` are synthetic (ess demo seed)


@dataclass(frozen=True, slots=True)
class StageFigure:
    n: int
    p50: float | None  # seconds
    p90: float | None


@dataclass(frozen=True, slots=True)
class ResponseRow:
    keys: tuple[str, ...]
    reports: int
    synthetic: int
    settled: int  # acknowledged, or old enough to judge "never acknowledged"
    never_acked: int
    escalated: int
    stages: dict[str, StageFigure] = field(default_factory=dict)
    eta_n: int = 0  # arrivals with a promised ETA
    eta_late: int = 0  # ... that came later than promised
    eta_over_p50: float | None = None  # seconds later than promised (negative: early)


@dataclass(frozen=True, slots=True)
class Derived:
    """An incident's statistics columns as stored (migrations 0150, 0151): computed from its
    areas, its pin (a ~5 km² cell), its report time and its timeline, coarse on purpose, and
    kept when the incident is erased so the statistics do not change (docs/pdpa.md). A
    subject's export lists them as derived."""

    synthetic: bool
    province: str | None
    district: str | None
    station: str | None
    cell: str | None
    delivered_at: datetime | None
    acked_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    closed_at: datetime | None
    help_level: int | None
    help_agency: str | None
    eta_minutes: int | None
    escalations: int
    local_day: str | None
    local_week: str | None
    local_month: str | None
    hour_of_week: int | None
    delivered_s: float | None
    acked_s: float | None
    on_scene_s: float | None
    closed_s: float | None
    eta_over_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""
        return {name: value.isoformat() if isinstance(value, datetime) else value
                for name in DERIVED for value in (getattr(self, name),)}


DERIVED = tuple(f.name for f in fields(Derived))  # the column names, in order
DERIVED_TIMES = tuple(f.name for f in fields(Derived) if f.name.endswith("_at"))


def nearest_rank(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (PostgreSQL's percentile_disc): a value that occurred."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def area_columns(incident: Incident) -> tuple[str | None, str | None, str | None]:
    """Province, district and station codes (area_codes runs least to most specific)."""
    codes = [*incident.area_codes, None, None, None]
    return codes[0], codes[1], codes[2]


def cell_of(incident: Incident) -> str | None:
    """The incident's coarse H3 cell, or None without a point."""
    lat, lon = incident.location.lat, incident.location.lon
    if lat is None or lon is None:
        return None
    import h3

    return str(h3.latlng_to_cell(lat, lon, CELL_RESOLUTION))


def milestone_marks(incident: Incident, event: TimelineEvent) -> dict[str, Any]:
    """The analytics columns an event sets when they are still empty (first time wins)."""
    kind = event.kind
    marks: dict[str, Any] = {}
    if kind in ("dispatched", "delivered"):
        marks["delivered_at"] = event.at
    elif kind == "acknowledged":
        state = incident.details.get("dispatch") or {}
        holder = state.get("holder") or {}
        marks.update(acked_at=event.at, help_level=int(state.get("level", 0)),
                     help_agency=holder.get("agency") or None)
    elif kind == "en_route":
        marks["en_route_at"] = event.at
        minutes = event.data.get("eta_minutes")
        if isinstance(minutes, int) and not isinstance(minutes, bool):
            marks["eta_minutes"] = minutes
    elif kind == "on_scene":
        marks["on_scene_at"] = event.at
    elif kind in CLOSED_KINDS:
        marks["closed_at"] = event.at
    for stage, column in STAGES.items():
        if column in marks:
            marks[SECONDS[stage]] = (event.at - incident.created_at).total_seconds()
    return marks


def local_columns(created_at: datetime) -> tuple[str, str, str, int]:
    """The report's Thai local day, week (its Monday), month and hour of the week (0 is
    Monday 00:00), stored at create time so the views group by plain columns."""
    local = created_at.astimezone(UTC) + LOCAL_OFFSET
    monday = local.date() - timedelta(days=local.weekday())
    return (local.date().isoformat(), monday.isoformat(), f"{local.year:04d}-{local.month:02d}",
            local.weekday() * 24 + local.hour)


def check_dimensions(dims: Sequence[str]) -> None:
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {', '.join(unknown)}")


def _dimensions(level: str) -> dict[str, str]:
    # Every dimension is a stored column (0150, 0151): a view is a plain GROUP BY.
    return {
        "type": "type", "province": "coalesce(province, '-')",
        "district": "coalesce(district, '-')", "station": "coalesce(station, '-')",
        "channel": "channel", "silent": "CASE WHEN silent THEN 'silent' ELSE 'open' END",
        "status": "status", "agency": "coalesce(help_agency, '-')",
        "level": f"coalesce({level}, '-')", "day": "local_day", "week": "local_week",
        "month": "local_month", "hour_of_week": "hour_of_week", "cell": "coalesce(cell, '-')",
    }


SQLITE_DIMENSIONS = _dimensions("CAST(help_level AS TEXT)")
POSTGRES_DIMENSIONS = _dimensions("help_level::text")
# Seconds later than promised that help arrived (negative: early), stored at on_scene.
ETA_OVER = "eta_over_s"


def where(query: Query, placeholder: str, moment: Callable[[datetime], Any] = lambda d: d,
          ) -> tuple[str, list[Any]]:
    """The WHERE clause both stores share: numbered placeholders (`?` for SQLite, `$` for
    PostgreSQL) so one value may be used twice; `moment` converts a datetime for the store."""
    clauses: list[str] = []
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"{placeholder}{len(params)}"

    clauses.append(f"created_at >= {p(moment(query.since))} "
                   f"AND created_at < {p(moment(query.until))}")
    if not query.include_drills:
        clauses.append("NOT drill")
    if not query.include_synthetic:
        clauses.append("NOT synthetic")
    for codes in ([] if "TH" in query.areas else [query.areas],
                  [] if query.area is None else [(query.area,)]):
        for group in codes:
            marks = ", ".join(p(c) for c in group) or "NULL"
            clauses.append(f"(province IN ({marks}) OR district IN ({marks}) "
                           f"OR station IN ({marks}))")
    if query.type is not None:
        clauses.append(f"type = {p(query.type)}")
    if query.channel is not None:
        clauses.append(f"channel = {p(query.channel)}")
    return " AND ".join(clauses), params
