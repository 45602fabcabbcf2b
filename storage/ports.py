"""The storage ports: what the engine, the dispatcher and the command line need from a store.

Adapters (SQLite now; PostgreSQL and Redis next) implement these Protocols, and one contract
test suite runs against every adapter. Every method is a single round trip where the backend
allows it: the engine's hot path is `load` then `save`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.incident import Incident, Notification, TimelineEvent
from bot.session import Session


class StorageError(Exception):
    """The store could not do what was asked; the caller reports it, never hides it."""


class StaleSession(StorageError):
    """A save lost a race: the session changed since it was loaded (fencing)."""


class SchemaMismatch(StorageError):
    """The database's schema version is not the one this code was written for."""


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable deadline (escalation, reminder), fired by a sweep.

    `subject_version` is the version of the subject (an incident) when the timer was set: a
    timer whose subject has moved on since must do nothing (a late escalation must never undo
    an acknowledgement).
    """

    id: str
    kind: str
    subject: str
    due_at: datetime
    subject_version: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    """A responder chat (a LINE group, an SMS number) bound to an area and an agency."""

    address: str  # "line:C…", "sms:+66…"
    area: str  # province or district code, or a station id
    agency: str
    bound_at: datetime


@dataclass(frozen=True, slots=True)
class Milestone:
    """When an incident first reached a timeline kind (for response-time statistics).

    `kind` and `at` are None for an incident that never reached any of the kinds asked for.
    """

    incident_id: str
    created_at: datetime
    area_codes: tuple[str, ...]
    kind: str | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Loaded:
    """The result of the engine's first read: was the event handled already, and the session."""

    duplicate: bool
    session: Session | None


class SessionStore(Protocol):
    async def load(self, conversation: str, event_key: str) -> Loaded:
        """Whether `event_key` was handled, and the conversation's session, in one read."""

    async def save(self, session: Session, event_key: str) -> None:
        """Store the session and mark `event_key` handled, atomically.

        Raises StaleSession when the stored version is not `session.version`.
        """

    async def sweep_idle(self, now: datetime) -> int:
        """End every session idle past its deadline, forgetting its answers; return how many."""

    async def forget_events(self, before: datetime) -> int:
        """Drop dedupe records older than `before`."""


class Locks(Protocol):
    def hold(self, conversation: str) -> AbstractAsyncContextManager[int]:
        """Hold the conversation's lock; yields a fencing token that grows with each holder."""


class IncidentStore(Protocol):
    async def create(self, incident: Incident, notifications: Sequence[Notification],
                     event: TimelineEvent, timers: Sequence[Timer] = ()) -> Incident:
        """Write the incident, its first timeline event, its outbox rows and its timers (the
        escalation watchdog) in one transaction.

        Idempotent on `incident.source_event`: a second call returns the first incident and
        writes nothing.
        """

    async def get(self, reference: str) -> Incident | None: ...

    async def get_by_id(self, incident_id: str) -> Incident | None: ...

    async def recent(self, limit: int = 50, *, include_drills: bool = True) -> list[Incident]: ...

    async def update(self, incident: Incident, event: TimelineEvent,
                     notifications: Sequence[Notification] = ()) -> Incident:
        """Save changed fields, append the event and queue notifications in one transaction.

        Raises StaleSession when `incident.version` is not the stored version; bumps it.
        """

    async def timeline(self, incident_id: str) -> list[TimelineEvent]: ...

    async def milestones(self, since: datetime, kinds: Sequence[str]) -> list[Milestone]:
        """For every incident created at or after `since`, drills excluded: the first time
        it reached each of `kinds`; one row per (incident, kind reached), and one row with
        kind None for an incident that reached none of them."""

    async def record_access(self, actor: str, action: str, subject: str) -> None:
        """Audit one read of personal data by a person (invariant 4)."""


class Outbox(Protocol):
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    now: datetime) -> list[Notification]:
        """Lease up to `limit` due rows to `owner`; a row leased elsewhere is not returned."""

    async def complete(self, notification_id: str, owner: str, now: datetime) -> bool: ...

    async def retry(self, notification_id: str, owner: str, at: datetime, error: str) -> bool: ...

    async def bury(self, notification_id: str, owner: str, error: str) -> bool:
        """Move a row that will never be delivered to the dead-letter state."""

    async def pending(self) -> int: ...


class Timers(Protocol):
    async def schedule(self, timer: Timer) -> None:
        """Insert or replace the timer with this id."""

    async def cancel(self, subject: str, kind: str | None = None) -> int:
        """Remove the subject's timers (of one kind, or all); return how many."""

    async def claim_due(self, owner: str, now: datetime, limit: int,
                        lease_seconds: float) -> list[Timer]:
        """Lease due timers to `owner`; a leased timer is not handed to anyone else."""

    async def done(self, timer_id: str, owner: str) -> bool:
        """Remove a fired timer; False when the lease was lost."""


class Bindings(Protocol):
    async def create_code(self, area: str, agency: str, ttl_seconds: float,
                          now: datetime) -> str:
        """A one-time code that binds the chat it is typed in to `area` and `agency`."""

    async def redeem(self, code: str, address: str, now: datetime) -> Binding | None:
        """Bind `address` with an unexpired, unused code; None when the code is not valid."""

    async def unbind(self, address: str) -> int: ...

    async def for_areas(self, areas: Sequence[str]) -> list[Binding]: ...

    async def for_address(self, address: str) -> list[Binding]: ...


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One verified inbound event, kept from before its webhook is answered until handled.

    `conversation` orders entries (one conversation's are handled one at a time, in arrival
    order); `event_key` ("<channel>:<event id>") is kept once however often it arrives;
    `data` is what the channel needs to handle it later (stores seal it with the
    conversation: both may hold personal data).
    """

    id: str
    channel: str
    conversation: str
    event_key: str
    data: dict[str, Any]
    received_at: datetime
    attempts: int = 0


class InboundJournal(Protocol):
    async def append(self, entries: Sequence[JournalEntry]) -> int:
        """Keep `entries` durably, in order, before the caller answers; an `event_key`
        already waiting is not kept twice. Returns how many were new."""

    async def claim(self, owner: str, conversations: int, lease_seconds: float,
                    now: datetime) -> list[JournalEntry]:
        """Lease every waiting entry of up to `conversations` conversations that have no
        entry under someone's unexpired lease; oldest conversations first, each in arrival
        order. A crashed owner's entries come back when its lease runs out."""

    async def renew(self, owner: str, lease_seconds: float, now: datetime) -> int:
        """Extend every lease `owner` holds; return how many entries."""

    async def done(self, entry_ids: Sequence[str], owner: str) -> int:
        """Forget handled entries still leased to `owner`; how many (an entry whose lease
        was lost to another owner is not forgotten)."""

    async def pending(self) -> int: ...


class Storage(Protocol):
    """One opened backend: its ports, its health, its lifetime."""

    # Read-only properties, so an adapter may expose its own concrete classes.
    @property
    def sessions(self) -> SessionStore: ...

    @property
    def locks(self) -> Locks: ...

    @property
    def incidents(self) -> IncidentStore: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def timers(self) -> Timers: ...

    @property
    def bindings(self) -> Bindings: ...

    @property
    def journal(self) -> InboundJournal: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

