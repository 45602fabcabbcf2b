"""Numbered menus for SMS responders: a card or a reply that offers actions ends with
"1 รับเรื่อง 2 ถึงแล้ว …", and a bare number sent back picks from the last menu sent to that
number.

The menu is kept in the stores (storage.ports `Menus`: every process, every restart) after
the SMS carrying it was sent, for MENU_SECONDS. Only bare numbers are menu picks: a text
with a reference ("ESS-7K3F9 5", an ETA of 5 minutes) is the typed grammar and never a pick.
A pick becomes the action token the menu line stood for, and goes the way a tapped button
goes (the responder side checks the incident's state again, so a menu the incident has moved
on from gets a clear line and the current menu, never a wrong action).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.i18n import Catalogs
from bot.phone import to_ascii_digits
from bot.types import Choice, Reply, Text
from channels.sms.segments import count_segments
from routing.messages import parse_token
from storage.ports import Menu

MENU_SECONDS = 2 * 3600
MAX_NUMBER_CHARS = 3  # "12", "๑๒": anything longer is not a menu pick
# Two UCS-2 segments hold a reply and eight short items, not ten: the menu offers the ETAs
# of ETA_CHOICES but 5 (typed "ESS-7K3F9 5" still says it), and never "duplicate", which
# needs the other reference and so is typed ("ESS-7K3F9 ซ้ำ ESS-4HM3Q").
MENU_ETAS = frozenset({10, 15, 30})


def actions(choices: Iterable[tuple[str, Text]]) -> tuple[tuple[str, str], ...]:
    """The responder actions among (token, label) pairs that a menu offers, as it stores
    them: (token, label key)."""
    return tuple((token, label.key) for token, label in choices if _offered(token))


def _offered(token: str) -> bool:
    action = parse_token(token)
    if action is None:
        return False  # not a responder action (a reporter's choice)
    if action.action == "en_route":
        return action.minutes in MENU_ETAS
    return action.action != "duplicate"


def reply_actions(reply: Reply) -> tuple[tuple[str, str], ...]:
    return actions((c.value, c.label) for c in reply.choices)


def new_menu(choices: tuple[tuple[str, str], ...], lang: str, now: datetime) -> Menu:
    return Menu(choices, lang, now + timedelta(seconds=MENU_SECONDS))


def menu_line(choices: tuple[tuple[str, str], ...], lang: str, catalogs: Catalogs) -> str:
    """"ESS-7K3F9 ตอบเลข 1 รับเรื่อง 2 …", with each action's short SMS label
    (`sms.menu.<action>`). The line names the incident its numbers act on."""
    reference = next((t.reference for t, _ in ((parse_token(c[0]), 0) for c in choices)
                      if t is not None), "")
    items = " ".join(f"{n} {catalogs.render(lang, Text(short_label(label)))}"
                     for n, (_, label) in enumerate(choices, 1))
    return catalogs.render(lang, Text("sms.menu.line", {"reference": reference,
                                                        "items": items}))


def short_label(label: str) -> str:
    """`dispatch.action.eta_10` → `sms.menu.eta_10`."""
    return "sms.menu." + label.rsplit(".", 1)[-1]


def bare_number(text: str) -> int | None:
    """The number of a bare "1", "๑", "၁" (any script's digits), else None."""
    word = to_ascii_digits(text.strip())
    if not word or len(word) > MAX_NUMBER_CHARS or not (word.isascii() and word.isdecimal()):
        return None
    return int(word)


def as_choices(menu: Menu) -> tuple[Choice, ...]:
    return tuple(Choice(token, Text(label)) for token, label in menu.choices)


def fit(lines: list[str], importance: list[int], segments: int) -> str:
    """`lines` within `segments` UCS-2 (or GSM-7) segments: lines are kept by importance
    (lowest first); one that does not fit is shortened with "…" or dropped, and what is
    kept is read in the lines' order."""
    kept = [""] * len(lines)
    for index in sorted(range(len(lines)), key=lambda i: importance[i]):
        if not lines[index]:
            continue
        kept[index] = lines[index]
        while count_segments("\n".join(x for x in kept if x)).count > segments:
            kept[index] = kept[index][:-2] + "…" if len(kept[index]) > 8 else ""
            if not kept[index]:
                break
    return "\n".join(x for x in kept if x)
