"""What the dispatcher sends, as data: responder cards, reporter updates, action tokens.

An outbox payload is channel-neutral: a catalog key, its parameters (a parameter may itself
be a catalog reference, encoded as {"$t": key, "p": params}), the language, the choices
(each an opaque action token with a label key) and the silent flag. `notification_reply`
turns it back into the engine's own `Reply`, which every channel already renders; that is
the one seam between the dispatcher and a channel. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from bot.incident import REFERENCE_PREFIX, Incident, Notification, normalize_reference
from bot.types import Choice, Reply, Text
from flows.phone import display_thai_phone
from routing.geo import map_link
from routing.ports import Target

BANGKOK = timezone(timedelta(hours=7))
TOKEN_PREFIX = "ess"
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
         "unfounded": "unfounded", "duplicate": "duplicate", "eta": "en_route"}
TRIGGER_VERBS = {trigger: verb for verb, trigger in VERBS.items()}


@dataclass(frozen=True, slots=True)
class ActionToken:
    action: str  # a lifecycle trigger
    reference: str
    minutes: int | None = None


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
    if verb.startswith("eta") and verb[3:].isdigit():
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
    """A typed action: a word (any language's `dispatch.words.<trigger>`), the reference,
    and minutes for an ETA, in any order ("ack ESS-7K3F9", "ESS-7K3F9 12")."""
    found = _TYPED_REFERENCE.search(text)
    if found is None or len(text) > 100:
        return None
    reference = normalize_reference(found.group(1))
    parts = (text[:found.start()] + " " + text[found.end():]).replace(",", " ").split()
    minutes = next((int(p) for p in parts if p.isdigit() and 1 <= int(p) <= 24 * 60), None)
    action = next((trigger for p in parts for trigger, known in words.items()
                   if p.casefold() in known), None)
    if action is None and minutes is not None:
        action = "en_route"
    return ActionToken(action, reference, minutes) if action else None


def card_choices(reference: str, state_actions: list[str]) -> tuple[tuple[str, str], ...]:
    """Buttons for the actions allowed now; ETA buttons stand for `en_route`."""
    out: list[tuple[str, str]] = []
    for action in state_actions:
        if action == "en_route":
            out += [(action_token("en_route", reference, m), f"dispatch.action.eta_{m}")
                    for m in ETA_CHOICES]
        elif action in TRIGGER_VERBS:
            out.append((action_token(action, reference), f"dispatch.action.{action}"))
    return tuple(out)


# -- contents ----------------------------------------------------------------------------------


def local_time(incident: Incident) -> str:
    return incident.created_at.astimezone(BANGKOK).strftime("%d/%m/%Y %H:%M")


def callback_text(incident: Incident) -> Text:
    if incident.silent:
        return Text("dispatch.callback.silent")
    if incident.do_not_call or not incident.phone:
        return Text("dispatch.callback.no_call")
    return Text("dispatch.callback.phone", {"phone": display_thai_phone(incident.phone)})


def distance_text(km: float | None) -> Text:
    if km is None:
        return Text("dispatch.distance_unknown")
    return Text("dispatch.distance", {"km": f"{km:.1f}"})


def responder_card(incident: Incident, target: Target, level: int,
                   kind: str = KIND_NEW) -> dict[str, Any]:
    """The message a responder gets: the minimum data set, and the actions.

    Personal data (the call-back number, the pin) lives only here, in the sealed payload.
    """
    loc = incident.location
    where = Text("dispatch.map", {"url": map_link(loc.lat, loc.lon)}) \
        if loc.lat is not None and loc.lon is not None else \
        Text("dispatch.place_text", {"text": loc.text or "-"})
    key = "dispatch.reminder" if kind == KIND_REMINDER else \
        "dispatch.escalated" if level > 0 else "dispatch.card"
    params = {
        "reference": incident.reference, "type": Text(f"incident.{incident.type}"),
        "time": local_time(incident), "distance": distance_text(target.distance_km),
        "where": where, "callback": callback_text(incident), "level": level,
        "note": flag_note(incident),
    }
    return message(key, params, target.lang,
                   choices=card_choices(incident.reference, ["acknowledge"]),
                   reference=incident.reference, level=level, **card_fields(incident, target))


def card_fields(incident: Incident, target: Target) -> dict[str, Any]:
    """The card's facts as plain fields too, for a channel that draws its own card from
    them (channels.cards.card_for reads these).

    `silent_report`, not `silent`: in a payload `silent` means "deliver without sound", and
    a silent report's card must ring for the responders more than any other.
    """
    return {
        "type": incident.type, "created_at": incident.created_at.isoformat(),
        "location": incident.location.to_dict(), "phone": incident.phone,
        "do_not_call": incident.do_not_call, "silent_report": incident.silent,
        "area_codes": list(incident.area_codes), "distance_km": target.distance_km,
        "flags": list(incident.details.get("dispatch", {}).get("flags") or []),
    }


def flag_note(incident: Incident) -> Text | str:
    """A warning line when routing found something odd (the pin is at sea, no pin at all)."""
    flags = incident.details.get("dispatch", {}).get("flags") or []
    return Text(f"dispatch.flag.{flags[0]}") if flags else ""


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
