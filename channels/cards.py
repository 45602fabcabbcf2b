"""Responder cards: an outbox row as a channel-neutral `Card`, and the action tokens on it.

An action button carries `act:<verb>:<reference>` (at most 300 characters, no personal data:
the reference is an incident number, not a person). When pressed, a channel hands it to the
registry's responder hook as a CHOICE `Inbound` with that payload; `parse_action` reads it.
Verbs: `ack`, `eta5`, `eta10`, `eta15`, `eta30`, `scene`, `resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.i18n import Catalogs
from bot.incident import Notification
from bot.types import Choice, Location, Text
from channels.base import ACTION_PREFIX, Card
from flows.phone import display_thai_phone

ETA_MINUTES = (5, 10, 15, 30)
VERBS = ("ack", *(f"eta{m}" for m in ETA_MINUTES), "scene", "resolve")
MAX_TOKEN = 300


@dataclass(frozen=True, slots=True)
class ResponderAction:
    """A parsed action token."""

    verb: str
    reference: str

    @property
    def eta_minutes(self) -> int | None:
        return int(self.verb[3:]) if self.verb.startswith("eta") else None


def action_token(verb: str, reference: str) -> str:
    token = f"{ACTION_PREFIX}{verb}:{reference}"
    if verb not in VERBS or len(token) > MAX_TOKEN:
        raise ValueError("not a responder action")
    return token


def parse_action(payload: str) -> ResponderAction | None:
    """The action in an `act:` payload, or None for anything else."""
    if not payload.startswith(ACTION_PREFIX) or len(payload) > MAX_TOKEN:
        return None
    verb, sep, reference = payload[len(ACTION_PREFIX):].partition(":")
    if not sep or verb not in VERBS or not reference:
        return None
    return ResponderAction(verb, reference)


def responder_actions(reference: str) -> tuple[Choice, ...]:
    """The buttons of a new-incident card, in the order a responder uses them."""
    labels = [("ack", Text("card.action.ack"))]
    labels += [(f"eta{m}", Text("card.action.eta", {"minutes": m})) for m in ETA_MINUTES]
    labels += [("scene", Text("card.action.scene")), ("resolve", Text("card.action.resolve"))]
    return tuple(Choice(action_token(verb, reference), label) for verb, label in labels)


def _where(location: Location) -> Text:
    if location.lat is None or location.lon is None:
        return Text("card.where_text", {"text": location.text or ""})
    accuracy = f"±{location.accuracy_m:.0f} m" if location.accuracy_m else ""
    return Text("card.where", {"lat": f"{location.lat:.5f}", "lon": f"{location.lon:.5f}",
                               "source": Text(f"card.source.{location.source.value}"),
                               "accuracy": accuracy})


def card_for(notification: Notification, lang: str) -> Card:
    """The card a responder sees for one outbox row."""
    payload: dict[str, Any] = notification.payload
    reference = str(payload.get("reference", ""))
    if notification.kind != "incident.new":
        return Card(Text("card.update.title", {"reference": reference}),
                    (Text(f"card.update.{notification.kind.removeprefix('incident.')}"),),
                    lang)
    try:
        location: Location | None = Location.from_dict(payload["location"])
    except (KeyError, ValueError, TypeError):
        location = None
    lines = [Text("card.type", {"type": Text(f"incident.{payload.get('type', '')}")})]
    if location is not None:
        lines.append(_where(location))
    phone = payload.get("phone")
    if phone and not payload.get("do_not_call"):
        lines.append(Text("card.phone", {"phone": display_thai_phone(str(phone))}))
    alert = Text("card.silent") if payload.get("silent_report") else \
        Text("card.do_not_call") if payload.get("do_not_call") else None
    return Card(Text("card.new.title", {"reference": reference}), tuple(lines), lang,
                responder_actions(reference) if reference else (), location, alert)


def card_text(card: Card, catalogs: Catalogs) -> list[str]:
    """A card as lines of text, for channels without rich messages."""
    lines = [catalogs.render(card.lang, card.title)]
    if card.alert:
        lines.insert(0, catalogs.render(card.lang, card.alert))
    lines += [catalogs.render(card.lang, line) for line in card.lines]
    return lines


def map_url(location: Location) -> str | None:
    """A link that opens the point in any map app; None for a place we only have as text."""
    if location.lat is None or location.lon is None:
        return None
    return f"https://www.google.com/maps/search/?api=1&query={location.lat:.6f},{location.lon:.6f}"

