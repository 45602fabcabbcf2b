"""The channel-neutral seam between the dispatcher and the channels.

The dispatcher calls `Sender.send(notification)` and gets one of three answers: delivered,
retry after N seconds, or a permanent failure. A channel adapter maps a Notification to its
own call in one place (`ChannelSender`, over `notification_reply`); the console sender backs
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
from bot.render import render_text
from bot.types import Reply, Text
from routing.messages import notification_reply


@dataclass(frozen=True, slots=True)
class Delivered:
    """The channel accepted the message."""


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """A transient failure (timeout, 5xx, 429): try again, not before `seconds`."""

    seconds: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """The message can never be delivered as it is (unknown address, blocked, 4xx)."""

    reason: str


SendResult = Delivered | RetryAfter | PermanentFailure


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
            return PermanentFailure(f"no channel for {scheme(notification.recipient)}:")
        return await sender.send(notification)


# What a channel registry offers: send(address, reply, key=idempotency key, silent=...).
ChannelCall = Callable[..., Awaitable[SendResult]]


class ChannelSender:
    """The adapter seam: a Notification becomes one channel call with a neutral Reply.

    `call(address, reply, key=..., silent=...)` is the channel registry's send; it maps its
    own errors to RetryAfter / PermanentFailure. The idempotency key is the outbox row's,
    the same on every retry (LINE X-Line-Retry-Key).
    """

    def __init__(self, call: ChannelCall):
        self.call = call

    async def send(self, notification: Notification) -> SendResult:
        reply = notification_reply(notification)
        return await self.call(notification.recipient, reply, key=notification.key,
                               silent=reply.silent)


# Message parameters that carry what a reporter typed or where they are.
PERSONAL_PARAMS = frozenset({"text", "phone", "url", "address"})
HIDDEN = "•••"


def hide_personal(text: Text) -> Text:
    """`text` with every personal parameter (at any depth) replaced by a marker."""
    return Text(text.key, {k: HIDDEN if k in PERSONAL_PARAMS else
                           hide_personal(v) if isinstance(v, Text) else v
                           for k, v in text.params.items()})


class ConsoleSender:
    """Prints messages for `console:` addresses, so `ess serve` shows dispatch with nothing
    configured. The stream is a server's stdout, which often ends up in a journal: phone
    numbers and coordinates are masked unless `reveal` is set (a terminal demo)."""

    def __init__(self, catalogs: Catalogs, stream: TextIO | None = None, reveal: bool = False):
        self.catalogs = catalogs
        self.stream = stream
        self.reveal = reveal

    async def send(self, notification: Notification) -> SendResult:
        reply = notification_reply(notification)
        if not self.reveal:
            # What a person typed (an address, a relayed message) has no shape to mask:
            # it is left out; numbers and coordinates anywhere else are masked.
            reply = replace(reply, text=hide_personal(reply.text))
        text = render_text(reply, self.catalogs)
        if not self.reveal:
            text = _mask(text)
        stream = self.stream or sys.stdout
        print(f"── to {notification.recipient} ──\n{text}\n", file=stream, flush=True)
        return Delivered()


@dataclass
class Sent:
    address: str
    key: str
    kind: str
    reply: Reply
    notification: Notification


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
                              notification_reply(notification), notification))
        return Delivered()

    def to(self, address: str) -> list[Sent]:
        return [s for s in self.sent if s.address == address]

