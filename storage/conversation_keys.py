"""A data key per conversation: sessions, web chat transcripts and journal entries sealed
with it, so erasing the subject makes every copy of them unreadable (crypto-shredding).

The key lives in the vault (storage/vault.py) as a record of kind `conversation`
(`KIND_CONVERSATION`): record id and subject id are both the keyed digest of the conversation
key (the digest the session, transcript and journal rows are already keyed by; an incident's
subject is the same digest of its reporter). It is made on the first write of a
conversation and cached in the process, so a message costs no vault round trip once its
conversation is known here:

- a read opens a blob with the cached key when the blob names it (a sealed blob carries the
  id of its key), with the service keys when the blob is from before conversation keys (the
  upgrade fallback), and asks the vault only otherwise (a key another process made);
- a write seals with the cached key; the journal, whose entries were promised to the
  channel, writes only where the vault still holds that key (one statement) and re-keys the
  conversation when it does not (erased in another process meanwhile), so an arrival after an
  erase is never sealed with a destroyed key.

After an erase the next write of the conversation makes a new key: what the person says
after being erased is theirs again, readable; what they said before stays unreadable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.session import Session
from storage.crypto import Sealer, SealError
from storage.ports import Entry, StorageError
from storage.vault import new_data_key

_CACHE = 8192
DEFAULT_LANG = "th"  # of a session nothing of which can be opened any more


class ConversationKeyRows(Protocol):
    """The vault's rows of conversation keys (SQLiteVault, PgVault)."""

    async def conversation_keys(self, records: Sequence[str]) -> dict[str, bytes | None]:
        """The wrapped key of each record the vault has (None: shredded)."""

    async def obtain_conversation_keys(self, rows: Sequence[tuple[str, bytes]],
                                       now: datetime) -> dict[str, bytes | None]:
        """Store the offered wrapped keys for records that have none or a shredded one (a
        record with a live key keeps it: another process made it first), and return the
        live wrapped keys of the records."""

    async def shred(self, records: list[str], now: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class OpenKey:
    """A conversation's data key, open: the sealer that uses it, and its wrapped form as the
    vault holds it (a journal write checks the vault still holds exactly this)."""

    sealer: Sealer
    wrapped: bytes | None  # None: no vault (service keys only)


class ConversationKeys:
    """The conversation keys of one process (see the module docstring)."""

    def __init__(self, sealer: Sealer, rows: ConversationKeyRows | None):
        self.sealer = sealer
        self._rows = rows
        self._cache: OrderedDict[str, OpenKey] = OrderedDict()

    @classmethod
    def service_only(cls, sealer: Sealer) -> ConversationKeys:
        """No vault (a Redis state on its own, in tests): everything sealed with the service
        keys, as before conversation keys."""
        return cls(sealer, None)

    def record(self, conversation: str) -> str:
        return self.sealer.digest(conversation)

    async def for_write(self, records: Sequence[str]) -> dict[str, OpenKey]:
        """The key to seal each record's writes with, made on the first write."""
        if self._rows is None:
            return dict.fromkeys(records, OpenKey(self.sealer, None))
        wanted = list(dict.fromkeys(records))
        missing = [r for r in wanted if r not in self._cache]
        if missing:
            await self._fetch(missing, create=True)
        for record in wanted:
            self._cache.move_to_end(record)
        return {r: self._cache[r] for r in wanted}

    async def renew(self, records: Sequence[str]) -> dict[str, OpenKey]:
        """Forget the cached keys of `records` and take them from the vault again (making
        new ones where they were shredded): after a write found its key gone."""
        self.forget(records)
        return await self.for_write(records)

    async def for_read(self, record: str, blob: bytes) -> Sealer:
        """A sealer that opens `blob` if anything still can (else opening raises SealError):
        the cached key, the service keys for a blob from before conversation keys, or the
        key the vault holds now."""
        cached = self._cache.get(record)
        if cached is not None and cached.sealer.names_key_of(blob):
            return cached.sealer
        if self._rows is None or self.sealer.names_key_of(blob):
            return self.sealer
        await self._fetch([record], create=False)
        found = self._cache.get(record)
        return found.sealer if found is not None else self.sealer

    async def open(self, record: str, blob: bytes) -> bytes | None:
        """`blob` opened, or None when its key is destroyed (the conversation was erased)."""
        try:
            return (await self.for_read(record, blob)).open(blob)
        except SealError:
            return None

    async def seal(self, record: str, data: bytes) -> bytes:
        return (await self.for_write([record]))[record].sealer.seal(data)

    def _remember(self, record: str, wrapped: bytes) -> bool:
        try:
            own = self.sealer.with_data_key(self.sealer.open(wrapped))
        except SealError:
            return False
        self._cache[record] = OpenKey(own, wrapped)
        return True

    def forget(self, records: Sequence[str]) -> None:
        for record in records:
            self._cache.pop(record, None)

    async def _fetch(self, records: list[str], create: bool) -> None:
        assert self._rows is not None
        if create:
            # One trip for a new conversation and for one this process has not seen yet.
            found = await self._rows.obtain_conversation_keys(
                [(r, self.sealer.seal(new_data_key())) for r in records], datetime.now(UTC))
            absent = [r for r in records if found.get(r) is None]
            if absent:  # made by another process while we made ours
                found |= await self._rows.conversation_keys(absent)
        else:
            found = await self._rows.conversation_keys(records)
        lost = [r for r, wrapped in found.items() if wrapped is not None
                and not self._remember(r, wrapped)]
        if lost and create:
            # Wrapped by a service key that was removed before `ess keys rewrap`: nobody can
            # open it, so it is as good as destroyed; the conversation gets a new one.
            await self._rows.shred(lost, datetime.now(UTC))
            renewed = await self._rows.obtain_conversation_keys(
                [(r, self.sealer.seal(new_data_key())) for r in lost], datetime.now(UTC))
            for record, wrapped in renewed.items():
                if wrapped is not None:
                    self._remember(record, wrapped)
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        if create and any(r not in self._cache for r in records):
            raise StorageError("a conversation key could not be made")


async def opened_entries(keys: ConversationKeys, record: str,
                         rows: Sequence[Sequence[Any]]) -> list[Entry]:
    """Transcript rows (seq, sealed body) opened; those whose key is destroyed left out."""
    entries = []
    for seq, blob in rows:
        body = await keys.open(record, bytes(blob))
        if body is not None:
            entries.append(Entry(int(seq), body))
    return entries


def session_from(keys: Sealer, conversation: str, blob: bytes, version: int,
                 updated_at: datetime, expires_at: datetime | None) -> Session:
    """A stored session opened; one whose key is destroyed (written by a process that still
    held the key of an erased conversation) reads as a new one that keeps the version, so
    the next save replaces it."""
    try:
        data = keys.open_json(blob)
    except SealError:
        return Session(conversation, lang=DEFAULT_LANG, version=version, updated_at=updated_at)
    return Session.from_dict(conversation, data, version, updated_at, expires_at)
