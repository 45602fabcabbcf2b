"""What the dispatcher sends: the typed responder card, reporter updates, action tokens,
and typed commands. Pure functions, no I/O.

The card is built once here (`responder_card`) for every channel. An outbox row's payload is
this module's private format, sealed at rest: a card row holds the card's fields; any other
row a catalog key, its parameters (a parameter may itself be a catalog reference, encoded as
{"$t": key, "p": params}), the language, the choices (each an opaque action token with a
label key) and the silent flag. `outbound(notification)` turns a row back into the typed
message a channel renders (a `ResponderCard` or a `Reply`): no dict crosses to a channel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta, timezone
from typing import Any

from bot.incident import REFERENCE_PREFIX, Incident, Notification, normalize_reference
from bot.outbound import CardAction, CardKind, Outbound, ResponderCard
from bot.phone import display_thai_phone
from bot.types import Choice, Reply, Text
from routing import lifecycle as lc
from routing.geo import map_link
from routing.ports import Target

BANGKOK = timezone(timedelta(hours=7))
ETA_CHOICES = (5, 10, 15, 30)
URBAN_KMH = 40.0  # a car on Thai roads with lights; an estimate, said to be one
TURNOUT_MINUTES = 5  # leaving the station
MAX_ETA_MINUTES = 240

KIND_NEW = "incident.new"  # a responder card (first or escalation)
KIND_REMINDER = "incident.reminder"
KIND_RESPONDER = "responder.update"  # taken by, closed, reporter safe, ...
KIND_REPORTER = "reporter.update"
KIND_RECEIPT = "reporter.receipt"  # "received, reference ESS-…": the outbox owns it (bot.reports)
KIND_RELAY_TO_REPORTER = "relay.to_reporter"
KIND_RELAY_TO_RESPONDER = "relay.to_responder"


def encode(value: Any) -> Any:
    if isinstance(value, Text):
        return {"$t": value.key, "p": {k: encode(v) for k, v in value.params.items()}}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "$t" in value:
        return Text(str(value["$t"]), {k: decode(v) for k, v in (value.get("p") or {}).items()})
    return value


def message(key: str, params: Mapping[str, Any], lang: str, *, silent: bool = False,
            choices: tuple[tuple[str, str], ...] = (), **extra: Any) -> dict[str, Any]:
    """A payload: catalog key + params, language, silent flag, choices (token, label key)."""
    return {"key": key, "params": {k: encode(v) for k, v in params.items()}, "lang": lang,
            "silent": silent, "choices": [{"value": v, "label": label} for v, label in choices],
            **extra}


def notification_reply(notification: Notification) -> Reply:
    """The channel-neutral message a notification carries (render it like any Reply)."""
    p = notification.payload
    params = {k: decode(v) for k, v in (p.get("params") or {}).items()}
    choices = tuple(Choice(str(c["value"]), Text(str(c["label"])))
                    for c in p.get("choices") or [])
    return Reply(Text(str(p.get("key", "")), params), str(p.get("lang") or "th"), choices,
                 silent=bool(p.get("silent")))


# -- action tokens ---------------------------------------------------------------------------

# `act:<verb>:<reference>`: the channels' ACTION_PREFIX, so a tapped button goes to the
# responder hook and never into a reporter's flow. Verbs are short (LINE postback data ≤ 300).
TOKEN_PREFIX = "act:"
VERBS = {"ack": "acknowledge", "scene": "on_scene", "resolve": "resolve", "refer": "refer",
         "protect": "refer_protection", "welfare": "refer_welfare",
         "unfounded": "unfounded", "duplicate": "duplicate", "eta": "en_route"}
TRIGGER_VERBS = {trigger: verb for verb, trigger in VERBS.items()}


@dataclass(frozen=True, slots=True)
class ActionToken:
    action: str  # a lifecycle trigger, or a typed-only word (refer_welfare, note)
    reference: str
    minutes: int | None = None
    detail: str = ""  # the note's text, or the reference a duplicate duplicates


def action_token(action: str, reference: str, minutes: int | None = None) -> str:
    """`act:ack:ESS-7K3F9`, `act:eta10:ESS-7K3F9`: no personal data.

    Not a secret: authority comes from who taps it (only notified responders may act).
    """
    verb = TRIGGER_VERBS[action]
    if action == "en_route" and minutes is not None:
        verb = f"eta{minutes}"
    return f"{TOKEN_PREFIX}{verb}:{reference}"


def parse_token(text: str) -> ActionToken | None:
    """The action in a token, or None for anything else (bounded: LINE's 300 characters)."""
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX) or len(text) > 300:
        return None
    verb, sep, reference = text[len(TOKEN_PREFIX):].partition(":")
    if not sep or not reference:
        return None
    minutes: int | None = None
    if verb.startswith("eta") and verb[3:].isdecimal():
        verb, minutes = "eta", int(verb[3:])
    if verb not in VERBS:
        return None
    return ActionToken(VERBS[verb], normalize_reference(reference), minutes)


# "ESS-7K3F9", "ess 7k3f9", "ESS7K3F9" (as read out on the phone).
_TYPED_REFERENCE = re.compile(rf"(?<![A-Za-z0-9]){REFERENCE_PREFIX}[\s\-]*([A-Za-z0-9]{{5}})"
                              r"(?![A-Za-z0-9])", re.IGNORECASE)


_RELAY = re.compile(rf"^\s*{REFERENCE_PREFIX}[\s\-]*([A-Za-z0-9]{{5}})\s*:\s*(\S.*)$", re.S | re.I)


def parse_relay(text: str) -> tuple[str, str] | None:
    """`ESS-7K3F9: message`: a responder writing to the reporter (reference, text).

    The colon keeps it apart from typed actions: "ESS-7K3F9 12" is an ETA, never a message.
    """
    found = _RELAY.match(text)
    return (normalize_reference(found.group(1)), found.group(2).strip()) if found else None


def parse_typed(text: str, words: Mapping[str, set[str]]) -> ActionToken | None:
    """A typed action: the reference, a word (any language's `dispatch.words.<action>`) and
    minutes for an ETA, in any order ("ack ESS-7K3F9", "ESS-7K3F9 eta 10", "ESS-7K3F9 12");
    "ESS-7K3F9 note <text>" and "ESS-7K3F9 duplicate ESS-4HM3Q" carry a detail. Digits
    must already be ASCII (`bot.phone.to_ascii_digits`)."""
    found = _TYPED_REFERENCE.search(text)
    if found is None or len(text) > 1000:
        return None
    reference = normalize_reference(found.group(1))
    said = text[:found.start()] + " " + text[found.end():]
    rest = said.replace(",", " ")
    parts = rest.split()
    if parts and parts[0].casefold() in words.get("note", set()):
        # The note is the responder's own words, as written.
        return ActionToken("note", reference, None, said.strip()[len(parts[0]):].strip())
    if len(text) > 100:
        return None
    minutes = next((int(p) for p in parts if p.isdecimal() and 1 <= int(p) <= 24 * 60), None)
    action = next((trigger for p in parts for trigger, known in words.items()
                   if trigger != "note" and p.casefold() in known), None)
    if action is None and minutes is not None:
        action = "en_route"
    detail = ""
    if action == "duplicate":
        other = _TYPED_REFERENCE.search(rest)
        detail = normalize_reference(other.group(1)) if other else ""
    return ActionToken(action, reference, minutes, detail) if action else None


def card_choices(reference: str, state_actions: list[str]) -> tuple[tuple[str, str], ...]:
    """Buttons for the actions allowed now; ETA buttons stand for `en_route`."""
    out: list[tuple[str, str]] = []
    for action in state_actions:
        if action == "en_route":
            out += [(action_token("en_route", reference, m), f"dispatch.action.eta_{m}")
                    for m in ETA_CHOICES]
        elif action == "refer":
            # Two outcomes of one transition: where the case was referred to.
            out += [(action_token(a, reference), f"dispatch.action.{a}")
                    for a in ("refer_protection", "refer_welfare")]
        elif action in TRIGGER_VERBS:
            out.append((action_token(action, reference), f"dispatch.action.{action}"))
    return tuple(out)


# -- contents ----------------------------------------------------------------------------------


def local_time(incident: Incident) -> str:
    return incident.created_at.astimezone(BANGKOK).strftime("%d/%m/%Y %H:%M")


def callback_number(incident: Incident) -> str | None:
    """The number a responder may call, or None: a silent report, or the reporter said no."""
    if incident.silent or incident.do_not_call or not incident.phone:
        return None
    return display_thai_phone(incident.phone)


def card_kind(kind: str, level: int) -> CardKind:
    if kind == KIND_REMINDER:
        return CardKind.REMINDER
    return CardKind.ESCALATION if level > 0 else CardKind.NEW


def responder_card(incident: Incident, target: Target, level: int, kind: str = KIND_NEW,
                   waited_minutes: int = 0) -> ResponderCard:
    """The card a responder gets, built once for every channel: the minimum data set, and
    the actions the incident's state allows now.

    Personal data (the call-back number, the pin) lives only here, in the sealed payload.
    """
    state = incident.details.get("dispatch", {})
    where = state.get("where") or {}
    names = where.get(target.lang) or where.get("th") or {}
    loc = incident.location
    pinned = loc.lat is not None and loc.lon is not None
    first = names.get("station") or names.get("province") or ""
    escalation = Text("dispatch.card.escalation", {"who": first, "minutes": waited_minutes}) \
        if level > 0 and kind != KIND_REMINDER else None
    holder = state.get("holder")
    return ResponderCard(
        reference=incident.reference, lang=target.lang, kind=card_kind(kind, level),
        type=Text(f"incident.{incident.type}"), reported_at=local_time(incident),
        province=names.get("province", ""), district=names.get("district", ""),
        station=names.get("station", ""),
        place_text=None if pinned else (loc.text or "-"),
        map_url=map_link(loc.lat, loc.lon) if loc.lat is not None and loc.lon is not None
        else None,
        distance_km=target.distance_km, callback=callback_number(incident),
        do_not_call=incident.do_not_call or incident.silent, silent=incident.silent,
        drill=incident.drill, flags=tuple(state.get("flags") or ()), level=level,
        escalation=escalation, holder=str(holder.get("name") or holder.get("name_th")
                                          or holder.get("address")) if holder else None,
        actions=tuple(CardAction(token, Text(label)) for token, label in
                      card_choices(incident.reference, responder_actions(incident.status))))


def responder_actions(status: str) -> list[str]:
    """The responder triggers allowed from `status`, in the machine's order."""
    return [t for t in lc.allowed(status) if t in lc.RESPONDER_TRIGGERS]


def card_notification(incident: Incident, target: Target, level: int, kind: str = KIND_NEW,
                      waited_minutes: int = 0) -> Notification:
    """An outbox row carrying a responder card."""
    card = responder_card(incident, target, level, kind, waited_minutes)
    return Notification(target.address, kind, {"card": card_payload(card), "level": level,
                                               "reference": incident.reference},
                        incident_id=incident.id)


_CARD_TEXTS = ("type", "escalation")


def card_payload(card: ResponderCard) -> dict[str, Any]:
    """A card as the outbox stores it (sealed); `payload_card` reads it back."""
    data = {f.name: getattr(card, f.name) for f in fields(card)}
    data["kind"] = card.kind.value
    data["flags"] = list(card.flags)
    for name in _CARD_TEXTS:
        data[name] = encode(data[name])
    data["actions"] = [{"token": a.token, "label": encode(a.label)} for a in card.actions]
    return data


def payload_card(data: Mapping[str, Any]) -> ResponderCard:
    values = dict(data)
    values["kind"] = CardKind(values["kind"])
    values["flags"] = tuple(values.get("flags") or ())
    for name in _CARD_TEXTS:
        values[name] = decode(values.get(name))
    values["actions"] = tuple(CardAction(str(a["token"]), decode(a["label"]))
                              for a in values.get("actions") or ())
    return ResponderCard(**values)


def outbound(notification: Notification) -> Outbound:
    """What a channel is given for an outbox row: the typed card, or the reply it carries."""
    card = notification.payload.get("card")
    if isinstance(card, dict):
        return payload_card(card)
    return notification_reply(notification)


def estimate_eta(distance_km: float | None) -> int | None:
    """Minutes to the scene from the distance, when the responder gave none."""
    if distance_km is None:
        return None
    minutes = TURNOUT_MINUTES + distance_km / URBAN_KMH * 60
    return max(5, min(MAX_ETA_MINUTES, int(math.ceil(minutes / 5) * 5)))


def reporter_key(incident: Incident, step: str) -> str:
    """Neutral wording for a silent report: a screen may be seen by someone else."""
    return f"status.{'silent' if incident.silent else 'plain'}.{step}"


def reporter_update(incident: Incident, step: str, **params: Any) -> Notification:
    payload = message(reporter_key(incident, step),
                      {"reference": incident.reference, **params}, incident.lang,
                      silent=incident.silent, reference=incident.reference)
    return Notification(incident.reporter, KIND_REPORTER, payload, incident_id=incident.id)
