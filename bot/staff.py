"""Staff accounts of the operations board: who they are, what they may do, where.

Plain records (the ground floor): the stores keep them, the board checks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.types import utcnow

ROLES = ("responder", "supervisor", "analyst", "admin")
NATIONAL = "TH"  # the national centre's area: every incident


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A board account. `areas` are province, district or station codes (or `TH`)."""

    login: str
    name: str
    lang: str = "th"
    roles: tuple[str, ...] = ("responder",)
    areas: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    disabled: bool = False
    created_at: datetime = field(default_factory=utcnow)

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


def valid_login(login: str) -> bool:
    """1-64 letters, digits, '.', '-' or '_'."""
    return 0 < len(login) <= 64 and login.replace(".", "").replace("-", "") \
        .replace("_", "").isalnum()


def within(area: str, scope: Sequence[str]) -> bool:
    """Whether `area` lies inside `scope`: the national centre's holds every area, a code
    holds itself, and a numeric code holds the longer ones it begins (province 65 holds
    district 6501); a station id is inside only the scope that names it."""
    return NATIONAL in scope or any(
        area == s or (s.isdigit() and area.isdigit() and area.startswith(s)) for s in scope)


def in_scope(areas: Sequence[str], area_codes: Iterable[str]) -> bool:
    """Whether an incident routed to `area_codes` is within a viewer's `areas`."""
    return NATIONAL in areas or bool(set(areas) & set(area_codes))


def agencies_in_scope(areas: Sequence[str], agencies: Sequence[str],
                      dispatched: Iterable[str]) -> bool:
    """Whether an incident dispatched to `dispatched` is within a viewer's `agencies`: no
    agencies means every agency of the viewer's areas; the national centre sees all. The
    stores apply the same rule in their queries (`IncidentStore.in_areas`)."""
    return NATIONAL in areas or not agencies or bool(set(agencies) & set(dispatched))


@dataclass(frozen=True, slots=True)
class BoardEvent:
    """One change of an incident, in the board's durable, ordered log (no personal data)."""

    seq: int
    incident_id: str
    reference: str
    kind: str
    status: str
    area_codes: tuple[str, ...]
    at: datetime
    # The agencies the incident was dispatched to when the event was written (an agency
    # told later does not see what happened before); None for a row older than that record.
    agencies: tuple[str, ...] | None = None
