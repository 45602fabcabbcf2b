"""Channel-neutral types: what channels turn their input into, and what the engine answers.

Nothing here names a channel. A channel maps its own events to `Inbound` and renders `Reply`
in its own idiom (see `bot.render` for the shared text fallback).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bot.text import clean_text


class Kind(enum.StrEnum):
    """What an inbound event carries."""

    TEXT = "text"
    CHOICE = "choice"  # a button / quick reply / postback: payload is the choice value
    LOCATION = "location"  # payload is a Location
    PHONE = "phone"  # a phone number the channel itself vouches for (e.g. an SMS sender)
    START = "start"  # follow, page open, rich-menu entry: payload may name a flow
    MEDIA = "media"  # sticker, image, audio, video, file: payload a Media when the channel
    # can name it; only a step that keeps photos (`photos:` in a flow) takes one
    LEAVE = "leave"  # the service was removed from a group chat
    OTHER = "other"


class ChatKind(enum.StrEnum):
    """One person writing to the service, a group of responders it was added to, or an
    operator at the console."""

    PRIVATE = "private"
    GROUP = "group"
    OPERATOR = "operator"  # `ess respond`: an operator acting for a notified address


class LocationSource(enum.StrEnum):
    """Where a location came from; responders weigh a pin differently from typed text."""

    DEVICE = "device"  # measured by the device (browser geolocation), accuracy known
    REPORTER_PIN = "reporter_pin"  # a point chosen by the reporter on a map (LINE pin)
    GAZETTEER = "gazetteer"  # typed text resolved to a known place
    TEXT = "text"  # typed text we could not resolve; kept as the reporter wrote it


@dataclass(frozen=True, slots=True)
class Location:
    """A place. `lat`/`lon` are None only for unresolved text."""

    lat: float | None
    lon: float | None
    source: LocationSource
    accuracy_m: float | None = None
    text: str | None = None
    place_id: str | None = None  # gazetteer id when resolved from text

    def to_dict(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "source": self.source.value,
            "accuracy_m": self.accuracy_m,
            "text": self.text,
            "place_id": self.place_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(
            lat=data.get("lat"),
            lon=data.get("lon"),
            source=LocationSource(data["source"]),
            accuracy_m=data.get("accuracy_m"),
            text=data.get("text"),
            place_id=data.get("place_id"),
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


class MediaGone(Exception):
    """The content of a media message cannot be had, now or later (gone from the platform,
    refused): the person is told; trying again would not help."""


@dataclass(frozen=True, slots=True)
class MediaContent:
    """The bytes of a media message and the type its channel gave (not trusted)."""

    data: bytes
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Media:
    """A photo, sticker or file someone sent. `fetch` (set by a channel that can get the
    content, in the journaled handling path) returns it, raises MediaGone for good, or any
    other exception for a blip the journal tries again; it is never stored."""

    kind: str  # image | sticker | video | audio | file | other
    ref: str = ""  # the channel's id of the message (LINE message id)
    fetch: Callable[[], Awaitable[MediaContent]] | None = field(
        default=None, compare=False, repr=False)


# A channel whose replies are stored once per key (the web chat's transcript) sets this hint:
# a duplicate event is then answered with the conversation's current prompt instead of
# nothing, the channel storing it under the key of the first handling's last reply. If that
# handling's replies were lost, all or the last of them (a crash after the session was saved,
# before they were stored), the page is asked again; if they were stored, the key is taken
# and nothing is shown twice.
RESUME_ON_DUPLICATE = "resume_on_duplicate"

# True while the inbox (bot/inbox.py) handles a journal entry it will try again if handling
# raises. The engine then lets a failure it would answer with "unavailable" (a store or a lock
# that cannot be had) raise instead: the event answered 200 stays in the journal, and only
# the last attempt tells the person to try again. A context variable, not a hint, because the
# channels rebuild their events from the stored raw form.
RETRIED_IF_FAILED: ContextVar[bool] = ContextVar("ess_retried_if_failed", default=False)

# A hint a channel sets when it can send photos and fetch their content (LINE 1:1): a flow
# then offers to keep photos of documents; elsewhere it says to bring them.
PHOTOS_HINT = "photos"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event from a person, in channel-neutral form.

    `event_id` is the channel's own id for the event (LINE webhookEventId, the SMS gateway's
    message id, the web client's message id); the engine handles each id at most once.
    """

    channel: str
    sender: str
    kind: Kind
    event_id: str
    payload: str | Location | Media | None = None
    at: datetime = field(default_factory=utcnow)
    # Hints from the channel: {"flow": "silent"} for a web page opened with ?silent=1,
    # {"lang": "en"} from a browser's language, {"actor": "line:U…"} for the person who
    # wrote in a group, {RESUME_ON_DUPLICATE: "1"} (below), ...
    hints: Mapping[str, str] = field(default_factory=dict)
    chat: ChatKind = ChatKind.PRIVATE

    def __post_init__(self) -> None:
        # The one place every channel's input passes: no text that a store cannot encode.
        clean = _cleaned(self)
        for name, value in clean.items():
            object.__setattr__(self, name, value)

    @property
    def conversation(self) -> str:
        return f"{self.channel}:{self.sender}"

    @property
    def text(self) -> str:
        return self.payload if isinstance(self.payload, str) else ""


def _cleaned(inbound: Inbound) -> dict[str, Any]:
    """The fields of `inbound` that `clean_text` changes, with their clean values."""
    changed: dict[str, Any] = {}
    for name in ("channel", "sender", "event_id"):
        value = getattr(inbound, name)
        if clean_text(value) != value:
            changed[name] = clean_text(value)
    payload = inbound.payload
    if isinstance(payload, str) and clean_text(payload) != payload:
        changed["payload"] = clean_text(payload)
    elif isinstance(payload, Location) and payload.text and clean_text(payload.text) != \
            payload.text:
        changed["payload"] = replace(payload, text=clean_text(payload.text))
    hints = {clean_text(k): clean_text(v) if isinstance(v, str) else v
             for k, v in inbound.hints.items()}
    if hints != dict(inbound.hints):
        changed["hints"] = hints
    return changed


@dataclass(frozen=True, slots=True)
class Text:
    """A catalog reference used as a parameter value, rendered in the reply's language."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Choice:
    """One tappable answer. `value` is what comes back as a CHOICE payload."""

    value: str
    label: Text


class Ask(enum.StrEnum):
    """A special input the reply asks for; channels that cannot do it degrade to text."""

    LOCATION = "location"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to a person: catalog key + parameters, in the conversation's language.

    `silent` asks the channel to make no sound or vibration and show no typing indicator
    (invariant 5); it is set on every reply of a silent conversation.
    """

    text: Text
    lang: str
    choices: tuple[Choice, ...] = ()
    ask: Ask | None = None
    silent: bool = False
