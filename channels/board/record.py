"""The incident page's record of messages: who was told at which escalation level (and
whether it reached them), and the relay chat with the reporter, from the incident's outbox
rows (the timeline keeps only that a relay was sent, not its text).

Addresses are never shown (an SMS responder's is a phone number): a recipient is the name
of the station or agency it was routed to, and its channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from bot.incident import Incident, Notification
from channels.board.words import say
from routing.messages import (
    KIND_NEW,
    KIND_RELAY_TO_REPORTER,
    KIND_RELAY_TO_RESPONDER,
    KIND_REMINDER,
    notification_reply,
)
from routing.responders import dispatch_state

FAN_OUT_SECONDS = 2.0  # one message of the reporter to several responders: one line


@dataclass(frozen=True, slots=True)
class Told:
    """One responder card (or reminder) of one escalation level, and its delivery."""

    level: int
    reminder: bool
    name: str
    channel: str
    status: str  # pending | sent | dead
    at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class RelayLine:
    """One message of the relay chat, in order; `to_reporter` or `to_responder`."""

    direction: str
    text: str
    to: tuple[str, ...]
    status: str
    at: datetime


def _name(state: dict[str, Any], address: str, lang: str) -> str:
    t = state["targets"].get(address) or {}
    holder = state.get("holder") or {}
    if not t and holder.get("address") == address:  # a holder not notified: the board's
        t = holder
    return str(t.get("name") or t.get(f"name_{lang}") or t.get("name_th") or t.get("agency")
               or "?")


def _text(n: Notification) -> str:
    return str(notification_reply(n).text.params.get("text", ""))


def told(incident: Incident, outbox: Sequence[Notification], lang: str) -> list[Told]:
    state = dispatch_state(incident)
    targets = state["targets"]
    return [Told(int(n.payload.get("level", targets.get(n.recipient, {}).get("level", 0))),
                 n.kind == KIND_REMINDER, _name(state, n.recipient, lang),
                 n.recipient.split(":", 1)[0], n.status, n.created_at, n.sent_at)
            for n in outbox if n.kind in (KIND_NEW, KIND_REMINDER)]


def relay_chat(incident: Incident, outbox: Sequence[Notification],
               lang: str) -> list[RelayLine]:
    state = dispatch_state(incident)
    lines: list[RelayLine] = []
    for n in outbox:
        if n.kind == KIND_RELAY_TO_REPORTER:
            lines.append(RelayLine("to_reporter", _text(n), (), n.status, n.created_at))
        elif n.kind == KIND_RELAY_TO_RESPONDER:
            text, name = _text(n), _name(state, n.recipient, lang)
            last = lines[-1] if lines else None
            if last is not None and last.direction == "to_responder" and last.text == text \
                    and (n.created_at - last.at).total_seconds() < FAN_OUT_SECONDS:
                # The same message fanned out to everyone notified: one line, every name.
                status = last.status if last.status == n.status else "pending"
                lines[-1] = RelayLine(last.direction, text, (*last.to, name), status, last.at)
            else:
                lines.append(RelayLine("to_responder", text, (name,), n.status, n.created_at))
    return lines


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(at: datetime | None) -> str:
    return f'<time datetime="{_e(at.isoformat())}">{_e(at.strftime("%H:%M:%S"))}</time>' \
        if at else ""


def record_html(lang: str, told_: Sequence[Told], chat: Sequence[RelayLine]) -> str:
    """The two sections of the incident page (every value escaped)."""
    rows = "".join(
        f'<tr class="out-{_e(t.status)}"><td>{_e(say(lang, "level", level=t.level))}</td>'
        f'<td>{_e(t.name)}</td><td>{_e(t.channel)}</td>'
        f'<td>{_e(say(lang, "told_reminder" if t.reminder else "told_card"))} '
        f'{_when(t.at)}</td><td>{_e(say(lang, f"out_{t.status}"))} {_when(t.sent_at)}</td>'
        '</tr>' for t in sorted(told_, key=lambda t: (t.level, t.at)))
    head = "".join(f"<th>{_e(say(lang, k))}</th>" for k in (
        "told_level", "told_who", "told_channel", "told_what", "told_delivery"))
    notified = (f'<table class="told"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
                '</table>' if told_ else f'<p class="hint">{_e(say(lang, "told_none"))}</p>')
    items = "".join(
        f'<li class="relay {_e(r.direction)}">{_when(r.at)} '
        f'<b>{_e(say(lang, f"relay_{r.direction}", to=", ".join(r.to)))}</b> '
        f'<span class="relay-text">{_e(r.text)}</span> '
        f'<small>{_e(say(lang, f"out_{r.status}"))}</small></li>' for r in chat)
    transcript = f'<ol class="relay-chat">{items}</ol>' if chat else \
        f'<p class="hint">{_e(say(lang, "relay_none"))}</p>'
    return (f'<h2>{_e(say(lang, "told_title"))}</h2>{notified}'
            f'<h2>{_e(say(lang, "relay_title"))}</h2>{transcript}')
