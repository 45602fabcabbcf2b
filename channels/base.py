"""The channel plugin contract: what every channel (built-in or third-party) provides.

A channel is a class registered under the entry-point group `ess.channels`:

    [project.entry-points."ess.channels"]
    line = "channels.line:LineChannel"

The registry (`channels.registry`) calls, in this order:

1. `Channel.from_settings(settings)` at application build time. Raise `ChannelOff("reason")`
   when the channel's settings are missing: it stays off with one log line. Raise
   `config.settings.SettingsError` for a setting that is present but wrong: start-up stops.
2. `channel.routes(router)` once, before the application starts (aiohttp forbids adding
   routes later). Handlers are bound methods; they reach the services through `self.ctx`.
3. `await channel.start(ctx)` when the services are open; `await channel.stop()` at shutdown,
   before the services close (after the registry drained the background tasks).
4. `await channel.send(address, message, key=..., silent=...) -> SendResult` whenever the
   dispatcher (or the channel itself) must deliver something outside a request.

Inside, a channel does four things: verify what arrives (signature before parsing, bounded
sizes, a clear 4xx for bad input), parse it into `bot.types.Inbound` (a group chat says so in
`chat`), keep it with `await ctx.services.inbox.accept([Arrival(inbound, ...)])` before it
answers (a 5xx when that raises `InboxUnavailable`), and, in `arrived` (called by the inbox's
drainer, on whichever process is alive), hand it over with one call, `await
ctx.services.inbound.handle(inbound)`, and render the `Reply` list it gets back in its own
idiom. A channel whose own protocol already makes the client resend until acknowledged (the
web chat) may call `inbound.handle` directly. The core decides whether that was a reporter,
a responder or an admin command (`bot.inbound`). `send` gets a `Reply` or a typed
`bot.outbound.ResponderCard` and answers with the one `SendResult`.

A channel may add `ess` subcommands: override `add_commands(subparsers)` (see `Command`).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from aiohttp import web

from bot.outbound import Outbound, SendResult
from bot.render import Abilities
from bot.waits import cancel_and_wait
from config.settings import Settings, SettingsError

if TYPE_CHECKING:
    import argparse

    from bot.inbox import Arrival
    from bot.services import Services
    from channels.registry import ChannelRegistry

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "ess.channels"


class ChannelOff(Exception):
    """The channel is not configured; the message says which setting is missing."""


class CommandError(Exception):
    """A channel command's user-facing failure: `ess` prints it on one line, exit status 2."""


@dataclass(frozen=True)
class CommandContext:
    """What a channel's `ess` subcommand gets: the settings, and the assembled service on
    demand (the composition root builds it; a channel never names the wiring)."""

    settings: Settings
    open_services: Callable[[], Awaitable[Services]]


# A channel subcommand: set as `run` on its parser (`parser.set_defaults(run=...)`).
Command = Callable[[Any, CommandContext], Awaitable[int]]


class Background:
    """Tasks that outlive the request that started them, drained at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(coro, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("channel.task_failed", task=name, error=type(exc).__name__, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until no task is running (tests, and callers that must see the effects)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, seconds: float) -> int:
        """Wait for running tasks up to `seconds`, then cancel the rest; return how many."""
        if not self._tasks:
            return 0
        pending = set(self._tasks)
        _, late = await asyncio.wait(pending, timeout=seconds)
        await cancel_and_wait(*late)
        if late:
            log.error("channel.tasks_cancelled", count=len(late))
        return len(pending)


@dataclass
class ChannelContext:
    """What a started channel may use."""

    services: Services
    registry: ChannelRegistry
    tasks: Background = field(default_factory=Background)


class Channel(abc.ABC):
    """One channel. Subclasses set `name` and implement `routes` and `send`."""

    name: ClassVar[str]
    # Address schemes this channel delivers to ("line" for "line:U…"); defaults to `name`.
    schemes: ClassVar[tuple[str, ...]] = ()
    abilities: ClassVar[Abilities] = Abilities()

    _ctx: ChannelContext | None = None

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Channel:
        """Build from settings; ChannelOff when unconfigured, SettingsError when wrong."""

    @abc.abstractmethod
    def routes(self, router: web.UrlDispatcher) -> None:
        """Add this channel's HTTP routes (called once, before the application starts)."""

    @abc.abstractmethod
    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        """Deliver one message to `address` ("<scheme>:<id>").

        `key` is the idempotency key (the outbox row's): a retry with the same key must not
        deliver twice where the transport allows it. `silent` asks for no sound, vibration or
        indicator. Never raises for transport problems: they are a RETRY or FAILED result.
        """

    async def arrived(self, arrival: Arrival) -> None:
        """Handle one event this channel gave `ctx.services.inbox.accept` (bot.inbox), now
        out of the journal: what the webhook's background task used to do. May run in
        another process than the one that accepted it, or after a restart."""
        raise NotImplementedError(f"channel {self.name} accepts nothing into the journal")

    async def start(self, ctx: ChannelContext) -> None:
        """Open clients; the default keeps the context."""
        self._ctx = ctx

    async def stop(self) -> None:  # noqa: B027 - optional hook, most channels hold nothing
        """Close clients (background tasks are already drained)."""

    @property
    def ctx(self) -> ChannelContext:
        if self._ctx is None:
            raise RuntimeError(f"channel {self.name} is not started")
        return self._ctx

    @classmethod  # noqa: B027 - optional hook, most channels add no command
    def add_commands(cls, commands: argparse._SubParsersAction[Any]) -> None:
        """Add this channel's `ess` subcommands (e.g. `ess line richmenu`); each parser
        sets `run`, a `Command`, with `set_defaults(run=...)`."""

    @classmethod
    def address_schemes(cls) -> tuple[str, ...]:
        return cls.schemes or (cls.name,)


def setting(settings: Settings, name: str, *, channel: str) -> str:
    """`ESS_<NAME>` from the environment/file extras, or ChannelOff naming it."""
    value = settings.extra.get(name, "").strip()
    if not value:
        raise ChannelOff(f"{channel}: {name} is not set")
    return value


def optional_setting(settings: Settings, name: str, default: str = "") -> str:
    return settings.extra.get(name, "").strip() or default


def number_setting(settings: Settings, name: str, default: float, *, low: float = 0.0,
                   high: float = float("inf")) -> float:
    """A numeric extra setting, or SettingsError naming it and what it accepts."""
    raw = settings.extra.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} is not valid: expected a number from {low} to "
                            f"{high}")
    return value


def own_address(address: str, scheme: str) -> str | None:
    """The id in `address` when it is a `scheme` address ("line:U123" → "U123"), else None."""
    try:
        found, rest = split_address(address)
    except ValueError:
        return None
    return rest if found == scheme else None


def split_address(address: str) -> tuple[str, str]:
    """"line:U123" → ("line", "U123"); ValueError for an address without a scheme."""
    scheme, sep, rest = address.partition(":")
    if not sep or not scheme or not rest:
        raise ValueError("an address is <scheme>:<id>")
    return scheme, rest

