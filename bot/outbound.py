"""What leaves the core for a channel: the typed responder card, and the one send result.

Ground floor: imports nothing of ours but `bot.types`. Routing builds a `ResponderCard` once
(`routing.messages.responder_card`); every channel renders it in its own idiom (a LINE Flex
bubble, an SMS text with a link, console lines, JSON for the web page) and answers every
delivery with a `SendResult`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.types import Reply, Text


class SendOutcome(enum.StrEnum):
    SENT = "sent"  # delivered (or already delivered under the same key)
    RETRY = "retry"  # try again later with the same key, after `retry_after` seconds
    FAILED = "failed"  # will never succeed as it is (bad address, blocked, 4xx): bury it


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a channel's `send` tells the dispatcher. `error` is for logs: never personal data."""

    outcome: SendOutcome
    retry_after: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is SendOutcome.SENT

    @classmethod
    def sent(cls) -> SendResult:
        return cls(SendOutcome.SENT)

    @classmethod
    def retry(cls, after: float, error: str) -> SendResult:
        return cls(SendOutcome.RETRY, max(0.0, after), error)

    @classmethod
    def failed(cls, error: str) -> SendResult:
        return cls(SendOutcome.FAILED, None, error)


class CardKind(enum.StrEnum):
    NEW = "new"  # the first card a responder gets
    ESCALATION = "escalation"  # a card sent because nobody acknowledged in time
    REMINDER = "reminder"  # the same incident again, still not acknowledged


@dataclass(frozen=True, slots=True)
class CardAction:
    """One button: `token` is the `act:` payload that comes back when it is pressed."""

    token: str
    label: Text


@dataclass(frozen=True, slots=True)
class ResponderCard:
    """Everything a responder needs to act on one incident, in their language.

    `callback` is the display phone number, None when the reporter must not be called
    (`do_not_call`, or a silent report): then the card says DO NOT CALL, chat only.
    `actions` are only those the incident's current state allows.
    """

    reference: str
    lang: str
    kind: CardKind
    type: Text  # the incident type, as a catalog reference
    reported_at: str  # local time, "01/12/2026 21:05"
    province: str = ""
    district: str = ""
    station: str = ""
    place_text: str | None = None  # the place as typed, when there is no pin
    map_url: str | None = None
    distance_km: float | None = None
    callback: str | None = None
    do_not_call: bool = False
    silent: bool = False
    drill: bool = False
    flags: tuple[str, ...] = ()  # fallback | outside_coverage | no_location
    level: int = 0
    escalation: Text | None = None  # "escalated: nobody at X acknowledged for 5 min"
    holder: str | None = None
    actions: tuple[CardAction, ...] = ()

    @property
    def escalated(self) -> bool:
        return self.kind is not CardKind.NEW or self.level > 0


# What a channel's `send` accepts: a message for a person, or a responder card.
Outbound = Reply | ResponderCard
