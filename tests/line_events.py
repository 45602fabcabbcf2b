"""Webhook bodies shaped exactly like the examples in LINE's Messaging API reference."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

SECRET = "test-channel-secret"
DESTINATION = "U" + "d" * 32
_counter = itertools.count(1)


def event_id() -> str:
    # ULIDs are 26 characters of Crockford base32.
    return f"01H{next(_counter):023d}"


def _base(kind: str, source: dict[str, Any], *, reply: bool = True,
          redelivery: bool = False, timestamp: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": timestamp or int(time.time() * 1000),
        "source": source,
        "webhookEventId": event_id(),
        "deliveryContext": {"isRedelivery": redelivery},
    }
    if reply:
        event["replyToken"] = f"nHuyWiB7yP5Zw52FIkcQobQuGDXCTA{next(_counter)}"
    return event


def user(user_id: str) -> dict[str, Any]:
    return {"type": "user", "userId": user_id}


def group(group_id: str, user_id: str | None = None) -> dict[str, Any]:
    source = {"type": "group", "groupId": group_id}
    if user_id:
        source["userId"] = user_id
    return source


def text(source: dict[str, Any], value: str, **kw: Any) -> dict[str, Any]:
    event = _base("message", source, **kw)
    event["message"] = {"id": str(444573844083572737 + next(_counter)), "type": "text",
                        "quoteToken": "q3Plxr4AgKd...", "text": value}
    return event


def location(source: dict[str, Any], lat: float = 16.8211, lon: float = 100.2659,
             **kw: Any) -> dict[str, Any]:
    event = _base("message", source, **kw)
    event["message"] = {"id": str(325708 + next(_counter)), "type": "location",
                        "title": "my location", "address": "Mueang Phitsanulok",
                        "latitude": lat, "longitude": lon}
    return event


def sticker(source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    event = _base("message", source, **kw)
    event["message"] = {"id": str(1501597916 + next(_counter)), "type": "sticker",
                        "quoteToken": "q3Plxr4AgKd...", "stickerId": "52002738",
                        "packageId": "11537", "stickerResourceType": "ANIMATION",
                        "keywords": ["cony", "Party"]}
    return event


def image(source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    event = _base("message", source, **kw)
    event["message"] = {"id": str(354718705033693859 + next(_counter)), "type": "image",
                        "quoteToken": "q3Plxr4AgKd...", "contentProvider": {"type": "line"}}
    return event


def unknown_message(source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A message type the SDK does not know yet."""
    event = _base("message", source, **kw)
    event["message"] = {"id": "1", "type": "hologram", "quoteToken": "q"}
    return event


def postback(source: dict[str, Any], data: str, **kw: Any) -> dict[str, Any]:
    event = _base("postback", source, **kw)
    event["postback"] = {"data": data}
    return event


def follow(source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    event = _base("follow", source, **kw)
    event["follow"] = {"isUnblocked": False}
    return event


def join(source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return _base("join", source, **kw)


def leave(source: dict[str, Any]) -> dict[str, Any]:
    return _base("leave", source, reply=False)


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": DESTINATION, "events": list(events)}).encode()


def sign(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
