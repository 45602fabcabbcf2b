"""A board viewer's live events written straight to its socket by the feed's fan-out.

aiohttp's `StreamResponse.write` is a coroutine per write (and so a task per viewer to await
it); the feed instead hands every viewer of an audience the same bytes in one loop. The
response is prepared (and its first bytes written) by aiohttp as usual; from then on each
batch is one HTTP/1.1 chunk written to the transport, framed exactly as aiohttp frames its
own chunks, so aiohttp's pings and its closing chunk interleave correctly. Back-pressure is
the socket's own buffer: past `LIMIT` bytes not yet taken by the client the viewer is cut
off (the connection aborted, its memory freed) and its browser resumes with Last-Event-ID.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from channels.board.live import Batch

LIMIT = 256 * 1024  # bytes waiting on one viewer's socket: minutes of events for a browser


class Wire:
    """The live sink of one SSE response (`channels.board.live.Sink`)."""

    __slots__ = ("chunked", "ended", "gone", "limit", "slow", "transport")

    def __init__(self, response: web.StreamResponse, transport: asyncio.Transport,
                 limit: int | None = None):
        self.chunked = response.chunked
        self.transport = transport
        self.limit = LIMIT if limit is None else limit
        self.ended = asyncio.Event()
        self.slow = False
        self.gone = False  # the client closed the connection (not slow: just left)

    def deliver(self, batch: Batch) -> bool:
        transport = self.transport
        if transport.is_closing():
            self.gone = True
            return False
        if transport.get_write_buffer_size() > self.limit:
            return False
        transport.write(batch.chunk() if self.chunked else batch.sse)
        return True

    def end(self, slow: bool) -> None:
        if slow and not self.gone:
            self.slow = True
            self.transport.abort()  # not close(): that would keep the backlog until sent
        self.ended.set()
