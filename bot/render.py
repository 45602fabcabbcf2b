"""Render channel-neutral replies as text for channels with fewer abilities.

A channel declares what it can show; whatever it cannot becomes text, so every flow runs on
every channel: buttons become numbered lines (a number typed back picks the choice: see
`flows.inputs.parse_choice`), a location request becomes a plain question.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import Catalogs
from bot.outbound import CardKind, Outbound, ResponderCard
from bot.types import Ask, Reply, Text


@dataclass(frozen=True)
class Abilities:
    """What a channel can show natively."""

    buttons: bool = False
    location: bool = False
    max_buttons: int = 13


def render_text(reply: Reply, catalogs: Catalogs, abilities: Abilities = Abilities()) -> str:
    """The whole reply as text, with what the channel cannot show spelled out."""
    parts = [catalogs.render(reply.lang, reply.text)]
    if reply.ask is Ask.LOCATION and not abilities.location:
        parts.append(catalogs.render(reply.lang, Text("common.location.type_instead")))
    if reply.choices and (not abilities.buttons or len(reply.choices) > abilities.max_buttons):
        parts.append("\n".join(choice_lines(reply, catalogs)))
    return "\n".join(parts)


def choice_lines(reply: Reply, catalogs: Catalogs) -> list[str]:
    return [f"{i}) {catalogs.render(reply.lang, c.label)}"
            for i, c in enumerate(reply.choices, 1)]


def card_title(card: ResponderCard) -> Text:
    key = {CardKind.NEW: "title", CardKind.ESCALATION: "escalated_title",
           CardKind.REMINDER: "reminder_title"}[card.kind]
    return Text(f"dispatch.card.{key}", {"reference": card.reference, "level": card.level})


def card_alert(card: ResponderCard) -> Text | None:
    """The line shown first and plainly: a drill, or DO NOT CALL — chat only."""
    if card.silent:
        return Text("dispatch.callback.silent")
    if card.do_not_call or card.callback is None:
        return Text("dispatch.callback.no_call")
    return None


def card_facts(card: ResponderCard) -> list[Text]:
    """The card's lines after the title, in the order a responder reads them."""
    lines: list[Text] = []
    if card.escalation is not None:
        lines.append(card.escalation)
    lines += [Text("dispatch.card.type", {"type": card.type}),
              Text("dispatch.card.reported", {"time": card.reported_at})]
    if card.province or card.station:
        lines.append(Text("dispatch.card.where", {"province": card.province,
                                                  "district": card.district,
                                                  "station": card.station or "-"}))
    if card.map_url:
        lines.append(Text("dispatch.map", {"url": card.map_url}))
    else:
        lines.append(Text("dispatch.place_text", {"text": card.place_text or "-"}))
    lines.append(Text("dispatch.distance", {"km": f"{card.distance_km:.1f}"})
                 if card.distance_km is not None else Text("dispatch.distance_unknown"))
    if card.callback is not None:
        lines.append(Text("dispatch.callback.phone", {"phone": card.callback}))
    lines += [Text(f"dispatch.flag.{flag}") for flag in card.flags]
    if card.holder:
        lines.append(Text("dispatch.card.holder", {"who": card.holder}))
    return lines


def card_lines(card: ResponderCard, catalogs: Catalogs, *, hint: bool = True) -> list[str]:
    """A card as lines of text (SMS, console, plain chat): alert, title, facts, and how to
    answer by typing when the channel has no buttons."""
    texts = [t for t in (Text("dispatch.card.drill") if card.drill else None,
                         card_alert(card), card_title(card)) if t is not None]
    texts += card_facts(card)
    if hint and card.actions:
        texts.append(Text("dispatch.card.reply_hint", {"reference": card.reference}))
    return [catalogs.render(card.lang, t) for t in texts]


def render_outbound(message: Outbound, catalogs: Catalogs,
                    abilities: Abilities = Abilities()) -> list[str]:
    """A card or a reply as text lines (channels without rich messages, and the console)."""
    if isinstance(message, ResponderCard):
        return card_lines(message, catalogs)
    return [render_text(message, catalogs, abilities)]
