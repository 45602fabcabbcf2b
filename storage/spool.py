"""The local spool: where verified inbound events go when the store cannot take them.

A webhook answered 200 is a promise, so an event the journal cannot keep is written here,
sealed, one line each, and fsync'd before the answer (courier's spool, in spirit). The file
is 0600 in the data folder. Replay moves the file aside atomically (a rename), hands its
entries to the journal (which keeps an event once, so a replay cut short by a crash is
simply done again) and deletes it. A torn last line, from a crash mid-write, is skipped:
that event was never answered 200.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import structlog

from storage.crypto import Sealer, SealError
from storage.ports import JournalEntry

log = structlog.get_logger(__name__)

CURRENT = "inbound-spool.log"
REPLAY_GLOB = "inbound-spool.*.replay"


class Spool:
    """Append-only sealed lines in `folder`; `write` returns only once they are on disk."""

    def __init__(self, folder: Path, sealer: Sealer):
        self.folder = folder
        self._sealer = sealer

    @property
    def path(self) -> Path:
        return self.folder / CURRENT

    def write(self, entries: Sequence[JournalEntry]) -> None:
        """Append and fsync; OSError when the disk will not take them."""
        lines = b"".join(self._line(e) + b"\n" for e in entries)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(lines)
            while view:  # bounded: each write takes at least one byte or raises
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            # The new file's name must survive a power cut too.
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def waiting(self) -> bool:
        return self.path.exists() or any(self.folder.glob(REPLAY_GLOB))

    def take(self) -> list[Path]:
        """Move the current file aside (new writes start a new one); every file to replay,
        oldest first, including those a crashed replay left."""
        if self.path.exists():
            os.replace(self.path, self.folder / f"inbound-spool.{_stamp()}.replay")
        return sorted(self.folder.glob(REPLAY_GLOB))

    def read(self, path: Path) -> list[JournalEntry]:
        entries = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                entries.append(self._entry(line))
            except (ValueError, KeyError, TypeError, SealError, binascii.Error):
                log.error("spool.unreadable_line", file=path.name, line=number)
        return entries

    def _line(self, entry: JournalEntry) -> bytes:
        blob = self._sealer.seal_json({
            "id": entry.id, "channel": entry.channel, "c": entry.conversation,
            "k": entry.event_key, "d": entry.data, "at": entry.received_at.isoformat()})
        return base64.b64encode(blob)

    def _entry(self, line: bytes) -> JournalEntry:
        data = self._sealer.open_json(base64.b64decode(line, validate=True))
        return JournalEntry(str(data["id"]), str(data["channel"]), str(data["c"]),
                            str(data["k"]), dict(data["d"]),
                            datetime.fromisoformat(str(data["at"])))


def _stamp() -> str:
    # Sorts by time, unique across processes sharing the folder.
    return f"{datetime.now().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"
