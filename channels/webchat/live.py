"""The web chat's open sockets on this process, fed from the shared transcript.

Every message for a page is appended to the conversation's transcript in the store first
(storage/ports.py `Transcripts`), then sent from there: a page whose socket lands on another
process, or reconnects after a crash, is replayed what it has not seen, from any process.
Each open socket sends the transcript after the last number it sent, when woken by an append
on this process or every `poll` seconds (an append by another process: the dispatcher of a
status update, say). The only state kept here is the open sockets themselves.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from bot.types import utcnow
from bot.waits import cancelling, woken
from storage.ports import Transcripts

log = structlog.get_logger(__name__)

POLL = 2.0  # seconds between looks for what another process appended


def transcript_key(conversation: str) -> str:
    return f"web:{conversation}"


@dataclass(eq=False)
class Socket:
    """One open page: what it has been sent, and its sender task."""

    ws: web.WebSocketResponse
    conversation: str
    seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Sockets:
    """Open sockets by conversation; `publish` stores a message and wakes its pages."""

    def __init__(self, transcripts: Transcripts, poll: float = POLL):
        self._transcripts = transcripts
        self._poll = poll
        self._open: dict[str, set[Socket]] = {}

    async def publish(self, conversation: str, frame: dict[str, Any],
                      key: str | None = None) -> bool:
        """Append `frame` (without its number) to the transcript; False when `key` was
        published before (a retried send)."""
        body = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()
        seq = await self._transcripts.append(transcript_key(conversation), body, utcnow(), key)
        for socket in self._open.get(conversation, ()):
            socket.wake.set()
        return seq is not None

    async def flush(self, socket: Socket) -> None:
        """Send the socket everything after what it was sent, in order, once."""
        async with socket.lock:
            for entry in await self._transcripts.after(transcript_key(socket.conversation),
                                                       socket.seq):
                frame = json.loads(entry.body)
                frame["seq"] = entry.seq
                await socket.ws.send_json(frame)
                socket.seq = entry.seq

    def attach(self, socket: Socket) -> None:
        """Replay what the page has not seen, at once, then keep it fed until `detach`."""
        self._open.setdefault(socket.conversation, set()).add(socket)
        socket.wake.set()
        socket.task = asyncio.create_task(self._feed(socket), name="webchat-feed")

    def open_for(self, conversation: str) -> list[Socket]:
        """The sockets open on this process for `conversation`."""
        return list(self._open.get(conversation, ()))

    def detach(self, socket: Socket) -> None:
        if socket.task is not None:
            socket.task.cancel()
        sockets = self._open.get(socket.conversation)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._open[socket.conversation]

    async def _feed(self, socket: Socket) -> None:
        while not socket.ws.closed:
            await woken(socket.wake, self._poll)
            socket.wake.clear()
            try:
                await self.flush(socket)
            except (ConnectionError, RuntimeError):
                return  # the socket closed: the page gets the rest on reconnect
            except Exception as exc:  # the store: try again at the next look
                if cancelling():
                    raise asyncio.CancelledError from exc  # see bot/waits.py
                log.warning("webchat.feed_failed", error=type(exc).__name__)

    def __len__(self) -> int:
        return sum(len(s) for s in self._open.values())
