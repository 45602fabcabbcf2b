"""The channel-neutral seam between the dispatcher and the channels.

The dispatcher calls `Sender.send(notification)` and gets a `bot.outbound.SendResult`:
delivered, retry after N seconds, or a permanent failure (the one result type every channel
returns too). `ChannelSender` hands a channel the typed message an outbox row carries
(`routing.messages.outbound`: a `ResponderCard` or a `Reply`); the console sender backs
`console:` addresses (the sample directory) and the recording sender is for tests.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TextIO

from bot.i18n import Catalogs
from bot.incident import Notification
from bot.logs import _mask
from bot.outbound import Outbound, ResponderCard, SendResult
from bot.render import render_outbound
from bot.types import Reply, Text
from routing.messages import outbound


class Sender(Protocol):
    async def send(self, notification: Notification) -> SendResult:
        """Hand one message to its channel; never raises for a channel's failure."""


def scheme(address: str) -> str:
    return address.split(":", 1)[0]


class RoutingSender:
    """Picks a sender by the address's scheme (`line:`, `sms:`, `console:`, ...)."""

    def __init__(self, senders: Mapping[str, Sender], default: Sender | None = None):
        self.senders = dict(senders)
        self.default = default

    async def send(self, notification: Notification) -> SendResult:
        sender = self.senders.get(scheme(notification.recipient), self.default)
        if sender is None:
            return SendResult.failed(f"no channel for {scheme(notification.recipient)}:")
        return await sender.send(notification)


# What a channel registry offers: send(address, message, key=idempotency key, silent=...).
ChannelCall = Callable[..., Awaitable[SendResult]]


class ChannelSender:
    """The adapter seam: a Notification becomes one channel call with its typed message.

    `call(address, message, key=..., silent=...)` is the channel registry's send. The
    idempotency key is the outbox row's, the same on every retry (LINE X-Line-Retry-Key).
    Cards for responders always ring, a silent report's most of all (invariant 5 protects
    the reporter's phone, not the responders').
    """

    def __init__(self, call: ChannelCall):
        self.call = call

    async def send(self, notification: Notification) -> SendResult:
        message = outbound(notification)
        silent = not isinstance(message, ResponderCard) and message.silent
        return await self.call(notification.recipient, message, key=notification.key,
                               silent=silent)


# Message parameters that carry what a reporter typed or where they are.
PERSONAL_PARAMS = frozenset({"text", "phone", "url", "address"})
HIDDEN = "•••"


def hide_personal(text: Text) -> Text:
    """`text` with every personal parameter (at any depth) replaced by a marker."""
    return Text(text.key, {k: HIDDEN if k in PERSONAL_PARAMS else
                           hide_personal(v) if isinstance(v, Text) else v
                           for k, v in text.params.items()})


def hide_personal_message(message: Outbound) -> Outbound:
    """A reply without its personal parameters; a card without the typed place, the map
    link and the call-back number."""
    if isinstance(message, ResponderCard):
        return replace(message, place_text=HIDDEN if message.place_text else None,
                       map_url=HIDDEN if message.map_url else None,
                       callback=HIDDEN if message.callback else None)
    return replace(message, text=hide_personal(message.text))


class ConsoleSender:
    """Prints messages for `console:` addresses, so `ess serve` shows dispatch with nothing
    configured. The stream is a server's stdout, which often ends up in a journal: phone
    numbers and coordinates are masked unless `reveal` is set (a terminal demo)."""

    def __init__(self, catalogs: Catalogs, stream: TextIO | None = None, reveal: bool = False):
        self.catalogs = catalogs
        self.stream = stream
        self.reveal = reveal

    async def send(self, notification: Notification) -> SendResult:
        message = outbound(notification)
        if not self.reveal:
            # What a person typed (an address, a relayed message) has no shape to mask:
            # it is left out; numbers and coordinates anywhere else are masked.
            message = hide_personal_message(message)
        text = "\n".join(render_outbound(message, self.catalogs))
        if not self.reveal:
            text = _mask(text)
        stream = self.stream or sys.stdout
        print(f"── to {notification.recipient} ──\n{text}\n", file=stream, flush=True)
        return SendResult.sent()


@dataclass
class Sent:
    address: str
    key: str
    kind: str
    message: Outbound
    notification: Notification

    @property
    def reply(self) -> Reply:
        """The message, when it is one for a person (not a responder card)."""
        if not isinstance(self.message, Reply):
            raise TypeError(f"{self.kind} to {self.address} is a responder card")
        return self.message

    @property
    def card(self) -> ResponderCard:
        if not isinstance(self.message, ResponderCard):
            raise TypeError(f"{self.kind} to {self.address} is not a responder card")
        return self.message


@dataclass
class RecordingSender:
    """For tests: records every delivery; `fail` scripts failures per address.

    `fail[address]` is a list of results returned before deliveries succeed again.
    """

    sent: list[Sent] = field(default_factory=list)
    fail: dict[str, list[SendResult]] = field(default_factory=dict)
    attempts: int = 0

    async def send(self, notification: Notification) -> SendResult:
        self.attempts += 1
        queue = self.fail.get(notification.recipient)
        if queue:
            return queue.pop(0)
        self.sent.append(Sent(notification.recipient, notification.key, notification.kind,
                              outbound(notification), notification))
        return SendResult.sent()

    def to(self, address: str) -> list[Sent]:
        return [s for s in self.sent if s.address == address]

