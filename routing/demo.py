"""`ess demo seed`: a synthetic history, so a new installation shows a living board and charts.

Every incident is marked `synthetic` and walks the real lifecycle (`routing.lifecycle`) with
the timeline kinds the dispatcher and responders write (dispatched, escalated, acknowledged,
en_route with an ETA, on_scene, a closing outcome), through the store's own `create` and
`update`. Nothing is queued in the outbox and no timer is set: a synthetic report is never
dispatched to anyone.

Where: provinces weighted by their number of districts (a district is the unit Thai
administration sizes by population, so it is a plausible population proxy that the shipped
directory already holds; Bangkok's 50 districts make it about 5 % of reports, near its share of
registered residents), then a station of the province at random, the point within ~3 km of
it. When: more in the evening and at night, more on weekends (the shape published by OSCC
1300 for domestic violence). How fast: log-normal delays per stage; some reports escalate,
a few are never acknowledged.

Who is told: the real router over the directory (`DirectoryRouter`, without the store's bound
chats) plans each incident's dispatch targets as a report's (`plan_first_dispatch`, before
it is stored) and adds each escalation level's, so the agencies index holds what a real
report of that place would (the router routes by place; the type does not change it), and a
staff member with agencies sees the seeded incidents of their agencies. Nothing is sent.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.incident import Incident, TimelineEvent, new_reference
from bot.types import Location, LocationSource
from routing import lifecycle as lc
from routing.directory import Directory, Station
from routing.gazetteer import Gazetteer
from routing.responders import plan_first_dispatch
from routing.router import DirectoryRouter
from storage.ports import Storage

TYPES = {"threat": 0.38, "confinement": 0.12, "sexual_risk": 0.18, "deranged": 0.17,
         "gathering": 0.15}
CHANNELS = {"line": 0.7, "web": 0.18, "sms": 0.12}
OUTCOMES = {"resolve": 0.72, "refer": 0.16, "unfounded": 0.08, "duplicate": 0.04}
AGENCIES = ("police", "welfare", "shelter")
# Relative weight of each local hour (0–23): low before dawn, peaks in the evening.
HOURS = (4, 3, 2, 2, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6, 6, 7, 8, 10, 11, 11, 10, 8, 6)
WEEKDAYS = (1.0, 0.95, 0.95, 1.0, 1.15, 1.35, 1.3)  # Monday … Sunday
LOCAL = timedelta(hours=7)
MAX_INCIDENTS = 2_000_000
MAX_DAYS = 3660


class SeedError(ValueError):
    """A seed request that makes no sense (no incidents, a negative span)."""


@dataclass(frozen=True, slots=True)
class SeedResult:
    incidents: int
    since: datetime
    until: datetime


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _lognormal(rng: random.Random, median_s: float, spread: float = 0.6) -> float:
    return float(median_s * math.exp(rng.gauss(0, spread)))


def province_weights(directory: Directory) -> dict[str, list[Station]]:
    """Stations per province (one station per district in the shipped directory)."""
    by_province: dict[str, list[Station]] = defaultdict(list)
    for station in directory.stations:
        by_province[station.province_code].append(station)
    return dict(by_province)


def _moment(rng: random.Random, since: datetime, days: float) -> datetime:
    # Draw a day, then an hour by the weekly shape: rejection keeps it simple and exact.
    while True:
        at = since + timedelta(seconds=rng.uniform(0, days * 86400))
        local = at + LOCAL
        weight = HOURS[local.hour] * WEEKDAYS[local.weekday()]
        if rng.uniform(0, 11 * 1.35) <= weight:
            return at


def plan(rng: random.Random, station: Station, created: datetime,
         ) -> tuple[Incident, list[tuple[str, float, dict[str, object]]]]:
    """One synthetic incident and its lifecycle: (trigger or kind, seconds after, data)."""
    lat = station.lat + rng.uniform(-0.025, 0.025)
    lon = station.lon + rng.uniform(-0.025, 0.025)
    silent = rng.random() < 0.14
    incident = Incident(
        reference=new_reference(), type=_pick(rng, TYPES),
        location=Location(lat, lon, LocationSource.REPORTER_PIN, 25.0),
        channel=_pick(rng, CHANNELS), reporter=f"demo:{rng.getrandbits(64):016x}",
        lang="th", silent=silent, do_not_call=silent, synthetic=True,
        area_codes=[station.province_code, station.district_code, station.id],
        details={"dispatch": {"seq": 0, "level": 0, "armed": -1, "notified": [],
                              "targets": {}, "holder": None, "reminders": 0,
                              "station": station.id}},
        created_at=created, updated_at=created)
    steps: list[tuple[str, float, dict[str, object]]] = []
    t = _lognormal(rng, 4, 0.5)
    steps.append(("dispatch", t, {"level": 0}))
    never = rng.random() < 0.04
    escalations = 0
    while not never and escalations < 2 and rng.random() < (0.18 if escalations == 0 else 0.3):
        escalations += 1
        t += 300 + rng.uniform(0, 30)
        steps.append(("escalate", t, {"level": escalations}))
    if never:
        for level in (1, 2):
            t += 300
            steps.append(("escalate", t, {"level": level}))
        return incident, steps
    t += _lognormal(rng, 110, 0.7)
    steps.append(("acknowledge", t, {"agency": rng.choices(AGENCIES, (6, 3, 1))[0],
                                     "level": escalations}))
    eta = rng.choice((5, 10, 10, 15, 15, 20, 30))
    t += _lognormal(rng, 60, 0.5)
    steps.append(("en_route", t, {"eta_minutes": eta, "estimated": False}))
    t += _lognormal(rng, eta * 60, 0.35)
    steps.append(("on_scene", t, {}))
    t += _lognormal(rng, 2700, 0.8)
    steps.append((_pick(rng, OUTCOMES), t, {}))
    return incident, steps


async def _walk(storage: Storage, router: DirectoryRouter, incident: Incident,
                steps: list[tuple[str, float, dict[str, object]]]) -> None:
    # Whom a real report of this place is dispatched to at once; the cards are dropped
    # (a synthetic report is never sent to anyone).
    plan_first_dispatch(incident, await router.route(incident, 0))
    stored = await storage.incidents.create(
        incident, [], TimelineEvent("reported", "reporter", incident.channel,
                                    incident.created_at, {"synthetic": True}))
    state = stored.details["dispatch"]
    for trigger, seconds, data in steps:
        at = stored.created_at + timedelta(seconds=seconds)
        stored.status = lc.apply(stored.status, trigger)
        state["seq"] += 1
        if trigger in ("dispatch", "escalate"):
            state["level"] = int(str(data["level"]))
        if trigger == "escalate":
            # The level's route adds its targets (the same primary station, so the where
            # and the station stay); again no card is kept.
            plan_first_dispatch(stored, await router.route(stored, state["level"]))
        if trigger == "acknowledge":
            state["holder"] = {"address": "demo", "id": "demo", "name": "demo",
                               "agency": data["agency"], "at": at.isoformat()}
            data = {}
        kind = stored.status if trigger != "dispatch" else lc.DISPATCHED
        await storage.incidents.update(stored, TimelineEvent(kind, "demo", "system", at,
                                                             dict(data)))


async def seed(storage: Storage, directory: Directory, incidents: int, days: float,
               now: datetime, rng: random.Random | None = None,
               progress: Callable[[int], None] | None = None,
               router: DirectoryRouter | None = None) -> SeedResult:
    """Write `incidents` synthetic incidents created over the `days` before `now`, each
    dispatched (on paper) as `router` (default: the directory's, with place names) would."""
    if not 1 <= incidents <= MAX_INCIDENTS:
        raise SeedError(f"--incidents must be between 1 and {MAX_INCIDENTS:,}")
    if not 0 < days <= MAX_DAYS:
        raise SeedError(f"--days must be more than 0 and at most {MAX_DAYS}")
    rng = rng or random.Random()
    stations = province_weights(directory)
    if not stations:
        raise SeedError("the directory has no stations to place incidents at")
    provinces = list(stations)
    weights = [len(stations[p]) for p in provinces]
    since = now - timedelta(days=days)
    router = router or DirectoryRouter(directory, gazetteer=Gazetteer.load())
    for k in range(incidents):
        station = rng.choice(stations[rng.choices(provinces, weights)[0]])
        created = _moment(rng, since, days)
        incident, steps = plan(rng, station, created)
        # Milestones that would lie in the future have not happened yet.
        await _walk(storage, router, incident, [s for s in steps
                                        if created + timedelta(seconds=s[1]) <= now])
        if progress is not None and (k + 1) % 500 == 0:
            progress(k + 1)
    return SeedResult(incidents, since, now)
