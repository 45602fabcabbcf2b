"""The storage ports: what the engine, the dispatcher and the command line need from a store.

Adapters (SQLite now; PostgreSQL and Redis next) implement these Protocols, and one contract
test suite runs against every adapter. Every method is a single round trip where the backend
allows it: the engine's hot path is `load` then `save`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.case import Case, CasePhoto
from bot.incident import Incident, Notification, TimelineEvent
from bot.session import Session
from bot.staff import BoardEvent, StaffMember
from storage import analytics

if TYPE_CHECKING:
    from storage.audit import AuditEntry, AuditRecord, Head, Verdict
    from storage.exports import HeldExport
    from storage.privacy import Breach, ConsentEvent, SubjectRequest
    from storage.vault import KeyStatus

TRANSCRIPT_MESSAGES = 100  # kept per web conversation for replay
TRANSCRIPT_KEEP = timedelta(days=7)  # a web conversation idle this long is forgotten

# How long every store remembers a handled event id. LINE redelivers for a while; keep ids
# well past that. Channels refuse events older than this (`channels.bodies`): a captured
# body replayed later would otherwise pass dedupe.
DEDUPE_WINDOW = timedelta(hours=48)


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

    async def erase(self, conversation: str) -> int:
        """Forget the conversation's session entirely (a data subject's erasure)."""


class Locks(Protocol):
    def hold(self, conversation: str,
             event_key: str | None = None) -> AbstractAsyncContextManager[int]:
        """Hold the conversation's lock; yields a fencing token that grows with each holder.

        `event_key`: the event the holder loads next (`SessionStore.load`); a store may read
        it with the lock, in the same round trip, and the load then costs nothing.
        """


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

    async def for_reporter(self, reporter: str, since: datetime,
                           limit: int = 20) -> list[Incident]:
        """The incidents reported from conversation `reporter` since `since`, newest first
        (silent ones included: the caller decides what a person may be shown)."""

    async def update(self, incident: Incident, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Incident:
        """Save changed fields, append the event, queue notifications and schedule timers
        (replacing any of the same id) in one transaction.

        Raises StaleSession when `incident.version` is not the stored version; bumps it.
        """

    async def timeline(self, incident_id: str) -> list[TimelineEvent]: ...

    async def milestones(self, since: datetime, kinds: Sequence[str]) -> list[Milestone]:
        """For every incident created at or after `since`, drills and synthetic ones
        excluded: the first time
        it reached each of `kinds`; one row per (incident, kind reached), and one row with
        kind None for an incident that reached none of them."""

    async def record_access(self, actor: str, action: str, subject: str) -> None:
        """Audit one read of personal data by a person (invariant 4)."""

    async def for_subject(self, digests: Sequence[str], limit: int = 500) -> list[Incident]:
        """The incidents whose reporter key or phone key is one of `digests` (keyed
        digests: `digest(conversation)`, `digest("phone:" + E.164)`), newest first."""

    async def messages(self, incident_id: str) -> list[Notification]:
        """The incident's outbox rows (pending, sent or dead), opened with its key, oldest
        first; none once its key is destroyed (a subject's export lists them)."""

    async def derived(self, incident_id: str) -> analytics.Derived | None:
        """The incident's statistics columns as stored (they stay after an erasure)."""

    async def scrub(self, incident_ids: Sequence[str]) -> int:
        """After their keys are destroyed: clear the look-up digests and phone of these
        incidents and bury their undelivered outbox rows; how many incidents."""

    async def resolved_before(self, before: datetime, limit: int = 500) -> list[Incident]:
        """Closed incidents last changed before `before` whose data key still exists
        (what retention erases next), oldest first."""

    async def counts(self, query: analytics.Query,
                     dims: Sequence[str]) -> list[analytics.CountRow]:
        """Incidents counted per combination of `dims` (storage.analytics.DIMENSIONS),
        aggregated by the database; combinations with no incident are absent."""

    async def responses(self, query: analytics.Query, dims: Sequence[str],
                        now: datetime) -> list[analytics.ResponseRow]:
        """Response figures per combination of `dims`: stage percentiles (nearest rank),
        never acknowledged, escalations, promised ETA against arrival."""
    async def in_areas(self, areas: Sequence[str], *, agencies: Sequence[str] = (),
                       exclude_status: Sequence[str] = (), limit: int = 300) -> list[Incident]:
        """The incidents routed to any of `areas` (every one for `TH`) and, when `agencies`
        are given, dispatched to one of them (`bot.incident.dispatched_agencies`, an indexed
        column kept by `create`/`update`), newest first: a staff member's scope is applied
        here, in the query, never after it. `TH` sees every agency's."""

    async def get_in(self, reference: str, areas: Sequence[str],
                     agencies: Sequence[str] = ()) -> Incident | None:
        """The incident, only when it is within `areas` (and `agencies`, as `in_areas`):
        another scope's reference reads as unknown."""


class CaseStore(Protocol):
    """Welfare cases; personal fields sealed, duplicates found by keyed hashes only."""

    async def create(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        """Write the case, its first event, outbox rows and timers in one transaction;
        idempotent on `case.source_event` (a second call returns the first case)."""

    async def get(self, reference: str) -> Case | None: ...

    async def get_by_id(self, case_id: str) -> Case | None: ...

    async def update(self, case: Case, event: TimelineEvent,
                     notifications: Sequence[Notification] = (),
                     timers: Sequence[Timer] = ()) -> Case:
        """Save, append the event, queue and schedule in one transaction; StaleSession
        when `case.version` is not the stored one; bumps it."""

    async def timeline(self, case_id: str) -> list[TimelineEvent]: ...

    async def for_volunteer(self, volunteer: str, limit: int = 20) -> list[Case]:
        """The cases opened from conversation `volunteer`, newest first."""

    async def recent(self, limit: int = 50, areas: Sequence[str] | None = None,
                     flag: str | None = None) -> list[Case]:
        """The newest cases; with `areas`, only those a viewer of these areas may see (a
        case's area or its province is one of them; `TH` sees all), filtered in SQL; with
        `flag`, only the cases carrying it (`zero_dropout`)."""

    async def get_in(self, reference: str, areas: Sequence[str]) -> Case | None:
        """The case if it is within `areas` (as `recent`): another area's reads as none."""

    async def for_incident(self, incident_id: str) -> list[Case]: ...

    async def possible_duplicates(self, case: Case, since: datetime) -> list[str]:
        """References of other cases with one of this case's Thai IDs (any time), or the
        same person and place opened at or after `since`."""

    async def closed_before(self, before: datetime, limit: int = 500) -> list[Case]:
        """Closed cases last changed before `before` whose data key still exists (what
        retention erases next), oldest first."""

    async def scrub(self, case_ids: Sequence[str]) -> int:
        """After their data keys are destroyed: drop the cases' duplicate-detection hashes
        (keyed hashes of Thai IDs and of person and place); how many were dropped."""


class CasePhotos(Protocol):
    """Photos of documents kept with cases, sealed with each case's own data key."""

    async def add(self, photo: CasePhoto) -> bool:
        """Keep the photo (once per id: a second add changes nothing); False when the case
        does not exist or its key is destroyed (erased: nothing is kept)."""

    async def listed(self, case_id: str) -> list[CasePhoto]:
        """The case's photos without their bytes, oldest first."""

    async def get(self, case_id: str, photo_id: str) -> CasePhoto | None:
        """One photo with its bytes; None when unknown, of another case, or erased."""

    async def drop(self, case_ids: Sequence[str]) -> int:
        """Remove the cases' photos (after their keys are destroyed); how many."""

    async def counts(self, case_ids: Sequence[str]) -> dict[str, int]:
        """How many photos each of these cases holds (cases without any are left out)."""


class Outbox(Protocol):
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    now: datetime) -> list[Notification]:
        """Lease up to `limit` due rows to `owner`; a row leased elsewhere is not returned."""

    async def complete(self, notification_id: str, owner: str, now: datetime) -> bool: ...

    async def complete_all(self, ids: Sequence[str], owner: str, now: datetime) -> list[str]:
        """Group commit: mark as sent, in one statement, the rows among `ids` that `owner`
        still holds unsent; the ids marked (a missing one was taken over: lease lost)."""

    async def extend(self, ids: Sequence[str], owner: str, lease_seconds: float,
                     now: datetime) -> int:
        """Renew the lease of the rows among `ids` that `owner` still holds unsent; how
        many. A send slower than the lease is then not taken and sent again elsewhere."""

    async def retry(self, notification_id: str, owner: str, at: datetime, error: str) -> bool: ...

    async def bury(self, notification_id: str, owner: str, error: str) -> bool:
        """Move a row that will never be delivered to the dead-letter state."""

    async def pending(self) -> int: ...

    async def forget_payloads(self, kind_prefix: str, before: datetime) -> int:
        """Retention: empty the payload of delivered or dead rows of these kinds created
        before `before` (relay messages); idempotent; how many were emptied."""

    async def for_incident(self, incident_id: str) -> list[Notification]:
        """Every notification of one incident, oldest first, whatever its state (the
        incident page's record of who was told what, and when it was delivered)."""


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
class Limit:
    """A token bucket: at most `capacity` at once, refilled evenly over `period` seconds.

    `key` names what is limited ("web:frame:addr:<client address>"); adapters store only a
    keyed hash of it, so a client address or a phone number never sits in a row or a key.
    """

    key: str
    capacity: int
    period: float

    @property
    def rate(self) -> float:
        return self.capacity / self.period


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a web conversation's transcript: its sequence number and its body."""

    seq: int
    body: bytes


class Dedupe(Protocol):
    async def first(self, key: str, window: timedelta, now: datetime) -> bool:
        """True the first time `key` is seen within `window`, on any process."""

    async def forget(self, now: datetime) -> int:
        """Drop records whose window has passed; return how many."""

    async def release(self, key: str) -> None:
        """Forget `key` at once: its event failed and will be handled again."""


class OptOuts(Protocol):
    """Who sent STOP (SMS): kept until START, on every process, across restarts."""

    async def stop(self, address: str, now: datetime) -> None: ...

    async def start(self, address: str) -> bool:
        """Opt back in; False when the address had not opted out."""

    async def stopped(self, address: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Menu:
    """The numbered menu last sent to one address: number n picks `choices[n - 1]`.

    Each choice is (action token, label catalog key); `lang` is the language it was shown in.
    """

    choices: tuple[tuple[str, str], ...]
    lang: str
    expires_at: datetime


class Menus(Protocol):
    """The last numbered menu sent to each responder address (SMS), shared by every process.

    The address is kept as a keyed digest, the menu sealed. One row per address: a new menu
    replaces the old one, so the table never grows past the number of responder addresses.
    """

    async def remember(self, address: str, menu: Menu) -> None: ...

    async def last(self, address: str) -> Menu | None:
        """The last menu sent to `address`, expired or not (the caller says it expired)."""


class Transcripts(Protocol):
    """What a web conversation's page was shown, so any process can replay it."""

    async def append(self, conversation: str, body: bytes, now: datetime,
                     key: str | None = None) -> int | None:
        """Store `body` as the conversation's next message (sealed); its sequence number.

        With `key`, at most once per conversation: None when `key` was appended before.
        Only the last TRANSCRIPT_MESSAGES messages are kept.
        """

    async def after(self, conversation: str, seq: int) -> list[Entry]:
        """The kept messages after `seq`, in order."""

    async def forget(self, before: datetime) -> int:
        """Drop conversations with nothing appended since `before`; return how many."""

    async def erase(self, conversation: str) -> int:
        """Forget one conversation's transcript (a data subject's erasure)."""


class RateLimits(Protocol):
    async def take(self, limits: Sequence[Limit], now: datetime) -> Limit | None:
        """Take one token from every bucket, or from none: the first limit that has no
        token left, or None when all did (shared by every process)."""

    async def forget(self, now: datetime) -> int:
        """Drop buckets that are full again (nothing to remember); return how many."""


class Revocations(Protocol):
    async def revoke(self, subject: str, until: datetime) -> None:
        """Refuse `subject` (a web-chat conversation) until `until`, in every process."""

    async def revoked(self, subject: str, now: datetime) -> bool: ...


class AuditTrail(Protocol):
    """Append-only, hash-chained record of reads of personal data, exports, erasures,
    overrides and logins (storage/audit.py)."""

    async def append(self, entry: AuditEntry) -> AuditRecord: ...

    async def records(self, after: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        """Rows after `seq`, oldest first."""

    async def find(self, *, subject: str | None = None, staff: str | None = None,
                   reference: str | None = None, limit: int = 200) -> list[AuditRecord]:
        """The latest rows matching every filter given, newest first."""

    async def anchor(self) -> Head | None:
        """The head the anchor outside the table holds (None: none written yet)."""

    async def verify(self, heads: Sequence[Head] = ()) -> Verdict:
        """The chain walked, its end checked against the anchor and against `heads`."""


class Vault(Protocol):
    """Per-record data keys (storage/vault.py): destroy them to erase every copy."""

    async def shred(self, records: list[str], now: datetime) -> int:
        """Destroy the data keys of `records`; how many still existed."""

    async def status(self, records: list[str]) -> list[KeyStatus]: ...

    async def wrapped_by(self, key_ids: list[str]) -> list[KeyStatus]:
        """The live data keys wrapped by any of these service keys (hex key ids)."""

    async def rewrap(self) -> int:
        """Re-wrap every live data key with the newest service key; how many changed."""


class PrivacyLedger(Protocol):
    """Subject requests, consent events and breaches (storage/privacy.py)."""

    async def add_request(self, r: SubjectRequest) -> None: ...

    async def close_request(self, request_id: str, status: str, at: datetime, reason: str,
                            references: Sequence[str] = ()) -> bool: ...

    async def request(self, request_id: str) -> SubjectRequest | None: ...

    async def requests(self, *, open_only: bool = True) -> list[SubjectRequest]: ...

    async def add_consent(self, e: ConsentEvent) -> None: ...

    async def consents(self, subject: str) -> list[ConsentEvent]:
        """Every consent event of `subject`, oldest first."""

    async def add_breach(self, b: Breach) -> None: ...

    async def breaches(self) -> list[Breach]: ...


class SealedExports(Protocol):
    """Sealed subject exports waiting for their one download, in every process
    (storage/exports.py); the link's token stored as a keyed digest."""

    async def put(self, token: str, held: HeldExport, now: datetime) -> None: ...

    async def take(self, token: str, login: str, now: datetime) -> HeldExport | None:
        """The export once (deleted atomically: of two takes exactly one gets it), if
        `login`'s and not expired."""

    async def sweep(self, now: datetime) -> int:
        """Delete the expired exports; how many."""


class StaffStore(Protocol):
    """Board accounts, their one-time set-password tokens and their sessions (shared by every
    process, revocable). Tokens are stored only as keyed digests."""

    async def add(self, member: StaffMember, password_hash: str | None) -> bool:
        """False when the login exists."""

    async def get(self, login: str) -> StaffMember | None: ...

    async def all(self) -> list[StaffMember]: ...

    async def password_hash(self, login: str) -> str | None:
        """The stored hash of an enabled account; None otherwise."""

    async def set_password(self, login: str, password_hash: str) -> bool: ...

    async def disable(self, login: str) -> bool:
        """Disable the account and end every session it has."""

    async def issue_token(self, login: str, token: str, expires_at: datetime) -> None:
        """A one-time set-password token (replaces any earlier one of the login)."""

    async def redeem_token(self, token: str, now: datetime) -> str | None:
        """The login of an unexpired token, used up by this call; None otherwise."""

    async def open_session(self, token: str, login: str, now: datetime,
                           expires_at: datetime) -> None: ...

    async def session(self, token: str, now: datetime) -> StaffMember | None:
        """The enabled member whose unexpired session `token` is; None otherwise."""

    async def end_session(self, token: str) -> None: ...

    async def update(self, member: StaffMember) -> bool:
        """Change an account's name, language, roles, areas and agencies (not its state)."""

    async def set_totp(self, login: str, secret: bytes | None) -> bool:
        """Enrol (or, with None, remove) the TOTP secret, stored sealed; the accepted step
        starts again."""

    async def totp_secret(self, login: str) -> bytes | None:
        """The enrolled TOTP secret of an enabled account; None otherwise."""

    async def use_totp_step(self, login: str, step: int) -> bool:
        """Accept a code of time step `step` once: True only when no code of this step or a
        later one was accepted before (atomic: two processes never both accept one code)."""


class BoardLog(Protocol):
    """Every timeline event of every incident, numbered in commit order (the stores append
    it in the transaction that changes the incident), for the board's live updates."""

    async def after(self, seq: int, limit: int = 500) -> list[BoardEvent]: ...

    async def last(self) -> int: ...

    async def wake_on_append(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call `wake` soon after any process appends (PostgreSQL: LISTEN/NOTIFY), or never
        (SQLite: the reader polls); returns the coroutine function that stops it. A wake-up
        is a hint: the log stays the truth."""


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
                    now: datetime, handled: Sequence[str] = ()) -> list[JournalEntry]:
        """Lease every waiting entry of up to `conversations` conversations that have no
        entry under someone's unexpired lease; oldest conversations first, each in arrival
        order. A crashed owner's entries come back when its lease runs out. First forgets
        the `handled` entries as `done` would (in the same round trip where the backend
        can), so their conversations are free for this claim."""

    async def renew(self, owner: str, lease_seconds: float, now: datetime,
                    entry_ids: Sequence[str]) -> int:
        """Extend `owner`'s leases of `entry_ids` (the entries in its hands); how many. An
        entry of its own left out (its handling failed, or no lane took it) is left to run
        out, so it comes back."""

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
    def cases(self) -> CaseStore: ...

    @property
    def case_photos(self) -> CasePhotos: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def timers(self) -> Timers: ...

    @property
    def bindings(self) -> Bindings: ...

    @property
    def dedupe(self) -> Dedupe: ...

    @property
    def optouts(self) -> OptOuts: ...

    @property
    def transcripts(self) -> Transcripts: ...

    @property
    def menus(self) -> Menus: ...

    @property
    def limits(self) -> RateLimits: ...

    @property
    def revocations(self) -> Revocations: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def vault(self) -> Vault: ...

    @property
    def privacy(self) -> PrivacyLedger: ...

    @property
    def exports(self) -> SealedExports: ...

    @property
    def staff(self) -> StaffStore: ...

    @property
    def board(self) -> BoardLog: ...

    @property
    def journal(self) -> InboundJournal: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

