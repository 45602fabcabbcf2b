"""What the board shows of one incident: a typed row, the same for the page and the events.

No phone number and no free text here: the row goes to every viewer of the area through
the live stream. The position is rounded to about 100 m for the overview map; the incident
page (audited) has the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.i18n import Catalogs
from bot.incident import Incident, dispatched_agencies
from bot.types import Text
from channels.board.words import say
from routing import lifecycle as lc
from routing.responders import dispatch_state

WAITING = lc.WAITING


@dataclass(frozen=True, slots=True)
class BoardRow:
    reference: str
    type: str
    type_label: str
    status: str
    status_label: str
    created_at: str  # ISO 8601; the page counts the timers from these
    escalate_at: str | None  # waiting: when the next escalation is due
    eta_minutes: int | None
    en_route_at: str | None
    on_scene_at: str | None
    holder: str
    where: str
    areas: tuple[str, ...]
    agencies: tuple[str, ...]
    silent: bool
    do_not_call: bool
    drill: bool
    open: bool
    lat: float | None
    lon: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def where_words(incident: Incident, lang: str) -> str:
    state = dispatch_state(incident)
    names = (state.get("where") or {}).get(lang) or (state.get("where") or {}).get("th") or {}
    parts = [names.get(k, "") for k in ("station", "district", "province")]
    return ", ".join(p for p in parts if p) or ", ".join(incident.area_codes)


def holder_name(incident: Incident, lang: str) -> str:
    holder = dispatch_state(incident).get("holder") or {}
    name = holder.get("name") or holder.get(f"name_{lang}") or holder.get("name_th") or ""
    agency = holder.get(f"name_{lang}") or holder.get("agency") or ""
    if name and agency and agency != name:
        return f"{name} ({agency})"
    return str(name or agency)


def escalation_due(state: dict[str, Any], reported: datetime,
                   escalate_after: float) -> str | None:
    """When the waiting incident escalates: the escalation clock of each level starts when
    its card is delivered (`armed_at`), so before that delivery nothing is due yet."""
    level = state.get("level", 0)
    armed_at = _parse(state.get("armed_at"))
    if state.get("armed", -1) == level and armed_at is not None:
        return datetime.fromtimestamp(armed_at.timestamp() + escalate_after,
                                      armed_at.tzinfo).isoformat()
    if state.get("armed", -1) == level:
        # Armed before deliveries were timed: from the report, at most early, never late.
        due = reported.timestamp() + escalate_after * (level + 1)
        return datetime.fromtimestamp(due, reported.tzinfo).isoformat()
    return None


def row(incident: Incident, catalogs: Catalogs, lang: str, escalate_after: float) -> BoardRow:
    state = dispatch_state(incident)
    escalate_at = None
    if incident.status in WAITING:
        escalate_at = escalation_due(state, incident.created_at, escalate_after)
    agencies = tuple(dispatched_agencies(incident.details))
    lat = round(incident.location.lat, 3) if incident.location.lat is not None else None
    lon = round(incident.location.lon, 3) if incident.location.lon is not None else None
    return BoardRow(
        reference=incident.reference, type=incident.type,
        type_label=catalogs.render(lang, Text(f"incident.{incident.type}")),
        status=incident.status, status_label=say(lang, f"status_{incident.status}"),
        created_at=incident.created_at.isoformat(), escalate_at=escalate_at,
        eta_minutes=state.get("eta_minutes"), en_route_at=state.get("en_route_at"),
        on_scene_at=state.get("on_scene_at"), holder=holder_name(incident, lang),
        where=where_words(incident, lang), areas=tuple(incident.area_codes),
        agencies=agencies, silent=incident.silent, do_not_call=incident.do_not_call,
        drill=incident.drill, open=incident.status not in lc.CLOSED, lat=lat, lon=lon)


def urgency(r: BoardRow) -> tuple[int, str]:
    """Waiting first, then held; newest first within each."""
    rank = 0 if r.status in WAITING else 1 if r.open else 2
    return rank, "".join(chr(0x10FFFF - ord(c)) for c in r.created_at)
