"""The terminal channel: `ess chat` (lines in, the bot's messages out) and `ess respond`
(an operator acting on an incident for a notified responder). It serves no address in
`ess serve`; its part of the plugin contract is its subcommands.

Input: a number picks a choice as printed (`1) label`), `lat,lon` is a map pin, anything else
is text. Output: each reply as text with its choices one per line. A person or a script can
make a whole report this way.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from aiohttp import web

from bot.i18n import Catalogs
from bot.outbound import Outbound, SendResult
from bot.render import Abilities, render_text
from bot.types import ChatKind, Inbound, Kind, Location, LocationSource, Reply, Text
from channels.base import Channel, ChannelOff, CommandContext, CommandError
from config.settings import Settings

if TYPE_CHECKING:
    from bot.inbound import ReporterSide

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


async def chat(engine: ReporterSide, catalogs: Catalogs, lines: TextIO, out: TextIO,
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
                said = "silent.received" if reply.silent else "report.received_short"
                replies = [Reply(Text(said, {"reference": ref}), reply.lang,
                                 silent=reply.silent), *replies]
        print_replies(replies, catalogs, out)
    return references


OPERATOR = "console:operator"


class TerminalChannel(Channel):
    """Not a channel of the running service: the home of `ess chat` and `ess respond`."""

    name: ClassVar[str] = CHANNEL
    schemes: ClassVar[tuple[str, ...]] = ("terminal",)
    abilities = ABILITIES

    @classmethod
    def from_settings(cls, settings: Settings) -> TerminalChannel:
        raise ChannelOff("terminal: it runs as `ess chat` and `ess respond`, not in the service")

    def routes(self, router: web.UrlDispatcher) -> None:
        pass

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        return SendResult.failed("the terminal receives nothing outside `ess chat`")

    @classmethod
    def add_commands(cls, commands: argparse._SubParsersAction[Any]) -> None:
        chat_parser = commands.add_parser("chat", help="talk to a flow in the terminal")
        chat_parser.add_argument("--flow", default="report", help="report or silent")
        chat_parser.add_argument("--lang", default=None,
                                 help="th or en (default: the service default)")
        chat_parser.add_argument("--as", dest="sender", default=None,
                                 help="a stable chat name, so a volunteer registered with "
                                      "/register CODE stays one across runs")
        chat_parser.set_defaults(run=chat_command)
        respond = commands.add_parser(
            "respond", help="act on an incident as an operator, for a notified responder")
        respond.add_argument("reference", help="ESS-7K3F9")
        respond.add_argument("action", nargs="+",
                             help="ack | eta 10 | scene | resolved | protection | welfare | "
                                  "unfounded | duplicate ESS-XXXXX | note TEXT")
        respond.add_argument("--as", dest="address", default=None,
                             help="the notified address to act for (default: the holder, "
                                  "else the first notified)")
        respond.set_defaults(run=respond_command)


async def chat_command(args: argparse.Namespace, ctx: CommandContext) -> int:
    services = await ctx.open_services()
    lang = args.lang or ctx.settings.default_lang
    try:
        if args.flow not in services.flows:
            raise CommandError(f"no flow {args.flow!r}; flows: "
                               f"{', '.join(sorted(services.flows))}")
        if not services.catalogs.has(lang):
            raise CommandError(f"no catalog for {lang!r}; languages: "
                               f"{', '.join(x.code for x in services.catalogs.languages)}")
        # Through the one inbound router, as every channel: `/register CODE` works here too.
        refs = await chat(services.inbound, services.catalogs, sys.stdin, sys.stdout,
                          args.flow, lang, args.sender)
    finally:
        await services.close()
    for ref in refs:
        print(f"reference: {ref}")
    return 0


async def respond_command(args: argparse.Namespace, ctx: CommandContext) -> int:
    """`ess respond ESS-7K3F9 eta 10`: through the one inbound router, as the address that
    was notified (an operator at the console has no chat of their own)."""
    from bot.incident import normalize_reference

    services = await ctx.open_services()
    try:
        reference = normalize_reference(args.reference)
        incident = await services.storage.incidents.get(reference)
        if incident is None:
            raise CommandError(f"no incident {reference}")
        address = args.address or services.responders.acting_address(incident)
        if not address:
            raise CommandError(f"nobody was notified of {reference}")
        inbound = Inbound(CHANNEL, OPERATOR.split(":", 1)[1], Kind.TEXT, uuid.uuid4().hex,
                          f"{reference} {' '.join(args.action)}",
                          hints={"actor": OPERATOR, "chat": address}, chat=ChatKind.OPERATOR)
        replies = await services.inbound.handle(inbound)
        print_replies(replies, services.catalogs, sys.stdout)
        queued = await services.storage.outbox.pending()
    finally:
        await services.close()
    if queued:
        print(f"{queued} message(s) queued; the running service sends them", file=sys.stderr)
    return 0
