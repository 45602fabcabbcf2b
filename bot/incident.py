"""Incidents, their timeline, and the notifications the outbox carries: plain records."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.types import Inbound, Kind, Location, utcnow

# No look-alikes (0/O, 1/I/L, 5/S, 8/B, 2/Z, U/V): easy to read aloud on the phone.
REFERENCE_ALPHABET = "34679ACDEFGHJKMNPQRTWXY"
REFERENCE_PREFIX = "ESS"
REFERENCE_LENGTH = 5


def new_reference() -> str:
    """`ESS-7K3F9`: 23^5 ≈ 6.4 million; stores retry on the rare collision."""
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{REFERENCE_PREFIX}-{body}"


def new_binding_code() -> str:
    """A one-time code a responder types in a group chat to bind it (8 unambiguous chars)."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


_REFERENCE_ALONE = re.compile(
    rf"^\s*{REFERENCE_PREFIX}[\s\-]*[{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}}\s*$", re.I)


def is_reference(inbound: Inbound) -> bool:
    """A message that is nothing but a reference (`ESS-7K3F9`, `ess 7k3f9`)."""
    return inbound.kind is Kind.TEXT and bool(_REFERENCE_ALONE.match(inbound.text))


def normalize_reference(text: str) -> str:
    """What a person types (`ess 7k3f9`, `7K3F9`) to the stored form."""
    body = "".join(ch for ch in text.upper() if ch.isalnum())
    if body.startswith(REFERENCE_PREFIX):
        body = body[len(REFERENCE_PREFIX):]
    return f"{REFERENCE_PREFIX}-{body}"


@dataclass(slots=True)
class Incident:
    """A submitted report. `phone` and `location` are sealed at rest by the stores."""

    reference: str
    type: str
    location: Location
    channel: str
    reporter: str  # the conversation key, so updates can reach the reporter
    lang: str
    phone: str | None = None  # E.164; None when the reporter asked not to be called
    do_not_call: bool = False
    silent: bool = False
    drill: bool = False
    synthetic: bool = False  # made by `ess demo seed`: never dispatched, flagged in analytics
    status: str = "new"
    area_codes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    source_event: str | None = None  # idempotency: one incident per submitting event
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: int = 1
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


def dispatched_agencies(details: dict[str, Any]) -> list[str]:
    """The agencies an incident was dispatched to, sorted, from its dispatch details (each
    target the dispatcher told keeps its agency: routing.responders): what the stores index
    so a staff member's agencies scope their reads."""
    dispatch = details.get("dispatch")
    targets = dispatch.get("targets") if isinstance(dispatch, dict) else None
    if not isinstance(targets, dict):
        return []
    return sorted({str(t["agency"]) for t in targets.values()
                   if isinstance(t, dict) and t.get("agency")})


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One thing that happened to an incident: who, when, through which channel."""

    kind: str
    actor: str
    channel: str
    at: datetime = field(default_factory=utcnow)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Notification:
    """A message the dispatcher must hand to a channel: one outbox row.

    `payload` may hold personal data (the responder card carries the call-back number), so
    stores seal it. `key` is the idempotency key channels pass on (LINE X-Line-Retry-Key).
    """

    recipient: str  # channel address, "line:C…", "sms:+66…", "console:…"
    kind: str
    payload: dict[str, Any]
    incident_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime = field(default_factory=utcnow)
    last_error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    sent_at: datetime | None = None
