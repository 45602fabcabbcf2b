"""The one inbound router: every `Inbound` from every channel comes here, and goes on to
an admin command, the responder side, or the reporter's conversation (the engine).

Like aiogram's routers, it is an ordered list of (filter, handler) pairs and the first
filter that matches wins:

1. `/register CODE` and `/unregister`, in any chat: bind or unbind the chat's address as a
   responder address for an area and agency (the code comes from `ess responders code`).
2. A group chat the service was added to or removed from: greet it, or drop its bindings.
3. The responder side (`routing.responders`): a group chat (LINE), an `act:` button tapped
   anywhere, or a chat whose address is a registered responder address (an SMS number, a
   web-chat conversation). Group chatter that names no incident is the responders' own and
   is left alone; anything else a responder sends that is not a command gets the list.
4. A registered volunteer's own chat (`ess volunteers code`): the engine, with the
   volunteer's area as a hint, so the chat offers the welfare-case flow beside the report.
5. Everyone else is a reporter: the engine.

Channels call `handle` once per verified, parsed event and render what it returns; a durable
journal can sit in front of this one call.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import structlog

from bot.incident import REFERENCE_PREFIX
from bot.types import ChatKind, Inbound, Kind, Reply, Text, utcnow
from routing.agencies import VOLUNTEER, agency_kind
from routing.messages import TOKEN_PREFIX
from storage.ports import DEDUPE_WINDOW, Binding, Bindings, Dedupe

log = structlog.get_logger(__name__)

REGISTER = "/register"
UNREGISTER = "/unregister"
_NAMES_INCIDENT = re.compile(rf"(?<![A-Za-z0-9]){REFERENCE_PREFIX}[\s\-]*[A-Za-z0-9]{{5}}",
                             re.I)

Handler = Callable[[Inbound], Awaitable[list[Reply]]]
Filter = Callable[[Inbound], Awaitable[bool]]


class ReporterSide(Protocol):
    async def handle(self, inbound: Inbound) -> list[Reply]: ...


class ResponderSide(Protocol):
    async def on_action(self, inbound: Inbound) -> list[Reply]: ...


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    filter: Filter
    handler: Handler


def _command(inbound: Inbound) -> str:
    if inbound.kind is not Kind.TEXT:
        return ""
    words = inbound.text.strip().split()
    return words[0].casefold() if words else ""


ENGINE_DEDUPED = ("reporter", "volunteer")


class InboundRouter:
    """Decides, from the chat kind and the bindings, who an inbound event is for."""

    def __init__(self, engine: ReporterSide, responders: ResponderSide, bindings: Bindings,
                 dedupe: Dedupe, default_lang: str = "th",
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.responders = responders
        self.bindings = bindings
        self.dedupe = dedupe
        self.default_lang = default_lang
        self.clock = clock
        self.routes: list[Route] = []
        self.add("admin", self._is_admin, self._admin)
        self.add("group", self._is_group_event, self._group_event)
        self.add("responder", self._is_responder, self._responder)
        self.add("volunteer", self._is_volunteer, self._volunteer)
        self.add("reporter", self._anyone, self.engine.handle)
        self._looked_up: tuple[str, list[Binding]] = ("", [])

    def add(self, name: str, filter: Filter, handler: Handler, *,
            before: str | None = None) -> None:
        """Add a route (at the end, or before the route named `before`)."""
        route = Route(name, filter, handler)
        at = next((i for i, r in enumerate(self.routes) if r.name == before), len(self.routes))
        self.routes.insert(at, route)

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """The replies for one event, for the chat it came from. Never raises for input."""
        for route in self.routes:
            if await route.filter(inbound):
                # The engine dedupes its own (reporter and volunteer) events in the session
                # save: marking one seen here first would drop its retry after a failure.
                if route.name in ENGINE_DEDUPED:
                    return await route.handler(inbound)
                if await self._already_seen(inbound):
                    return []
                log.debug("inbound.routed", route=route.name, channel=inbound.channel)
                try:
                    return await route.handler(inbound)
                except Exception:
                    # Seen but not handled: the journal hands the event back, and its retry
                    # must not be taken for a duplicate (a responder's "ack" lost silently).
                    with contextlib.suppress(Exception):
                        await self.dedupe.release(self._seen_key(inbound))
                    raise
        return []

    async def _already_seen(self, inbound: Inbound) -> bool:
        # Responder and admin events dedupe in the store, shared by every process (reporter
        # events dedupe in the engine's session save).
        return not await self.dedupe.first(self._seen_key(inbound), DEDUPE_WINDOW,
                                           self.clock())

    @staticmethod
    def _seen_key(inbound: Inbound) -> str:
        return f"{inbound.channel}:{inbound.event_id}"

    # -- filters ----------------------------------------------------------------------------

    @staticmethod
    async def _anyone(inbound: Inbound) -> bool:
        return True

    @staticmethod
    async def _is_admin(inbound: Inbound) -> bool:
        return _command(inbound) in (REGISTER, UNREGISTER)

    @staticmethod
    async def _is_group_event(inbound: Inbound) -> bool:
        return inbound.chat is ChatKind.GROUP and inbound.kind in (Kind.START, Kind.LEAVE)

    async def _is_responder(self, inbound: Inbound) -> bool:
        if inbound.chat in (ChatKind.GROUP, ChatKind.OPERATOR):
            return True
        if inbound.kind is Kind.CHOICE and inbound.text.startswith(TOKEN_PREFIX):
            return True  # a card's button: never a reporter's answer
        # A registered responder writes commands; only typed text needs the lookup, so a
        # reporter's taps, pins and page opens cost no extra read.
        return inbound.kind is Kind.TEXT and any(
            b.agency != VOLUNTEER for b in await self._bindings_of(inbound))

    async def _bindings_of(self, inbound: Inbound) -> list[Binding]:
        """The chat's bindings, read once per event however many filters ask."""
        key = f"{inbound.channel}:{inbound.event_id}"
        if self._looked_up[0] != key:
            self._looked_up = (key, await self.bindings.for_address(inbound.conversation))
        return self._looked_up[1]

    async def _is_volunteer(self, inbound: Inbound) -> bool:
        # A volunteer registers their own 1:1 chat; a group is never one.
        if inbound.chat is ChatKind.GROUP:
            return False
        return any(b.agency == VOLUNTEER for b in await self._bindings_of(inbound))

    # -- handlers ---------------------------------------------------------------------------

    async def _admin(self, inbound: Inbound) -> list[Reply]:
        address, lang = inbound.conversation, self.default_lang
        words = inbound.text.strip().split()
        if words[0].casefold() == UNREGISTER:
            removed = await self.bindings.unbind(address)
            log.info("inbound.unregistered", channel=inbound.channel, removed=removed)
            return [Reply(Text("responder.unregistered" if removed else
                               "responder.not_registered"), lang)]
        code = "".join(words[1:2]).upper()
        binding = await self.bindings.redeem(code, address, utcnow()) if code else None
        if binding is None:
            return [Reply(Text("responder.code_invalid"), lang)]
        log.info("inbound.registered", channel=inbound.channel, area=binding.area,
                 agency=binding.agency)
        if binding.agency == VOLUNTEER:
            return [Reply(Text("volunteer.bound", {"area": binding.area}), lang)]
        return [Reply(Text("responder.bound", {"area": binding.area,
                                               "agency": agency_kind(binding.agency)}), lang)]

    async def _volunteer(self, inbound: Inbound) -> list[Reply]:
        """A volunteer's chat is a reporter's chat that also opens welfare cases: the engine
        offers the case flow and actions read the area from this hint."""
        area = next(b.area for b in await self._bindings_of(inbound) if b.agency == VOLUNTEER)
        return await self.engine.handle(replace(inbound, hints={**inbound.hints,
                                                                "volunteer": area}))

    async def _group_event(self, inbound: Inbound) -> list[Reply]:
        if inbound.kind is Kind.LEAVE:
            removed = await self.bindings.unbind(inbound.conversation)
            log.info("inbound.group_left", channel=inbound.channel, bindings_removed=removed)
            return []
        return [Reply(Text("responder.joined"), self.default_lang)]

    async def _responder(self, inbound: Inbound) -> list[Reply]:
        if inbound.chat is ChatKind.GROUP and not (
                inbound.kind is Kind.CHOICE and inbound.text.startswith(TOKEN_PREFIX)) and not (
                inbound.kind is Kind.TEXT and _NAMES_INCIDENT.search(inbound.text)):
            return []  # the group's own conversation
        return await self.responders.on_action(inbound)
