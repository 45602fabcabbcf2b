"""How the dispatcher's outbox rows reach the channels: the one seam between them.

Routing speaks `Notification -> SendResult(Delivered | RetryAfter | PermanentFailure)`; the
channel registry speaks `send(address, message, key=, silent=) -> channels.base.SendResult`.
A new-incident card goes as the Notification itself, so each channel draws its own card
(a LINE Flex message with action buttons, a compact SMS); everything else goes as the
channel-neutral Reply it carries. `console:` addresses (the sample directory) print.
"""

from __future__ import annotations

from bot.incident import Notification
from channels.base import SendOutcome
from channels.registry import ChannelRegistry
from routing.messages import KIND_NEW, notification_reply
from routing.sender import (
    ConsoleSender,
    Delivered,
    PermanentFailure,
    RetryAfter,
    RoutingSender,
    SendResult,
)

CARD_KINDS = frozenset({KIND_NEW})


class RegistrySender:
    """Delivers notifications through the channel registry's channels."""

    def __init__(self, registry: ChannelRegistry):
        self.registry = registry

    async def send(self, notification: Notification) -> SendResult:
        if notification.kind in CARD_KINDS:
            # Cards for responders always ring, a silent report's most of all (invariant 5
            # protects the reporter's phone, not the responders').
            result = await self.registry.send(notification.recipient, notification,
                                              key=notification.key, silent=False)
        else:
            reply = notification_reply(notification)
            result = await self.registry.send(notification.recipient, reply,
                                              key=notification.key, silent=reply.silent)
        if result.outcome is SendOutcome.SENT:
            return Delivered()
        if result.outcome is SendOutcome.RETRY:
            return RetryAfter(result.retry_after or 0.0, result.error or "")
        return PermanentFailure(result.error or "failed")


def channel_sender(registry: ChannelRegistry, console: ConsoleSender) -> RoutingSender:
    """Console addresses print; every other scheme goes to the channel serving it."""
    return RoutingSender({"console": console}, default=RegistrySender(registry))
