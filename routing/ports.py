"""Who must be told about an incident: the routing port the report service calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.incident import Incident
from routing.gazetteer import Gazetteer


@dataclass(frozen=True, slots=True)
class Target:
    """One address to notify, and what the card tells it (agency, distance)."""

    address: str
    agency: str
    name_th: str
    name_en: str
    area: str
    level: int = 0
    distance_km: float | None = None
    lang: str = "th"


@dataclass(frozen=True)
class Route:
    """The addresses to notify, the incident's area codes, and anything odd about it.

    `area_codes` run from the least to the most specific: province, district, station.
    """

    recipients: tuple[str, ...]
    area_codes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()
    station: str | None = None
    distance_km: float | None = None
    # Where it was routed, in words, per language: {"th": {"province": …, "district": …,
    # "station": …}, "en": {…}}; the responder card shows it in the responder's language.
    places: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Router(Protocol):
    async def route(self, incident: Incident, level: int = 0) -> Route:
        """Everyone to tell at escalation `level` (0: at once), cumulative."""


class FallbackRouter:
    """Every report to one configured address, with area codes where the gazetteer knows.

    For tests and a service with no directory; the default is routing.router.DirectoryRouter.
    """

    def __init__(self, recipient: str, gazetteer: Gazetteer | None = None):
        self.recipient = recipient
        self.gazetteer = gazetteer

    async def route(self, incident: Incident, level: int = 0) -> Route:
        codes: tuple[str, ...] = ()
        place_id = incident.location.place_id
        if self.gazetteer and place_id:
            place = next((p for p in self.gazetteer.places if p.id == place_id), None)
            if place:
                codes = (place.province_code, place.id[1:]) if place.kind == "district" \
                    else (place.province_code,)
        recipients = (self.recipient,) if self.recipient else ()
        targets = tuple(Target(r, "fallback", "", "", "TH") for r in recipients)
        places: dict[str, dict[str, str]] = {}
        province = self.gazetteer.province(codes[0]) if self.gazetteer and codes else None
        if province is not None:
            places = {"th": {"province": province.name_th}, "en": {"province": province.name_en}}
        return Route(recipients, codes, ("fallback",), targets, places=places)
