"""Find channels through the `ess.channels` entry points, mount them, start and stop them.

Nothing here names a channel: the built-in ones are entry points of this distribution like
any third-party plugin. A channel whose settings are missing logs one line and stays off; a
plugin that fails to import logs one error and stays off (one broken plugin must not take the
emergency service down); a setting that is present but wrong stops start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from bot.outbound import Outbound, SendResult
from channels.base import (
    ENTRY_POINT_GROUP,
    Background,
    Channel,
    ChannelContext,
    ChannelOff,
    split_address,
)
from config.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.services import Services

log = structlog.get_logger(__name__)

DRAIN_SECONDS = 10.0


def _installed(wanted: set[str] | None = None) -> Iterator[tuple[str, Any]]:
    """(name, factory) of every `ess.channels` entry point (of those `wanted`) that imports;
    broken ones are logged and skipped, so one bad plugin never stops the others."""
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            yield ep.name, ep.load()
        except Exception as exc:
            log.error("channel.broken", channel=ep.name, error=type(exc).__name__,
                      detail=str(exc)[:200])


def channel_classes() -> list[type[Channel]]:
    """Every installed channel class (for their `ess` subcommands); broken ones are logged."""
    return [factory for _, factory in _installed()
            if isinstance(factory, type) and issubclass(factory, Channel)]


class UnknownAddress(LookupError):
    """No started channel delivers to this address scheme."""


class ChannelRegistry:
    """The channels that are on, by name and by address scheme."""

    def __init__(self, channels: Iterable[Channel] = ()) -> None:
        self.channels: dict[str, Channel] = {}
        self._by_scheme: dict[str, Channel] = {}
        self.tasks = Background()
        self._ctx: ChannelContext | None = None
        for channel in channels:
            self.add(channel)

    @classmethod
    def discover(cls, settings: Settings, only: Iterable[str] | None = None) -> ChannelRegistry:
        """Every entry point of `ess.channels` that is configured (or just those in `only`)."""
        wanted = set(only) if only is not None else None
        registry = cls()
        for name, factory in _installed(wanted):
            try:
                channel = factory.from_settings(settings)
            except ChannelOff as off:
                log.info("channel.off", channel=name, reason=str(off))
                continue
            except SettingsError:
                raise
            except Exception as exc:
                log.error("channel.broken", channel=name, error=type(exc).__name__,
                          detail=str(exc)[:200])
                continue
            registry.add(channel)
        return registry

    def add(self, channel: Channel) -> None:
        if channel.name in self.channels:
            raise ValueError(f"two channels are named {channel.name!r}")
        self.channels[channel.name] = channel
        for scheme in channel.address_schemes():
            self._by_scheme[scheme] = channel

    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def channel_for(self, address: str) -> Channel:
        """The channel that delivers to `address` ("line:C…", "sms:+66…", "web:…")."""
        try:
            scheme, _ = split_address(address)
        except ValueError:
            raise UnknownAddress("an address is <scheme>:<id>") from None
        channel = self._by_scheme.get(scheme)
        if channel is None:
            raise UnknownAddress(f"no channel is on for {scheme!r} addresses")
        return channel

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        """Deliver through the address's channel; an address no channel serves is FAILED."""
        try:
            channel = self.channel_for(address)
        except UnknownAddress as exc:
            return SendResult.failed(str(exc))
        return await channel.send(address, message, key=key, silent=silent)

    # -- lifetime ---------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        for channel in self.channels.values():
            channel.routes(app.router)

    async def start(self, services: Services) -> None:
        self._ctx = ChannelContext(services, self, self.tasks)
        started: list[Channel] = []
        try:
            for channel in self.channels.values():
                await channel.start(self._ctx)
                started.append(channel)
        except BaseException:
            for channel in reversed(started):
                await channel.stop()
            raise
        log.info("channels.started", channels=sorted(self.channels))

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Finish the work accepted so far, then close every channel."""
        await self.tasks.drain(drain_seconds)
        for channel in reversed(list(self.channels.values())):
            try:
                await channel.stop()
            except Exception as exc:
                log.error("channel.stop_failed", channel=channel.name, error=type(exc).__name__)
