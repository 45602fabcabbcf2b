"""Per-record data keys (crypto-shredding): the key vault.

Every record that holds a person's data (an incident now; a case later) gets a data key of
its own. Its personal fields (the reporter's conversation key and phone, the exact location,
answers and typed text, the relay messages in its outbox rows) are sealed with that key; the
key itself is stored wrapped (sealed) by the service keys, with the keyed id of its subject.
Erasing a subject or a record destroys its keys: every copy of the sealed fields, in replicas
and backups too, can no longer be opened, while the clear columns that statistics use (type,
status, areas, timeline kinds and times) stay.

The vault lives apart from the data: SQLite keeps it in its own file (`ess-keys.db` next to
`ess.db`, attached as schema `vault`, secure_delete on), PostgreSQL in schema `vault`. A
backup of the data alone never holds a key; the vault is replicated, never archived for long
(docs/pdpa.md). Key rotation re-wraps the data keys with the newest service key and never
re-encrypts a record.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.incident import Incident
from bot.types import Location, LocationSource
from storage.crypto import (
    CLEAR_DETAILS,
    KEY_BYTES,
    SEALED_FIELD,
    Sealer,
    SealError,
    open_fields,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from storage.conversation_keys import ConversationKeys

KIND_INCIDENT = "incident"
KIND_CONVERSATION = "conversation"  # storage/conversation_keys.py
# routing.lifecycle.CLOSED (storage sits below routing): a test keeps the two equal.
CLOSED_STATUSES = ("resolved", "referred", "unfounded", "duplicate")
ERASED = "[erased]"
ERASED_FLAG = "erased"  # the key of `Incident.details` that says the personal part is gone
_CACHE = 4096

VAULT_TABLE_SQLITE = (
    "CREATE TABLE IF NOT EXISTS vault.data_keys (record TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "subject TEXT, wrapped BLOB, made_at REAL NOT NULL, shredded_at REAL)")
VAULT_INDEX_SQLITE = ("CREATE INDEX IF NOT EXISTS vault.data_keys_subject "
                      "ON data_keys (subject)")


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """What the vault holds for a record: whether its key still exists, and which service
    key wraps it (for a breach of that service key)."""

    record: str
    kind: str
    subject: str | None
    live: bool
    wrapped_by: str | None  # hex id of the wrapping service key


class Keyring:
    """The open data keys of one adapter: a sealer per record, cached for writes only.

    Reads always take the wrapped key from the same query as the row, so a key destroyed by
    any process is gone for every reader at once; a cached key can at worst seal a write
    with a key that no longer exists, which is what erasure asks anyway.
    """

    def __init__(self, sealer: Sealer):
        self.sealer = sealer
        self._cache: OrderedDict[str, Sealer] = OrderedDict()

    def create(self, record: str) -> tuple[Sealer, bytes]:
        key = new_data_key()
        own = self.sealer.with_data_key(key)
        self._remember(record, own)
        return own, self.sealer.seal(key)

    def opened(self, record: str | None, held: bool, wrapped: bytes | None) -> Sealer | None:
        """The sealer for a row read with its vault entry; None when its key is destroyed.

        `held`: the vault has an entry (the row is from after per-record keys); without one
        the row is sealed with the service keys."""
        if record is None or not held:
            return self.sealer
        if wrapped is None:
            self.forget(record)
            return None
        try:
            own = self.sealer.with_data_key(self.sealer.open(wrapped))
        except SealError:
            return None  # wrapped by a service key that was removed: nobody can open it
        self._remember(record, own)
        return own

    def cached(self, record: str) -> Sealer | None:
        return self._cache.get(record)

    def for_write(self, record: str | None, held: bool, wrapped: bytes | None) -> Sealer:
        """A sealer to write with; a destroyed key gets a throwaway one (unreadable)."""
        return self.opened(record, held, wrapped) or self.sealer.with_data_key(new_data_key())

    def forget(self, record: str) -> None:
        self._cache.pop(record, None)

    def _remember(self, record: str, own: Sealer) -> None:
        self._cache[record] = own
        self._cache.move_to_end(record)
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)


def open_text_or_erased(sealer: Sealer | None, value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value  # from before the column was sealed
    if sealer is None:
        return None
    try:
        return sealer.open(value).decode()
    except SealError:
        return None


def erased_location(source: str) -> Location:
    del source  # the exact source says nothing once the place is gone
    return Location(None, None, LocationSource.TEXT, text=ERASED)


def open_location(sealer: Sealer | None, blob: bytes, source: str) -> Location | None:
    if sealer is None:
        return None
    try:
        return Location.from_dict(sealer.open_json(blob))
    except SealError:
        return None


def open_details(sealer: Sealer | None, text: str,
                 clear: frozenset[str] = CLEAR_DETAILS) -> dict[str, Any]:
    """Details or timeline data; when the key is gone, the clear part and `erased: true`."""
    if sealer is not None:
        try:
            return open_fields(sealer, text)
        except SealError:
            pass
    return open_fields(sealer or _NOTHING, _clear_only(text)) | {ERASED_FLAG: True}


def _clear_only(text: str) -> str:
    import json

    data = json.loads(text)
    data.pop(SEALED_FIELD, None)
    return json.dumps(data)


_NOTHING = Sealer([b"\0" * KEY_BYTES])


def incident_from(row: dict[str, Any], own: Sealer | None) -> Incident:
    """An Incident from a row's columns, its personal fields marked erased when its key is
    destroyed (see `ERASED`): the clear columns (type, status, areas, times) stay."""
    reporter = open_text_or_erased(own, row["reporter"])
    location = open_location(own, row["location"], row["location_source"])
    gone = reporter is None or location is None
    return Incident(
        id=row["id"], reference=row["reference"], source_event=row["source_event"],
        type=row["type"], status=row["status"], channel=row["channel"],
        reporter=reporter if reporter is not None else f"erased:{row['id']}",
        lang=row["lang"], silent=bool(row["silent"]), do_not_call=bool(row["do_not_call"]),
        drill=bool(row["drill"]),
        phone=None if gone else open_text_or_erased(own, row["phone"]),
        location=location if location is not None else erased_location(row["location_source"]),
        area_codes=row["area_codes"],
        details=open_details(None if gone else own, row["details"]),
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
        synthetic=bool(row.get("synthetic", False)))


def is_erased(incident: Incident) -> bool:
    return bool(incident.details.get(ERASED_FLAG))


def utc(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def phone_key(sealer: Sealer, incident: Incident) -> str | None:
    """The keyed digest that finds a subject's incidents by the phone number they gave."""
    return sealer.digest(f"phone:{incident.phone}") if incident.phone else None


def kept_details(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if k != ERASED_FLAG}


def opened_notifications(keys: Keyring, rows: list[Any], held: Any, make: Any,
                         key_column: int) -> tuple[list[Any], list[str]]:
    """Claimed outbox rows opened with their record's key: (notifications, ids of rows
    whose key is destroyed, which can never be delivered and are buried)."""
    out, erased = [], []
    for r in rows:
        own = keys.opened(r[1], held(r), r[key_column])
        try:
            if own is None:
                raise SealError("erased")
            recipient = open_text_or_erased(own, r[2])
            payload = own.open_json(r[4])
        except SealError:
            erased.append(r[0])
            continue
        out.append(make([r[0], r[1], recipient, r[3], payload, *r[5:]]))
    return out, erased


async def attach_vault(conn: Any, path: Any) -> None:
    """Attach the SQLite key vault (`<name>-keys.db` next to the database, 0600)."""
    from storage.sqlite import private_database

    vault = path.with_name(f"{path.stem}-keys.db")
    private_database(vault)
    await conn.execute("ATTACH DATABASE ? AS vault", (str(vault),))
    # A destroyed key is overwritten on disk, not only unlinked from the b-tree.
    await conn.execute("PRAGMA vault.secure_delete = ON")
    await conn.execute("PRAGMA vault.journal_mode = WAL")
    await conn.execute(VAULT_TABLE_SQLITE)
    await conn.execute(VAULT_INDEX_SQLITE)


def _status(sealer: Sealer, r: Any) -> KeyStatus:
    wrapped = r[3]
    return KeyStatus(r[0], r[1], r[2], wrapped is not None,
                     bytes(wrapped[1:9]).hex() if wrapped else None)


class SQLiteVault:
    """The key vault of the SQLite store (see the module docstring)."""

    def __init__(self, db: Any, sealer: Sealer, keyring: Keyring):
        self._db = db
        self._sealer = sealer
        self._keys = keyring
        self.conversations: ConversationKeys | None = None  # their cache forgets a shred

    async def conversation_keys(self, records: Sequence[str]) -> dict[str, bytes | None]:
        rows = await self._db.all(
            "SELECT record, wrapped FROM vault.data_keys WHERE record IN "
            f"({', '.join('?' * len(records))})", list(records))
        return {r[0]: r[1] for r in rows}

    async def obtain_conversation_keys(self, rows: Sequence[tuple[str, bytes]],
                                       now: datetime) -> dict[str, bytes | None]:
        # The subject is the same digest: an incident's subject is the digest of its
        # reporter, the conversation. A shredded key is replaced: after an erase the next
        # write of the conversation starts afresh.
        async with self._db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO vault.data_keys VALUES (?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (record) DO UPDATE SET wrapped = excluded.wrapped, "
                "made_at = excluded.made_at, shredded_at = NULL WHERE wrapped IS NULL",
                [(r, KIND_CONVERSATION, r, w, now.timestamp()) for r, w in rows])
            found = await conn.execute_fetchall(
                "SELECT record, wrapped FROM vault.data_keys WHERE record IN "
                f"({', '.join('?' * len(rows))})", [r for r, _ in rows])
        return {r[0]: r[1] for r in found}

    async def shred(self, records: list[str], now: datetime) -> int:
        """Destroy the data keys of `records`; how many were still there."""
        if not records:
            return 0
        marks = ", ".join("?" * len(records))
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE vault.data_keys SET wrapped = NULL, shredded_at = ? "
                f"WHERE wrapped IS NOT NULL AND record IN ({marks})",
                [now.timestamp(), *records])
            count = int(cur.rowcount)
        # The old pages leave the write-ahead log as well.
        await self._db.execute("PRAGMA vault.wal_checkpoint(TRUNCATE)")
        for record in records:
            self._keys.forget(record)
        if self.conversations is not None:
            self.conversations.forget(records)
        return count

    async def status(self, records: list[str]) -> list[KeyStatus]:
        if not records:
            return []
        rows = await self._db.all(
            "SELECT record, kind, subject, wrapped FROM vault.data_keys WHERE record IN "
            f"({', '.join('?' * len(records))})", records)
        return [_status(self._sealer, r) for r in rows]

    async def wrapped_by(self, key_ids: list[str]) -> list[KeyStatus]:
        """The live data keys wrapped by any of these service keys (hex ids): a breach."""
        rows = await self._db.all("SELECT record, kind, subject, wrapped FROM vault.data_keys "
                                  "WHERE wrapped IS NOT NULL")
        found = [_status(self._sealer, r) for r in rows]
        return [k for k in found if k.wrapped_by in key_ids]

    async def rewrap(self) -> int:
        """Re-wrap every live data key with the newest service key; the data is untouched."""
        rows = await self._db.all(
            "SELECT record, wrapped FROM vault.data_keys WHERE wrapped IS NOT NULL")
        changed = [(self._sealer.seal(self._sealer.open(w)), r) for r, w in rows
                   if not self._sealer.is_current(w)]
        async with self._db.transaction() as conn:
            await conn.executemany("UPDATE vault.data_keys SET wrapped = ? WHERE record = ? "
                                   "AND wrapped IS NOT NULL", changed)
        return len(changed)


class PgVault:
    """The key vault of the PostgreSQL store: schema `vault`."""

    def __init__(self, pool: Any, sealer: Sealer, keyring: Keyring):
        self._pool = pool
        self._sealer = sealer
        self._keys = keyring
        self.conversations: ConversationKeys | None = None  # their cache forgets a shred

    async def conversation_keys(self, records: Sequence[str]) -> dict[str, bytes | None]:
        rows = await self._pool.fetch(
            "SELECT record, wrapped FROM vault.data_keys WHERE record = ANY($1::text[])",
            list(records))
        return {r[0]: r[1] for r in rows}

    async def obtain_conversation_keys(self, rows: Sequence[tuple[str, bytes]],
                                       now: datetime) -> dict[str, bytes | None]:
        # One round trip: the new keys where there were none (or shredded ones), and the
        # live keys of the others as the statement's snapshot has them (a key another
        # process commits meanwhile is missing from the answer: the caller reads it).
        records = [r for r, _ in rows]
        found = await self._pool.fetch(
            "WITH ins AS (INSERT INTO vault.data_keys AS d (record, kind, subject, wrapped, "
            "made_at) SELECT r, $3, r, w, $4 FROM unnest($1::text[], $2::bytea[]) AS v(r, w) "
            "ON CONFLICT (record) DO UPDATE SET wrapped = excluded.wrapped, "
            "made_at = excluded.made_at, shredded_at = NULL WHERE d.wrapped IS NULL "
            "RETURNING d.record, d.wrapped) "
            "SELECT record, wrapped FROM ins UNION ALL SELECT k.record, k.wrapped "
            "FROM vault.data_keys k WHERE k.record = ANY($1::text[]) "
            "AND k.wrapped IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ins "
            "WHERE ins.record = k.record)",
            records, [w for _, w in rows], KIND_CONVERSATION, now)
        return {r[0]: r[1] for r in found}

    async def shred(self, records: list[str], now: datetime) -> int:
        status = await self._pool.execute(
            "UPDATE vault.data_keys SET wrapped = NULL, shredded_at = $1 "
            "WHERE wrapped IS NOT NULL AND record = ANY($2::text[])", now, list(records))
        for record in records:
            self._keys.forget(record)
        if self.conversations is not None:
            self.conversations.forget(records)
        return int(status.rsplit(" ", 1)[-1])

    async def status(self, records: list[str]) -> list[KeyStatus]:
        rows = await self._pool.fetch(
            "SELECT record, kind, subject, wrapped FROM vault.data_keys "
            "WHERE record = ANY($1::text[])", list(records))
        return [_status(self._sealer, r) for r in rows]

    async def wrapped_by(self, key_ids: list[str]) -> list[KeyStatus]:
        rows = await self._pool.fetch("SELECT record, kind, subject, wrapped "
                                      "FROM vault.data_keys WHERE wrapped IS NOT NULL")
        found = [_status(self._sealer, r) for r in rows]
        return [k for k in found if k.wrapped_by in key_ids]

    async def rewrap(self) -> int:
        rows = await self._pool.fetch(
            "SELECT record, wrapped FROM vault.data_keys WHERE wrapped IS NOT NULL")
        changed = [(r, self._sealer.seal(self._sealer.open(w))) for r, w in rows
                   if not self._sealer.is_current(w)]
        if changed:
            await self._pool.execute(
                "UPDATE vault.data_keys d SET wrapped = v.w FROM unnest($1::text[], "
                "$2::bytea[]) AS v(r, w) WHERE d.record = v.r AND d.wrapped IS NOT NULL",
                [c[0] for c in changed], [c[1] for c in changed])
        return len(changed)
