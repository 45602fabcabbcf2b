"""Routing by the directory: the nearest station, its area's groups, and bound chats.

Level 0 (at once): the station whose jurisdiction holds the pin, else the nearest station;
its station, district and province groups of level 0; chats bound to those areas.
Level 1 (first escalation) adds the next nearest station and level-1 groups (the province's
191 centre); level 2 adds the national fallback. A pin with no coordinates, outside the
country's stations' reach (the sea, a neighbouring country) goes to the national groups at
once and is flagged, so a person looks at it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.incident import Incident
from routing.agencies import CASE_ONLY
from routing.directory import NATIONAL, Directory, Group, Station
from routing.gazetteer import Gazetteer
from routing.geo import haversine_km, valid_point
from routing.ports import Route, Target
from storage.ports import Bindings

FLAG_NO_POINT = "no_location"
FLAG_OUTSIDE = "outside_coverage"
DEFAULT_MAX_STATION_KM = 60.0


def _target(group: Group, distance: float | None, level: int | None = None) -> list[Target]:
    return [Target(a, group.agency, group.name_th, group.name_en, group.area,
                   group.level if level is None else level, distance, group.lang)
            for a in group.addresses]


class DirectoryRouter:
    """The Router port over a Directory and the store's bindings."""

    def __init__(self, directory: Directory, bindings: Bindings | None = None,
                 max_station_km: float = DEFAULT_MAX_STATION_KM,
                 gazetteer: Gazetteer | None = None):
        self.directory = directory
        self.bindings = bindings
        self.max_station_km = max_station_km
        self.gazetteer = gazetteer

    def places(self, station: Station) -> dict[str, dict[str, str]]:
        """The province, district and station in words, in Thai and English."""
        province = self.gazetteer.province(station.province_code) if self.gazetteer else None
        district = self.gazetteer.district(station.district_code) if self.gazetteer else None
        return {
            "th": {"province": province.name_th if province else station.province_code,
                   "district": district.name_th if district else station.district_code,
                   "station": station.name_th},
            "en": {"province": province.name_en if province else station.province_code,
                   "district": district.name_en if district else station.district_code,
                   "station": station.name_en},
        }

    def stations_for(self, lat: float, lon: float) -> list[tuple[Station, float]]:
        """The responsible station first (polygon, else nearest), then the next nearest."""
        nearest = self.directory.nearest(lat, lon, 3)
        owner = self.directory.containing(lat, lon)
        if owner is None:
            return nearest
        rest = [(s, km) for s, km in nearest if s.id != owner.id]
        return [(owner, haversine_km(lat, lon, owner.lat, owner.lon)), *rest]

    async def route(self, incident: Incident, level: int = 0) -> Route:
        lat, lon = incident.location.lat, incident.location.lon
        if lat is None or lon is None or not valid_point(lat, lon):
            return await self._national(level, (FLAG_NO_POINT,))
        stations = self.stations_for(lat, lon)
        if not stations or (stations[0][1] > self.max_station_km
                            and self.directory.containing(lat, lon) is None):
            return await self._national(level, (FLAG_OUTSIDE,))
        chosen = stations[:1] if level == 0 else stations[:2]
        primary, distance = chosen[0]
        targets: list[Target] = []
        for rank, (station, km) in enumerate(chosen):
            added_at = 0 if rank == 0 else 1
            targets += [Target(a, "station", station.name_th, station.name_en, station.id,
                               added_at, km) for a in station.addresses]
            areas = station.areas if rank == 0 else station.areas[:1]
            for group in self.directory.groups_for(areas):
                if group.level <= level and group.agency not in CASE_ONLY:
                    targets += _target(group, km, max(group.level, added_at))
        if level >= 2:
            for group in self.directory.national:
                targets += _target(group, None)
        targets += await self._bound([s for s, _ in chosen], level, distance)
        codes = (primary.province_code, primary.district_code, primary.id)
        return _route(targets, codes, (), primary.id, distance, self.places(primary))

    async def _bound(self, stations: Sequence[Station], level: int,
                     distance: float) -> list[Target]:
        """Chats bound to the stations' areas; a binding is told at its agency's level."""
        if self.bindings is None:
            return []
        areas = [a for s in stations[:1] for a in s.areas] + [s.id for s in stations[1:]]
        found: list[Target] = []
        for binding in await self.bindings.for_areas(areas):
            if binding.agency in CASE_ONLY:
                continue  # a volunteer's chat opens cases; it is never sent incidents
            same = [g for g in self.directory.groups_for([binding.area])
                    if g.agency == binding.agency]
            at = min((g.level for g in same), default=0)
            if at <= level:
                # A bound chat speaks for its agency in that area: the directory's names.
                th, en = (same[0].name_th, same[0].name_en) if same else ("", "")
                found.append(Target(binding.address, binding.agency, th, en, binding.area, at,
                                    distance))
        return found

    async def _national(self, level: int, flags: tuple[str, ...]) -> Route:
        targets = [t for g in self.directory.national for t in _target(g, None, 0)]
        if self.bindings is not None:
            targets += [Target(b.address, b.agency, "", "", b.area)
                        for b in await self.bindings.for_areas([NATIONAL])
                        if b.agency not in CASE_ONLY]
        return _route(targets, (), flags, None, None)


def _route(targets: list[Target], codes: tuple[str, ...], flags: tuple[str, ...],
           station: str | None, distance: float | None,
           places: dict[str, dict[str, str]] | None = None) -> Route:
    unique: dict[str, Target] = {}
    for target in targets:
        # One message per address: the first (most specific) reason wins.
        unique.setdefault(target.address, target)
    kept = tuple(unique.values())
    return Route(tuple(t.address for t in kept), codes, flags, kept, station, distance,
                 places or {})
