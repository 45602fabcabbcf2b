"""Render channel-neutral replies as text for channels with fewer abilities.

A channel declares what it can show; whatever it cannot becomes text, so every flow runs on
every channel: buttons become numbered lines (a number typed back picks the choice: see
`flows.inputs.parse_choice`), a location request becomes a plain question.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import Catalogs
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
