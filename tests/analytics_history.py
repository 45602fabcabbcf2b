"""A hand-made history of 30 incidents (plus 3 drills and 6 of the period before), written
through a store's own create/update, with every figure the analytics must find in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.incident import Incident, TimelineEvent, new_reference
from bot.types import Location, LocationSource
from storage.ports import Storage


def _monday(before: datetime) -> datetime:
    day = (before - timedelta(days=before.weekday())).date()
    return datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)


# A Monday 10:00 in Thailand, two to three weeks ago, so the whole history is in the past
# whenever the tests run.
T0 = _monday(datetime.now(UTC) - timedelta(days=14))
SINCE, UNTIL = T0 - timedelta(days=4), T0 + timedelta(days=4)
STATIONS = {"65": ("6501", "st6501", 16.82481, 100.25858),
            "10": ("1001", "st1001", 13.75398, 100.50144),
            "63": ("6301", "st6301", 16.86968, 99.12898)}
MIGRATIONS = Path(__file__).resolve().parents[1] / "storage" / "migrations"
PRECOMPUTED = ("local_day", "local_week", "local_month", "hour_of_week", "delivered_s",
               "acked_s", "on_scene_s", "closed_s", "eta_over_s")


def precompute_sql(backend: str) -> str:
    """Migration 0151's backfill: the per-row analytics values from the stored times."""
    text = (MIGRATIONS / backend / "0151_analytics_precomputed.sql").read_text()
    return text[text.index("UPDATE incidents SET"):]


OUTCOMES = ["resolved"] * 6 + ["referred", "referred", "unfounded", "duplicate"]


def _incident(province: str, type_: str, channel: str, created: datetime, *,
              silent: bool = False, drill: bool = False, synthetic: bool = False) -> Incident:
    district, station, lat, lon = STATIONS[province]
    return Incident(new_reference(), type_, Location(lat, lon, LocationSource.REPORTER_PIN),
                    channel, f"web:{new_reference()}", "th", silent=silent, drill=drill,
                    synthetic=synthetic, area_codes=[province, district, station],
                    details={"dispatch": {"seq": 0, "level": 0, "armed": -1, "notified": [],
                                          "targets": {}, "holder": None, "reminders": 0}},
                    created_at=created, updated_at=created)


async def _step(storage: Storage, incident: Incident, kind: str, seconds: float,
                data: dict[str, Any] | None = None) -> None:
    incident.status = kind
    await storage.incidents.update(incident, TimelineEvent(
        kind, "test", "system", incident.created_at + timedelta(seconds=seconds), data or {}))


async def write_history(storage: Storage) -> None:
    async def create(incident: Incident) -> Incident:
        return await storage.incidents.create(incident, [], TimelineEvent(
            "reported", "reporter", incident.channel, incident.created_at))

    for k in range(20):  # Phitsanulok, Monday 10:00 local: the responded ones
        i = await create(_incident("65", "threat" if k < 12 else "sexual_risk",
                                   "line" if k < 16 else "web", T0 + timedelta(seconds=k),
                                   silent=k < 3))
        await _step(storage, i, "dispatched", 10 + k)
        if k >= 17:
            i.details["dispatch"]["level"] = 1
            await _step(storage, i, "escalated", 300, {"level": 1})
        if k >= 18:
            continue  # never acknowledged
        i.details["dispatch"]["holder"] = {"agency": "police" if k < 14 else "welfare"}
        await _step(storage, i, "acknowledged", 60 * (k + 1))
        if k >= 10:
            continue
        await _step(storage, i, "en_route", 60 * (k + 1), {"eta_minutes": 10})
        scene = 60 * (k + 1) + 600 + 60 * (k % 2)  # the odd ones a minute late
        await _step(storage, i, "on_scene", scene)
        await _step(storage, i, OUTCOMES[k], scene + 1200)
    for k in range(7):  # Bangkok, Tuesday 10:00 local, never dispatched; two synthetic
        await create(_incident("10", "deranged", "web" if k < 4 else "sms",
                               T0 + timedelta(days=1, seconds=k), synthetic=k >= 5))
    for k in range(3):  # Tak, Wednesday 22:00 local, silent SMS
        await create(_incident("63", "gathering", "sms", T0 + timedelta(days=2, hours=12,
                                                                        seconds=k),
                               silent=True))
    for k in range(3):  # drills: never counted unless asked
        await create(_incident("65", "threat", "line", T0 + timedelta(minutes=5 + k),
                               drill=True))
    for k in range(6):  # the period before: six threats in Phitsanulok
        await create(_incident("65", "threat", "line", T0 - timedelta(days=6, seconds=k)))
