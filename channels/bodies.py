"""Reading what a webhook or a websocket frame carries: JSON, timestamps, coordinates.

Every channel reads untrusted bodies through these, so each hostile shape is refused in one
place with a `ValueError` (the channel answers 4xx or an error frame): JSON nested past any
real payload (Python's parser would raise RecursionError, a 500), `NaN`/`Infinity` (not
JSON, but Python's parser takes them), timestamps far outside the present (a traceback in
`datetime`), and events older than the dedupe window (a captured body replayed later).
"""

from __future__ import annotations

import hmac
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.ports import DEDUPE_WINDOW

MAX_DEPTH = 32  # LINE's deepest event is about 7 levels; nothing real comes near this
# How far a sender's clock may be ahead of ours, and how much sooner than the dedupe window
# an old event is refused (the window is counted from when we handled it, not sent it).
CLOCK_SKEW = timedelta(minutes=10)
MAX_EVENT_AGE = DEDUPE_WINDOW - CLOCK_SKEW


class TooOld(ValueError):
    """An event from before what the dedupe records still remember: a possible replay."""


def secret_equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison of two secrets as bytes.

    `hmac.compare_digest` raises TypeError for a str that is not ASCII (anyone can send
    one in a header or a frame), so both sides are UTF-8 bytes first; a lone surrogate is
    encoded as it is and simply does not match.
    """
    def raw(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(raw(a), raw(b))


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(body: bytes | str) -> Any:
    """Strict JSON, refused (ValueError) when nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(body, parse_constant=_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _depth(data) > MAX_DEPTH:
        raise ValueError("JSON nested too deeply")
    return data


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
    return deepest


def event_time(millis: object, now: datetime | None = None) -> datetime:
    """A sender's event timestamp (milliseconds since the epoch), checked.

    ValueError for anything but a whole number near the present; TooOld for an event older
    than MAX_EVENT_AGE, which dedupe may have forgotten.
    """
    if not isinstance(millis, int) or isinstance(millis, bool):
        raise ValueError("a timestamp is a whole number of milliseconds")
    now = now or datetime.now(UTC)
    low, high = now - timedelta(days=3650), now + CLOCK_SKEW
    if not low.timestamp() * 1000 <= millis <= high.timestamp() * 1000:
        raise ValueError("a timestamp far from the present")
    at = datetime.fromtimestamp(millis / 1000, UTC)
    if at < now - MAX_EVENT_AGE:
        raise TooOld(f"an event {(now - at).total_seconds() / 3600:.0f} h old")
    return at


def finite(value: object) -> float | None:
    """`value` as a finite float (a JSON number, not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
    return number if math.isfinite(number) else None
