"""The terminal channel behind `ess chat`: lines in, the bot's messages out.

Input: a number picks a choice as printed (`1) label`), `lat,lon` is a map pin, anything else
is text. Output: each reply as text with its choices one per line. A person or a script can
make a whole report this way.
"""

from __future__ import annotations

import re
import uuid
from typing import TextIO

from bot.engine import Engine
from bot.i18n import Catalogs
from bot.render import Abilities, render_text
from bot.types import Inbound, Kind, Location, LocationSource, Reply, Text

CHANNEL = "terminal"
ABILITIES = Abilities(buttons=False, location=True)
_PIN = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$")


def parse_line(line: str, sender: str) -> Inbound:
    """One typed line as an event."""
    event_id = uuid.uuid4().hex
    match = _PIN.match(line)
    if match:
        lat, lon = float(match.group(1)), float(match.group(2))
        return Inbound(CHANNEL, sender, Kind.LOCATION, event_id,
                       Location(lat, lon, LocationSource.REPORTER_PIN))
    return Inbound(CHANNEL, sender, Kind.TEXT, event_id, line.rstrip("\n"))


def print_replies(replies: list[Reply], catalogs: Catalogs, out: TextIO) -> None:
    for reply in replies:
        out.write(render_text(reply, catalogs, ABILITIES) + "\n\n")
    out.flush()


async def chat(engine: Engine, catalogs: Catalogs, lines: TextIO, out: TextIO,
               flow: str, lang: str, sender: str | None = None) -> list[str]:
    """Run a conversation from `lines`; return the incident references it produced."""
    sender = sender or f"tty-{uuid.uuid4().hex[:8]}"
    hints = {"flow": flow, "lang": lang}
    start = Inbound(CHANNEL, sender, Kind.START, uuid.uuid4().hex, flow, hints=hints)
    print_replies(await engine.handle(start), catalogs, out)
    references: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        replies = await engine.handle(parse_line(line, sender))
        for reply in replies:
            ref = reply.text.params.get("reference")
            if isinstance(ref, str) and ref not in references:
                references.append(ref)
                # The receipt proper is an outbox row (bot.reports), which `ess chat` does
                # not dispatch: say it here, before what the flow says next.
                replies = [Reply(Text("report.received_short", {"reference": ref}),
                                 reply.lang, silent=reply.silent), *replies]
        print_replies(replies, catalogs, out)
    return references
