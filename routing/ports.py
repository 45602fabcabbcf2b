"""Who must be told about an incident: the routing port the report service calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.incident import Incident
from routing.gazetteer import Gazetteer


@dataclass(frozen=True)
class Route:
    """The addresses to notify, the incident's area codes, and anything odd about it."""

    recipients: tuple[str, ...]
    area_codes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


class Router(Protocol):
    def route(self, incident: Incident) -> Route: ...


class FallbackRouter:
    """Every report to one configured address, with area codes where the gazetteer knows.

    The embedded default until a directory is configured; a real deployment routes by area.
    """

    def __init__(self, recipient: str, gazetteer: Gazetteer | None = None):
        self.recipient = recipient
        self.gazetteer = gazetteer

    def route(self, incident: Incident) -> Route:
        codes: tuple[str, ...] = ()
        place_id = incident.location.place_id
        if self.gazetteer and place_id:
            place = next((p for p in self.gazetteer.places if p.id == place_id), None)
            if place:
                codes = (place.province_code, place.id[1:]) if place.kind == "district" \
                    else (place.province_code,)
        recipients = (self.recipient,) if self.recipient else ()
        return Route(recipients, codes, ("fallback",))
