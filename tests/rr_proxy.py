"""A plain round-robin TCP proxy for the multi-process tests: no sticky sessions.

Each new client connection goes to the next backend in turn, and its bytes are copied both
ways untouched (HTTP, websocket upgrades, anything). `choices` records which backend each
connection went to, so a test can show that a reconnect landed on the other process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class RoundRobinProxy:
    def __init__(self, backends: list[int], host: str = "127.0.0.1"):
        self._backends = backends
        self._host = host
        self._next = itertools.cycle(range(len(backends)))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.choices: list[int] = []
        self.port = 0

    async def start(self) -> RoundRobinProxy:
        self._server = await asyncio.start_server(self._serve, self._host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = next(self._next)
        self.choices.append(index)
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host,
                                                                 self._backends[index])
        except OSError:
            writer.close()  # the backend is down: the client sees a closed connection
            return
        pipes = [asyncio.create_task(self._pipe(reader, up_writer)),
                 asyncio.create_task(self._pipe(up_reader, writer))]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
