"""What the dispatcher sends, as data: responder cards, reporter updates, action tokens.

An outbox payload is channel-neutral: a catalog key, its parameters (a parameter may itself
be a catalog reference, encoded as {"$t": key, "p": params}), the language, the choices
(each an opaque action token with a label key) and the silent flag. `notification_reply`
turns it back into the engine's own `Reply`, which every channel already renders; that is
the one seam between the dispatcher and a channel. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from bot.incident import Incident, Notification, normalize_reference
from bot.types import Choice, Reply, Text
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


@dataclass(frozen=True, slots=True)
class ActionToken:
    action: str
    reference: str
    argument: str = ""


def action_token(action: str, reference: str, argument: str | int = "") -> str:
    """`ess:acknowledge:ESS-7K3F9[:10]`: no personal data, far under LINE's 300 characters.

    Not a secret: authority comes from who taps it (only notified responders may act).
    """
    tail = f":{argument}" if argument != "" else ""
    return f"{TOKEN_PREFIX}:{action}:{reference}{tail}"


def parse_token(text: str) -> ActionToken | None:
    parts = text.strip().split(":")
    if len(parts) not in (3, 4) or parts[0] != TOKEN_PREFIX or not parts[1]:
        return None
    return ActionToken(parts[1], normalize_reference(parts[2]),
                       parts[3] if len(parts) == 4 else "")


def card_choices(reference: str, state_actions: list[str]) -> tuple[tuple[str, str], ...]:
    """Buttons for the actions allowed now; ETA buttons stand for `en_route`."""
    out: list[tuple[str, str]] = []
    for action in state_actions:
        if action == "en_route":
            out += [(action_token("en_route", reference, m), f"responder.action.eta_{m}")
                    for m in ETA_CHOICES]
        else:
            out.append((action_token(action, reference), f"responder.action.{action}"))
    return tuple(out)


# -- contents ----------------------------------------------------------------------------------


def local_time(incident: Incident) -> str:
    return incident.created_at.astimezone(BANGKOK).strftime("%d/%m/%Y %H:%M")


def callback_text(incident: Incident) -> Text:
    if incident.silent:
        return Text("responder.callback.silent")
    if incident.do_not_call or not incident.phone:
        return Text("responder.callback.no_call")
    return Text("responder.callback.phone", {"phone": incident.phone})


def distance_text(km: float | None) -> Text:
    if km is None:
        return Text("responder.distance_unknown")
    return Text("responder.distance", {"km": f"{km:.1f}"})


def responder_card(incident: Incident, target: Target, level: int,
                   kind: str = KIND_NEW) -> dict[str, Any]:
    """The message a responder gets: the minimum data set, and the actions.

    Personal data (the call-back number, the pin) lives only here, in the sealed payload.
    """
    loc = incident.location
    where = Text("responder.map", {"url": map_link(loc.lat, loc.lon)}) \
        if loc.lat is not None and loc.lon is not None else \
        Text("responder.place_text", {"text": loc.text or "-"})
    key = "responder.reminder" if kind == KIND_REMINDER else \
        "responder.escalated" if level > 0 else "responder.card"
    params = {
        "reference": incident.reference, "type": Text(f"incident.{incident.type}"),
        "time": local_time(incident), "distance": distance_text(target.distance_km),
        "where": where, "callback": callback_text(incident), "level": level,
    }
    return message(key, params, target.lang,
                   choices=card_choices(incident.reference, ["acknowledge"]),
                   reference=incident.reference, level=level)


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
